/**
 * Asymmetric access tokens and the JWKS (CONTRACT §10): another service verifies our tokens
 * with a stock JOSE library against the key set fetched over HTTP; forgeries are refused by
 * both; retired keys stay published until their last token expired; pre-upgrade HS256 tokens
 * work until they expire, then the HS256 path is closed.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  randomUUID,
  type KeyObject,
} from 'node:crypto';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type http from 'node:http';
import request from 'supertest';
import { createHttpServer } from '../../src/app';
import { loadConfig, secretId } from '../../src/config';
import { loadOrCreateDevSecrets } from '../../src/dev-secrets';
import { generateSigningKey, jwkThumbprint, parseSigningKey } from '../../src/lib/jws-keys';
import { createTokenService } from '../../src/services/auth/tokens';
import { loginAs } from '../helpers/auth';
import { TEST_SIGNING_KEY } from '../helpers/env';
import { buildAuthApp, expectGeneric401, SECURITY, type AuthTestApp } from './helpers';
import { signJwt } from './oidc-issuer';

const der = (k: string): KeyObject => createPrivateKey({ key: Buffer.from(k, 'base64'), format: 'der', type: 'pkcs8' });
const payloadOf = (token: string) =>
  JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>;
const headerOf = (token: string) =>
  JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString()) as Record<string, unknown>;

async function listen(t: AuthTestApp): Promise<{ server: http.Server; url: string }> {
  const server = createHttpServer(t.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
const close = (s: http.Server) => new Promise<void>((resolve) => s.close(() => resolve()));

// jose is ESM; Jest transforms it to CommonJS (jest.config.ts), TypeScript wants a dynamic import.
type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });
let createRemoteJWKSet: Jose['createRemoteJWKSet'];
let jwtVerify: Jose['jwtVerify'];
beforeAll(async () => {
  ({ createRemoteJWKSet, jwtVerify } = await import('jose'));
});

describe('JWKS and verification by another service', () => {
  const edOld = generateSigningKey('EdDSA');
  const edUntil = new Date(Date.now() + 3600_000).toISOString();
  let t: AuthTestApp;
  let srv: { server: http.Server; url: string };
  beforeAll(async () => {
    t = await buildAuthApp(null, { env: { JWT_PREVIOUS_SIGNING_KEYS: `${edOld}@${edUntil}` } });
    srv = await listen(t);
  });
  afterAll(async () => {
    await close(srv.server);
    await t.close();
  });

  test('when the JWKS is fetched without auth, then it lists the current ES256 key and the unexpired previous key, public parts only', async () => {
    const res = await request(t.app).get('/.well-known/jwks.json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/application\/jwk-set\+json/);
    expect(res.headers['cache-control']).toBe('public, max-age=300');
    const { keys } = JSON.parse(res.text) as { keys: Array<Record<string, string>> };
    const cur = parseSigningKey(TEST_SIGNING_KEY);
    expect(keys).toEqual([
      { kty: 'EC', crv: 'P-256', x: expect.any(String), y: expect.any(String), kid: cur.kid, alg: 'ES256', use: 'sig' },
      { kty: 'OKP', crv: 'Ed25519', x: expect.any(String), kid: parseSigningKey(edOld).kid, alg: 'EdDSA', use: 'sig' },
    ]);
    for (const k of keys) expect(k).not.toHaveProperty('d');
    expect(cur.kid).toBe(jwkThumbprint(cur.publicKey));
  });

  test('when another service verifies our access token with jose against the JWKS over HTTP, then it verifies with the expected claims', async () => {
    const l = await loginAs(t);
    expect(headerOf(l.token)).toEqual({ alg: 'ES256', typ: 'at+jwt', kid: t.composition.services.tokens.current.kid });
    const jwks = createRemoteJWKSet(new URL(`${srv.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(l.token, jwks, {
      issuer: 'fleet-security-api',
      audience: 'fleet-security-api',
      algorithms: ['ES256', 'EdDSA'],
      currentDate: new Date(t.clock.now()),
    });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({ sub: l.userId, sid: l.sessionId, tid: l.tenantId });
  });

  test('when tokens are forged (key not in the JWKS, alg none, HS256 keyed by the public key, kid of another key type), then jose and the service refuse each', async () => {
    const l = await loginAs(t);
    const p = payloadOf(l.token);
    const kid = t.composition.services.tokens.current.kid;
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const publicPem = createPublicKey(der(TEST_SIGNING_KEY)).export({ format: 'pem', type: 'spki' }) as string;
    const edKid = parseSigningKey(edOld).kid;
    const forged = {
      'signed by a key not in the JWKS (own kid)': signJwt(
        { alg: 'ES256', typ: 'at+jwt', kid: jwkThumbprint(createPublicKey(stranger)) },
        p,
        stranger,
      ),
      'signed by a key not in the JWKS (real kid)': signJwt({ alg: 'ES256', typ: 'at+jwt', kid }, p, stranger),
      'alg none': signJwt({ alg: 'none', typ: 'at+jwt', kid }, p, '', 'none'),
      'HS256 keyed by the public key': signJwt({ alg: 'HS256', typ: 'at+jwt', kid }, p, publicPem),
      'ES256 under the kid of the Ed25519 key': signJwt(
        { alg: 'ES256', typ: 'at+jwt', kid: edKid },
        p,
        der(TEST_SIGNING_KEY),
      ),
    };
    const jwks = createRemoteJWKSet(new URL(`${srv.url}/.well-known/jwks.json`));
    for (const [name, token] of Object.entries(forged)) {
      await expect(
        jwtVerify(token, jwks, {
          issuer: 'fleet-security-api',
          audience: 'fleet-security-api',
          currentDate: new Date(t.clock.now()),
        }),
      ).rejects.toThrow();
      const res = await request(t.app).get(`${SECURITY}/user`).set('Authorization', `Bearer ${token}`);
      if (res.status !== 401) throw new Error(`${name}: ${res.status}`);
      expectGeneric401(res);
    }
    expect(t.composition.services.tokens.verify(forged['ES256 under the kid of the Ed25519 key']).reason).toMatch(
      /ES256 not accepted for key/,
    );
    expect((await request(t.app).get(`${SECURITY}/user`).set('Authorization', l.authorization)).status).toBe(200);
  });

  test('when the previous key passes its expiry, then it leaves the JWKS and its tokens are refused', async () => {
    const sub = await buildAuthApp(null, { env: { JWT_SIGNING_KEY: edOld, JWT_SIGNING_ALG: 'EdDSA' } });
    try {
      const l = await loginAs(sub);
      expect(headerOf(l.token).alg).toBe('EdDSA');
      expect((await request(t.app).get(`${SECURITY}/user`).set('Authorization', l.authorization)).status).toBe(200);
      t.clock.set(Date.parse(edUntil));
      const res = await request(t.app).get('/.well-known/jwks.json');
      expect((JSON.parse(res.text) as { keys: unknown[] }).keys).toHaveLength(1);
      expect(t.composition.services.tokens.verify(l.token)).toMatchObject({
        claims: null,
        reason: 'signing key retired',
      });
    } finally {
      t.clock.set(Date.now());
      await sub.close();
    }
  });
});

describe('pre-upgrade HS256 tokens', () => {
  test('when an HS256 token issued before the switch is presented, then it works until it expires; once JWT_EXPIRES_IN has passed since the switch the HS256 path is closed', async () => {
    const secret = randomBytes(48).toString('base64');
    const t = await buildAuthApp(null, { env: { JWT_SECRET: secret } });
    try {
      const since = t.composition.services.tokens.legacyHs256Since as number;
      expect(typeof since).toBe('number');
      t.clock.set(since - 30_000);
      const l = await loginAs(t);
      const iat = Math.floor(since / 1000) - 30;
      const legacy = signJwt(
        { alg: 'HS256', typ: 'JWT', kid: secretId(secret) },
        {
          sub: l.userId,
          sid: l.sessionId,
          tid: l.tenantId,
          jti: randomUUID(),
          iat,
          exp: iat + 900,
          iss: 'fleet-security-api',
          aud: 'fleet-security-api',
        },
        secret,
      );
      const get = (tok: string) => request(t.app).get(`${SECURITY}/user`).set('Authorization', `Bearer ${tok}`);
      t.clock.set(since + 60_000);
      expect((await get(legacy)).status).toBe(200);
      // The same secret after the switch: a forgery.
      const late = signJwt(
        { alg: 'HS256', typ: 'JWT', kid: secretId(secret) },
        { ...payloadOf(legacy), iat: Math.floor(since / 1000) + 10, exp: Math.floor(since / 1000) + 600 },
        secret,
      );
      expectGeneric401(await get(late));
      expect(t.composition.services.tokens.verify(late).reason).toBe(
        'HS256 token issued after the switch to asymmetric keys',
      );
      // Past the last possible expiry of a pre-upgrade token: HS256 is gone.
      t.clock.set(since + 906_000);
      expectGeneric401(await get(legacy));
      expect(t.composition.services.tokens.verify(legacy).reason).toBe('algorithm HS256 not accepted');
      // A new app (a restart) keeps the recorded switch time: the path stays closed.
      const again = await buildAuthApp(null, { env: { JWT_SECRET: secret }, clock: t.clock });
      expect(again.composition.services.tokens.legacyHs256Since).toBe(since);
      expect(again.composition.services.tokens.verify(legacy).reason).toBe('algorithm HS256 not accepted');
      await again.close();
    } finally {
      await t.close();
    }
  });
});

describe('switch time unknown (database down at build)', () => {
  test('when the switch time is not known, then HS256 tokens are refused; once set, pre-switch tokens verify', () => {
    const secret = randomBytes(48).toString('base64');
    const c = loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: 'postgres://u:pw@127.0.0.1:5432/db',
      JWT_SECRET: secret,
      FLEET_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      JWT_SIGNING_KEY: TEST_SIGNING_KEY,
    }).config!;
    const now = Date.now();
    const clock = { now: () => now };
    const tokens = createTokenService(c, clock, { legacyHs256Since: null });
    const iat = Math.floor(now / 1000) - 60;
    const hs = signJwt(
      { alg: 'HS256', typ: 'JWT', kid: secretId(secret) },
      {
        sub: randomUUID(),
        sid: randomUUID(),
        tid: 't1',
        jti: 'j',
        iat,
        exp: iat + 900,
        iss: 'fleet-security-api',
        aud: 'fleet-security-api',
      },
      secret,
    );
    expect(tokens.verify(hs).reason).toBe('algorithm HS256 not accepted');
    tokens.setLegacyHs256Since(now - 30_000);
    expect(tokens.verify(hs).claims).not.toBeNull();
  });
});

describe('signing key configuration', () => {
  const base = {
    NODE_ENV: 'test',
    DATABASE_URL: 'postgres://u:pw@127.0.0.1:5432/db',
    JWT_SECRET: randomBytes(48).toString('base64'),
    FLEET_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  };
  test('when production has no JWT_SIGNING_KEY, then it is an error naming how to generate one', () => {
    const r = loadConfig({ NODE_ENV: 'production' });
    expect(r.errors.find((e) => e.variable === 'JWT_SIGNING_KEY')?.message).toMatch(
      /required in production.*openssl genpkey/,
    );
  });
  test.each([
    ['garbage', 'not a key!', /PKCS#8/],
    [
      'an RSA key',
      generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
      /P-256|Ed25519/,
    ],
    ['an Ed25519 key under ES256', generateSigningKey('EdDSA'), /key for EdDSA, but JWT_SIGNING_ALG is ES256/],
    [
      'a public key',
      createPublicKey(der(TEST_SIGNING_KEY)).export({ format: 'pem', type: 'spki' }) as string,
      /PKCS#8/,
    ],
  ])('when JWT_SIGNING_KEY is %s, then it is refused without echoing it', (_n, key, msg) => {
    const r = loadConfig({ ...base, JWT_SIGNING_KEY: key });
    const e = r.errors.find((x) => x.variable === 'JWT_SIGNING_KEY');
    expect(e?.message).toMatch(msg);
    if (key.length > 40) expect(e?.message).not.toContain(key.slice(10, 40));
  });
  test('when JWT_SIGNING_KEY is PEM (with \\n escapes) or base64 DER, then both load to the same kid', () => {
    const pem = der(TEST_SIGNING_KEY).export({ format: 'pem', type: 'pkcs8' }) as string;
    const a = loadConfig({ ...base, JWT_SIGNING_KEY: pem.replace(/\n/g, '\\n') });
    expect(a.errors).toEqual([]);
    expect(parseSigningKey(a.config!.identity.signingKey).kid).toBe(parseSigningKey(TEST_SIGNING_KEY).kid);
  });
  test('when JWT_PREVIOUS_SIGNING_KEYS entries lack an expiry or hold bad keys, then each is an error; an expired one is a warning', () => {
    const r = loadConfig({
      ...base,
      JWT_SIGNING_KEY: TEST_SIGNING_KEY,
      JWT_PREVIOUS_SIGNING_KEYS: `${generateSigningKey('ES256')},AAAA@2030-01-01T00:00:00Z,${generateSigningKey('ES256')}@2001-01-01T00:00:00Z`,
    });
    expect(r.errors.filter((e) => e.variable === 'JWT_PREVIOUS_SIGNING_KEYS').map((e) => e.message)).toEqual([
      expect.stringMatching(/entry 1 must be KEY@EXPIRY/),
      expect.stringMatching(/entry 2/),
    ]);
    expect(r.warnings.find((w) => w.variable === 'JWT_PREVIOUS_SIGNING_KEYS')?.message).toMatch(/entry 3 has expired/);
  });
  test('when development secrets are created, then they hold an ES256 and an EdDSA signing key (file mode 0600) that config uses', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-devkeys-'));
    try {
      const { secrets, file } = loadOrCreateDevSecrets(dir);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      expect(parseSigningKey(secrets.JWT_SIGNING_KEY as string).alg).toBe('ES256');
      expect(parseSigningKey(secrets.JWT_SIGNING_KEY_EDDSA as string).alg).toBe('EdDSA');
      const { JWT_SECRET: _drop, ...env } = base;
      const c = loadConfig(
        { ...env, NODE_ENV: 'development', JWT_SIGNING_ALG: 'EdDSA' },
        { devSecrets: secrets },
      ).config!;
      expect(c.identity.signingKey).toBe(secrets.JWT_SIGNING_KEY_EDDSA);
      expect(loadOrCreateDevSecrets(dir).secrets.JWT_SIGNING_KEY).toBe(secrets.JWT_SIGNING_KEY);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
