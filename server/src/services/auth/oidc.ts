/**
 * ID-token verification for login.
 *
 * Keys: the identity provider is found by OIDC discovery (`<issuer>/.well-known/openid-configuration`
 * → `jwks_uri`); its JWKS is read through jwks-rsa (cache per kid, refetch on an unknown kid
 * limited to a few requests per minute so a flood of bogus kids cannot hammer the IdP, stale keys
 * served for a bounded time while the IdP is unreachable). Every request to the IdP has one
 * overall deadline, a size cap and no redirects (http-json.ts).
 *
 * Checks, in order: size and shape; header `alg` in the allow-list RS256/PS256/ES256 and
 * published by the issuer (never `none`, never HMAC); key found by `kid`; the key's type fits
 * the algorithm (RSA ≥ 2048 bits for RS256/PS256, P-256 for ES256) and its JWK `alg`, if any,
 * equals the header's — so a public key can never be used as an HMAC secret; signature, `iss`
 * (exact), `aud` (contains the client id), `exp`/`nbf` via jsonwebtoken with an explicit
 * algorithm list and the injected clock (≤ 60 s skew); `iat` present and not in the future;
 * `azp` equals the client id when present and required when there are several audiences;
 * `sub` present; `email` equals the expected e-mail case-insensitively; `email_verified === true`.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { JwksClient, type SigningKey } from 'jwks-rsa';
import { isLoopbackHost } from '../../config';
import type { Clock } from '../../lib/clock';
import type { Logger } from '../../lib/logger';
import { fetchJson } from './http-json';

export const ID_TOKEN_ALGORITHMS = ['RS256', 'PS256', 'ES256'] as const;
export type IdTokenAlgorithm = (typeof ID_TOKEN_ALGORITHMS)[number];
/** Real ID tokens are 1-2 kB; anything near this is hostile. */
export const MAX_ID_TOKEN_LENGTH = 8192;

/** The identity provider could not be reached or is misconfigured (answered 503, never counted as a failed login). */
export class IdpUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdpUnavailableError';
  }
}

export interface ResolvedKey {
  kid: string | null;
  /** The JWK's `alg`, when the issuer publishes one. */
  alg: string | null;
  key: KeyObject;
}

export interface IdpStatus {
  issuer: string;
  kind: 'remote' | 'development';
  discovered: boolean;
  jwksUri: string | null;
  lastError: string | null;
}

/** Where the verifier gets the issuer's keys: a remote OIDC provider or the development issuer. */
export interface KeyResolver {
  readonly issuer: string;
  readonly audience: string;
  /** Allow-list ∩ what the issuer publishes. Throws IdpUnavailableError. */
  algorithms(): Promise<readonly IdTokenAlgorithm[]>;
  /** The key, or null with a reason when the kid is unknown. Throws IdpUnavailableError. */
  getKey(kid: string | null): Promise<{ key: ResolvedKey; reason?: undefined } | { key: null; reason: string }>;
  /** Loads discovery and keys (start-up warm-up, readiness). Throws IdpUnavailableError. */
  warm(): Promise<void>;
  status(): IdpStatus;
}

export interface RemoteKeyResolverOptions {
  issuerUrl: string;
  clientId: string;
  timeoutMs: number;
  /** Production refuses an http jwks_uri even on loopback. */
  production: boolean;
  clock: Clock;
  logger: Logger;
  /** jwks-rsa: refetches allowed per minute for kids not in the cache (default 10). */
  jwksRequestsPerMinute?: number;
  /** jwks-rsa: how long a key stays cached (default 10 min). */
  cacheMaxAgeMs?: number;
  /** jwks-rsa: how long a cached key is still served while the JWKS endpoint is down (default 1 h). */
  staleFallbackMs?: number;
  /** After a failed discovery, further attempts wait this long (default 10 s). */
  discoveryRetryMs?: number;
  /** Discovery is refreshed after this long (default 24 h); the previous one is kept if that fails. */
  rediscoverMs?: number;
}

interface Discovery {
  issuer: string;
  jwksUri: string;
  algorithms: IdTokenAlgorithm[];
  at: number;
}

function discoveryUrl(issuer: string): string {
  return `${issuer}${issuer.endsWith('/') ? '' : '/'}.well-known/openid-configuration`;
}

export function createRemoteKeyResolver(opts: RemoteKeyResolverOptions): KeyResolver {
  const retryMs = opts.discoveryRetryMs ?? 10_000;
  const rediscoverMs = opts.rediscoverMs ?? 86_400_000;
  let discovery: Discovery | null = null;
  let client: JwksClient | null = null;
  let inflight: Promise<Discovery> | null = null;
  let lastFailureAt: number | null = null;
  let lastError: string | null = null;
  // warm() (start-up, readiness probes) reads the JWKS at most once per cache period, and
  // after a failure at most once per retry period: an unauthenticated /ready flood cannot
  // turn into requests to the IdP.
  let keysCheckedAt: number | null = null;
  let keysFailedAt: number | null = null;
  const keyObjects = new WeakMap<object, KeyObject>();

  function parseDiscovery(doc: unknown): Discovery {
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new IdpUnavailableError('discovery document is not a JSON object');
    const d = doc as Record<string, unknown>;
    if (d.issuer !== opts.issuerUrl) throw new IdpUnavailableError(`discovery issuer ${JSON.stringify(String(d.issuer)).slice(0, 200)} does not equal the configured issuer`);
    if (typeof d.jwks_uri !== 'string') throw new IdpUnavailableError('discovery document has no jwks_uri');
    let u: URL;
    try {
      u = new URL(d.jwks_uri);
    } catch {
      throw new IdpUnavailableError('discovery jwks_uri is not a URL');
    }
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && !opts.production && isLoopbackHost(u.hostname))) {
      throw new IdpUnavailableError('discovery jwks_uri must use https');
    }
    const published = d.id_token_signing_alg_values_supported;
    const algorithms = Array.isArray(published) ? ID_TOKEN_ALGORITHMS.filter((a) => published.includes(a)) : [...ID_TOKEN_ALGORITHMS];
    if (algorithms.length === 0) throw new IdpUnavailableError('the issuer publishes none of RS256, PS256, ES256 for ID tokens');
    return { issuer: d.issuer, jwksUri: u.toString(), algorithms, at: opts.clock.now() };
  }

  function jwksClientFor(jwksUri: string): JwksClient {
    return new JwksClient({
      jwksUri,
      cache: true,
      cacheMaxEntries: 16,
      cacheMaxAge: opts.cacheMaxAgeMs ?? 600_000,
      cacheMaxAgeFallback: opts.staleFallbackMs ?? 3_600_000,
      onStaleCacheFallback: (err, kid) => opts.logger.warn('JWKS endpoint unreachable; serving a cached signing key', { kid, reason: err.message }),
      rateLimit: true,
      jwksRequestsPerMinute: opts.jwksRequestsPerMinute ?? 10,
      timeout: opts.timeoutMs,
      // Our fetcher: one overall deadline, size cap, no redirects, 200 only.
      fetcher: async (uri) => {
        const body = await fetchJson(uri, { timeoutMs: opts.timeoutMs });
        const keys = body && typeof body === 'object' && !Array.isArray(body) ? (body as { keys?: unknown }).keys : undefined;
        if (!Array.isArray(keys)) throw Object.assign(new Error('JWKS document has no keys array'), { isEndpointUnavailable: true });
        return { keys: keys.slice(0, 50) };
      },
    });
  }

  async function discover(): Promise<Discovery> {
    const now = opts.clock.now();
    if (discovery && now - discovery.at < rediscoverMs) return discovery;
    if (!discovery && lastFailureAt !== null && now - lastFailureAt < retryMs) {
      throw new IdpUnavailableError(`identity provider discovery failed recently (${lastError ?? 'unknown error'})`);
    }
    if (!inflight) {
      inflight = (async () => {
        try {
          const doc = await fetchJson(discoveryUrl(opts.issuerUrl), { timeoutMs: opts.timeoutMs });
          const d = parseDiscovery(doc);
          if (!discovery || discovery.jwksUri !== d.jwksUri) client = jwksClientFor(d.jwksUri);
          discovery = d;
          lastError = null;
          lastFailureAt = null;
          return d;
        } catch (err) {
          lastError = (err as Error).message;
          lastFailureAt = opts.clock.now();
          if (discovery) {
            opts.logger.warn('OIDC rediscovery failed; keeping the previous discovery document', { reason: lastError });
            discovery = { ...discovery, at: opts.clock.now() - rediscoverMs + retryMs };
            return discovery;
          }
          throw err instanceof IdpUnavailableError ? err : new IdpUnavailableError(`OIDC discovery failed: ${lastError}`);
        } finally {
          inflight = null;
        }
      })();
    }
    return inflight;
  }

  function toKeyObject(k: SigningKey): KeyObject {
    let ko = keyObjects.get(k);
    if (!ko) {
      ko = createPublicKey(k.getPublicKey());
      keyObjects.set(k, ko);
    }
    return ko;
  }

  return {
    issuer: opts.issuerUrl,
    audience: opts.clientId,
    async algorithms() {
      return (await discover()).algorithms;
    },
    async getKey(kid) {
      await discover();
      const c = client as JwksClient;
      try {
        const k = await c.getSigningKey(kid ?? undefined);
        return { key: { kid: k.kid ?? null, alg: k.alg ?? null, key: toKeyObject(k) } };
      } catch (err) {
        const e = err as Error & { isEndpointUnavailable?: boolean };
        if (e.name === 'SigningKeyNotFoundError') return { key: null, reason: kid === null ? 'token has no kid and the issuer has several keys' : 'unknown key id' };
        if (e.name === 'JwksRateLimitError') return { key: null, reason: 'unknown key id (JWKS refetch rate-limited)' };
        lastError = e.message;
        throw new IdpUnavailableError(`JWKS unavailable: ${e.message}`);
      }
    },
    async warm() {
      await discover();
      const now = opts.clock.now();
      if (keysCheckedAt !== null && now - keysCheckedAt < (opts.cacheMaxAgeMs ?? 600_000)) return;
      if (keysFailedAt !== null && now - keysFailedAt < retryMs) throw new IdpUnavailableError(`JWKS unavailable: ${lastError ?? 'unknown error'}`);
      try {
        await (client as JwksClient).getSigningKeys();
        keysCheckedAt = now;
        keysFailedAt = null;
      } catch (err) {
        lastError = (err as Error).message;
        keysFailedAt = now;
        throw new IdpUnavailableError(`JWKS unavailable: ${lastError}`);
      }
    },
    status() {
      return { issuer: opts.issuerUrl, kind: 'remote', discovered: discovery !== null, jwksUri: discovery?.jwksUri ?? null, lastError };
    },
  };
}

export interface VerifiedIdentity {
  sub: string;
  /** Lower-cased. */
  email: string;
  name: string | null;
  issuer: string;
  /** SHA-256 of the token's signed part (header.payload): what makes this token this token. */
  tokenHash: Buffer;
  /**
   * Until when a replay must be recognised (ms since the epoch): the token's exp plus the
   * clock skew login accepts, plus a margin for the database's clock (which drops the record).
   */
  expiresAtMs: number;
}

/** How old (iat) an ID token may be at login. The app exchanges it right after the IdP issues it. */
export const ID_TOKEN_MAX_AGE_SEC = 600;
/** A used token's record outlives the token's acceptance (exp + skew) by this much. */
const REPLAY_RECORD_MARGIN_SEC = 600;

export type IdTokenResult = { ok: true; identity: VerifiedIdentity } | { ok: false; reason: string };

export interface IdTokenVerifier {
  /** Verifies an ID token for a login with `expectedEmail` (lower-case). Throws IdpUnavailableError. */
  verify(idToken: string, expectedEmail: string): Promise<IdTokenResult>;
  resolver: KeyResolver;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

function keyFits(alg: IdTokenAlgorithm, key: KeyObject): string | null {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (alg === 'ES256') {
    return type === 'ec' && details.namedCurve === 'prime256v1' ? null : `ES256 needs a P-256 key (got ${type ?? 'unknown'})`;
  }
  if (type !== 'rsa' && !(alg === 'PS256' && type === 'rsa-pss')) return `${alg} needs an RSA key (got ${type ?? 'unknown'})`;
  if ((details.modulusLength ?? 0) < 2048) return 'RSA key shorter than 2048 bits';
  return null;
}

function fail(reason: string): IdTokenResult {
  return { ok: false, reason };
}

export function createIdTokenVerifier(deps: { resolver: KeyResolver; clock: Clock; clockToleranceSec: number }): IdTokenVerifier {
  const { resolver, clock } = deps;
  const skew = Math.min(deps.clockToleranceSec, 60);
  return {
    resolver,
    async verify(idToken, expectedEmail) {
      if (idToken.length > MAX_ID_TOKEN_LENGTH) return fail('token too long');
      if (!JWT_SHAPE.test(idToken)) return fail('token is not a signed compact JWT');
      let decoded: jwt.Jwt | null;
      try {
        decoded = jwt.decode(idToken, { complete: true });
      } catch {
        decoded = null;
      }
      if (!decoded || typeof decoded.payload !== 'object' || decoded.payload === null) return fail('token is not a JWT with a JSON payload');
      const header = decoded.header as unknown as Record<string, unknown>;
      const alg = header.alg;
      if (typeof alg !== 'string') return fail('token header has no alg');
      if (alg.toLowerCase() === 'none') return fail('algorithm none refused');
      if (!(ID_TOKEN_ALGORITHMS as readonly string[]).includes(alg)) return fail(`algorithm ${alg.slice(0, 20)} not accepted`);
      if (header.crit !== undefined) return fail('token header carries crit extensions');
      const kid = header.kid;
      if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0 || kid.length > 256)) return fail('token header kid is malformed');
      const allowed = await resolver.algorithms();
      if (!(allowed as readonly string[]).includes(alg)) return fail(`algorithm ${alg} is not published by the issuer`);
      const found = await resolver.getKey(typeof kid === 'string' ? kid : null);
      if (!found.key) return fail(found.reason);
      const k = found.key;
      if (k.alg !== null && k.alg !== alg) return fail(`token alg ${alg} differs from the key's alg ${k.alg}`);
      const misfit = keyFits(alg as IdTokenAlgorithm, k.key);
      if (misfit) return fail(misfit);

      const nowSec = Math.floor(clock.now() / 1000);
      let p: jwt.JwtPayload;
      try {
        p = jwt.verify(idToken, k.key, {
          algorithms: [alg as IdTokenAlgorithm],
          issuer: resolver.issuer,
          audience: resolver.audience,
          clockTimestamp: nowSec,
          clockTolerance: skew,
        }) as jwt.JwtPayload;
      } catch (err) {
        if (err instanceof jwt.TokenExpiredError) return fail('token expired');
        if (err instanceof jwt.NotBeforeError) return fail('token not yet valid (nbf)');
        return fail(`verification failed: ${(err as Error).message.slice(0, 200)}`);
      }
      if (typeof p.exp !== 'number') return fail('token has no exp');
      if (typeof p.iat !== 'number') return fail('token has no iat');
      if (p.iat > nowSec + skew) return fail('token issued in the future (iat)');
      if (p.iat < nowSec - ID_TOKEN_MAX_AGE_SEC - skew) return fail(`token too old (issued more than ${ID_TOKEN_MAX_AGE_SEC / 60} minutes ago)`);
      if (typeof p.sub !== 'string' || p.sub.length === 0 || p.sub.length > 255) return fail('token has no usable sub');
      const audiences = Array.isArray(p.aud) ? p.aud : [p.aud];
      if (p.azp !== undefined && p.azp !== resolver.audience) return fail('azp is not this client');
      if (audiences.length > 1 && p.azp === undefined) return fail('several audiences and no azp');
      if (typeof p.email !== 'string' || p.email.length > 254) return fail('token has no email');
      if (p.email.toLowerCase() !== expectedEmail) return fail('token email does not match the login email');
      if (p.email_verified !== true) return fail('email not verified by the identity provider');
      const name = typeof p.name === 'string' && p.name.length <= 200 && p.name.isWellFormed() && !p.name.includes('\u0000') ? p.name : null;
      const signedPart = idToken.slice(0, idToken.lastIndexOf('.'));
      return {
        ok: true,
        identity: { sub: p.sub, email: p.email.toLowerCase(), name, issuer: resolver.issuer, tokenHash: createHash('sha256').update(signedPart).digest(), expiresAtMs: (p.exp + skew + REPLAY_RECORD_MARGIN_SEC) * 1000 },
      };
    },
  };
}

/** RFC 7638 JWK thumbprint of an RSA public key, base64url (used as the development issuer's kid). */
export function rsaThumbprint(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' }) as { e: string; n: string };
  return createHash('sha256').update(JSON.stringify({ e: jwk.e, kty: 'RSA', n: jwk.n })).digest('base64url');
}
