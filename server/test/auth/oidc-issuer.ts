/**
 * A local OIDC issuer for tests: a real HTTP server on 127.0.0.1 serving discovery and a
 * JWKS with real keys, counting the requests it receives. Tokens are signed with node:crypto
 * (no JWT library), so hostile tokens (alg none, HMAC with the public key, altered payloads)
 * can be built byte for byte.
 */
import {
  createHmac,
  createSign,
  generateKeyPairSync,
  randomBytes,
  randomUUID,
  sign as cryptoSign,
  constants,
  type KeyObject,
} from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../../src/lib/clock';

export type TestAlg = 'RS256' | 'PS256' | 'ES256';

export interface TestKey {
  kid: string;
  alg: TestAlg;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function makeKey(alg: TestAlg = 'RS256', kid = `k-${randomBytes(6).toString('hex')}`): TestKey {
  if (alg === 'ES256') {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return { kid, alg, privateKey, publicKey };
  }
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, alg, privateKey, publicKey };
}

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Signs header.payload with the given algorithm and key; the header is used exactly as given. */
export function signJwt(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  key: KeyObject | Buffer | string,
  alg = String(header.alg),
): string {
  const input = `${b64(header)}.${b64(payload)}`;
  let sig: Buffer;
  if (alg === 'none') sig = Buffer.alloc(0);
  else if (alg === 'HS256')
    sig = createHmac('sha256', key as Buffer | string)
      .update(input)
      .digest();
  else if (alg === 'RS256')
    sig = createSign('sha256')
      .update(input)
      .sign(key as KeyObject);
  else if (alg === 'PS256')
    sig = cryptoSign('sha256', Buffer.from(input), {
      key: key as KeyObject,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: 32,
    });
  else if (alg === 'ES256')
    sig = cryptoSign('sha256', Buffer.from(input), { key: key as KeyObject, dsaEncoding: 'ieee-p1363' });
  else throw new Error(`unsupported test alg ${alg}`);
  return `${input}.${sig.toString('base64url')}`;
}

export interface IssuerOptions {
  clientId?: string;
  /** Published id_token_signing_alg_values_supported (default RS256, PS256, ES256). */
  algorithms?: string[];
}

export class TestIssuer {
  readonly clientId: string;
  url = '';
  /** Keys published in the JWKS. */
  published: TestKey[] = [];
  /** Current signing key. */
  key: TestKey;
  discoveryRequests = 0;
  jwksRequests = 0;
  /** When true the server accepts requests and never answers (timeouts). */
  hang = false;
  /** Overrides of the discovery document (e.g. a wrong issuer). */
  discoveryOverrides: Record<string, unknown> = {};
  private server: http.Server;
  private algorithms: string[];

  constructor(opts: IssuerOptions = {}) {
    this.clientId = opts.clientId ?? `client-${randomBytes(4).toString('hex')}`;
    this.algorithms = opts.algorithms ?? ['RS256', 'PS256', 'ES256'];
    this.key = makeKey('RS256');
    this.published = [this.key];
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    const port = (this.server.address() as AddressInfo).port;
    this.url = `http://127.0.0.1:${port}/issuer/`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Environment for buildTestApp pointing at this issuer. */
  env(): Record<string, string> {
    return { AUTH0_ISSUER_BASE_URL: this.url, AUTH0_CLIENT_ID: this.clientId };
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.hang) return; // never answer
    const path = req.url ?? '';
    if (path === '/issuer/.well-known/openid-configuration') {
      this.discoveryRequests += 1;
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          issuer: this.url,
          jwks_uri: `${this.url}.well-known/jwks.json`,
          id_token_signing_alg_values_supported: this.algorithms,
          ...this.discoveryOverrides,
        }),
      );
      return;
    }
    if (path === '/issuer/.well-known/jwks.json') {
      this.jwksRequests += 1;
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          keys: this.published.map((k) => ({
            ...(k.publicKey.export({ format: 'jwk' }) as object),
            kid: k.kid,
            use: 'sig',
            alg: k.alg,
          })),
        }),
      );
      return;
    }
    res.statusCode = 404;
    res.end('{}');
  }

  /** Standard claims for an ID token for `email`, at the clock's time. */
  claims(clock: Clock, email: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
    const now = Math.floor(clock.now() / 1000);
    return {
      iss: this.url,
      aud: this.clientId,
      sub: `auth0|${email}`,
      email,
      email_verified: true,
      iat: now,
      exp: now + 600,
      // Unique per token, as a real IdP's nonce/sid make them: each ID token is usable once.
      jti: randomUUID(),
      ...overrides,
    };
  }

  /** A valid ID token (override claims, key or header as needed). */
  idToken(
    clock: Clock,
    email: string,
    opts: { claims?: Record<string, unknown>; key?: TestKey; header?: Record<string, unknown> } = {},
  ): string {
    const key = opts.key ?? this.key;
    const header = { alg: key.alg, typ: 'JWT', kid: key.kid, ...opts.header };
    return signJwt(header, this.claims(clock, email, opts.claims), key.privateKey, key.alg);
  }
}

export async function startIssuer(opts: IssuerOptions = {}): Promise<TestIssuer> {
  return new TestIssuer(opts).start();
}
