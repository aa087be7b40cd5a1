/**
 * Login against a certified OpenID Provider (panva/oidc-provider, run as a child process: the
 * package is ESM-only): a real authorization-code flow (authorize → interaction → consent →
 * code → token endpoint) produces the ID token that POST /login exchanges; the provider's
 * discovery document is consumed as published; its key rotation (new kid published, old
 * withdrawn) keeps logins working without restarting the app.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import request from 'supertest';
import { buildAuthApp, provision, SECURITY, uniqueIp, type AuthTestApp } from './helpers';

const CLIENT_ID = 'fleet-test-client';
const CLIENT_SECRET = 'fleet-test-secret-0123456789abcdef';
const REDIRECT = 'http://127.0.0.1/cb';

interface Peer {
  issuer: string;
  kid: string;
  child: ChildProcessWithoutNullStreams;
  next(): Promise<string>;
}

async function startPeer(): Promise<Peer> {
  const child = spawn(process.execPath, [path.join(__dirname, 'oidc-provider-peer.mjs'), '0'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stderr.resume();
  const lines = readline.createInterface({ input: child.stdout });
  const queue: string[] = [];
  const waiters: Array<(l: string) => void> = [];
  lines.on('line', (l) => {
    if (!/^(READY|ROTATED) /.test(l)) return; // the provider's own warnings
    const w = waiters.shift();
    if (w) w(l);
    else queue.push(l);
  });
  const next = () =>
    new Promise<string>((resolve, reject) => {
      const q = queue.shift();
      if (q !== undefined) return resolve(q);
      const timer = setTimeout(() => reject(new Error('oidc-provider peer did not answer')), 15_000);
      waiters.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
    });
  const [word, issuer, kid] = (await next()).split(' ');
  if (word !== 'READY') throw new Error(`peer: ${word}`);
  return { issuer: issuer as string, kid: kid as string, child, next };
}

/** A browser's walk through the authorization endpoint, its interactions and redirects, to the code. */
async function authorizationCode(issuer: string, email: string): Promise<string> {
  const jar = new Map<string, string>();
  const q = new URLSearchParams({
    client_id: CLIENT_ID,
    response_type: 'code',
    scope: 'openid email',
    redirect_uri: REDIRECT,
    state: 'st',
    nonce: 'nn',
    login_hint: email,
  });
  let url = `${issuer}/auth?${q.toString()}`;
  for (let hop = 0; hop < 12; hop++) {
    const res = await fetch(url, {
      redirect: 'manual',
      headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = (pair as string).indexOf('=');
      jar.set((pair as string).slice(0, i), (pair as string).slice(i + 1));
    }
    const location = res.headers.get('location');
    if (!location) throw new Error(`authorization flow stopped at ${url}: ${res.status} ${await res.text()}`);
    const next = new URL(location, url);
    if (next.href.startsWith(REDIRECT)) {
      const code = next.searchParams.get('code');
      if (!code || next.searchParams.get('state') !== 'st') throw new Error(`no code: ${next.href}`);
      return code;
    }
    url = next.href;
  }
  throw new Error('too many redirects');
}

async function idTokenFor(issuer: string, email: string): Promise<string> {
  const code = await authorizationCode(issuer, email);
  const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as {
    token_endpoint: string;
  };
  const res = await fetch(discovery.token_endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT }).toString(),
  });
  const body = (await res.json()) as { id_token?: string };
  if (!body.id_token) throw new Error(`token endpoint: ${res.status} ${JSON.stringify(body)}`);
  return body.id_token;
}

const kidOf = (jwt: string) =>
  (JSON.parse(Buffer.from(jwt.split('.')[0] as string, 'base64url').toString()) as { kid: string }).kid;

describe('login with ID tokens from oidc-provider (OpenID Certified)', () => {
  let peer: Peer;
  let t: AuthTestApp;
  beforeAll(async () => {
    peer = await startPeer();
    t = await buildAuthApp(null, { env: { AUTH0_ISSUER_BASE_URL: peer.issuer, AUTH0_CLIENT_ID: CLIENT_ID } });
  }, 30_000);
  afterAll(async () => {
    await t?.close();
    peer?.child.stdin.end();
    peer?.child.kill();
  });

  const login = (email: string, idToken: string) =>
    request(t.app).post(`${SECURITY}/login`).set('X-Forwarded-For', uniqueIp()).send({ email, idToken });

  test('when the authorization-code flow yields an ID token, then /login exchanges it for a session', async () => {
    const u = await provision(t);
    const idToken = await idTokenFor(peer.issuer, u.email);
    expect(kidOf(idToken)).toBe(peer.kid);
    // The issuer is used exactly as published (no trailing slash added).
    expect(t.config.idp.issuerUrl).toBe(peer.issuer);
    const res = await login(u.email, idToken);
    expect(res.status).toBe(200);
    expect(res.body.user).toMatchObject({ id: u.id, email: u.email, tenantId: u.tenantId });
    expect((await request(t.app).get(`${SECURITY}/user`).set('Authorization', `Bearer ${res.body.token}`)).status).toBe(
      200,
    );
    // An ID token opens one session.
    expect((await login(u.email, idToken)).status).toBe(401);
  });

  test('when the provider rotates its signing key (new kid published, old withdrawn), then logins keep working without restarting the app', async () => {
    const before = await provision(t);
    expect((await login(before.email, await idTokenFor(peer.issuer, before.email))).status).toBe(200);
    peer.child.stdin.write('rotate\n');
    const [word, kid] = (await peer.next()).split(' ');
    expect(word).toBe('ROTATED');
    const jwks = (await (await fetch(`${peer.issuer}/jwks`)).json()) as { keys: Array<{ kid: string }> };
    expect(jwks.keys.map((k) => k.kid)).toEqual([kid]);
    const after = await provision(t);
    const idToken = await idTokenFor(peer.issuer, after.email);
    expect(kidOf(idToken)).toBe(kid);
    expect(kidOf(idToken)).not.toBe(peer.kid);
    const res = await login(after.email, idToken);
    expect(res.status).toBe(200);
  });
});
