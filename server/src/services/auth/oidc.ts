/**
 * ID-token verification for login.
 *
 * Keys: the identity provider is found by OIDC discovery (`<issuer>/.well-known/openid-configuration`
 * → `jwks_uri`); its JWKS is cached on the injected clock (see createRemoteKeyResolver: stale-
 * while-revalidate for known kids, a separate small budget for refetches on unknown kids, stale
 * keys served for a bounded time while the IdP is unreachable). Every request to the IdP has one
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
  /** Refetches allowed per minute for kids not in the cache (default 10). */
  jwksRequestsPerMinute?: number;
  /** How long the key set is fresh (default 10 min; IDP_JWKS_CACHE_TTL). */
  cacheMaxAgeMs?: number;
  /** How long past freshness a cached key is still served while it is being refreshed or the JWKS endpoint is down (default 1 h). */
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

/** One signing key of the issuer's JWKS, checked and converted once per fetch. */
interface CachedKey {
  kid: string | null;
  alg: string | null;
  key: KeyObject;
}

/** The issuer's key set as last fetched successfully. */
interface KeySet {
  keys: CachedKey[];
  fetchedAt: number;
}

function lookupKey(set: KeySet, kid: string | null): CachedKey | null {
  if (kid === null) return set.keys.length === 1 ? (set.keys[0] as CachedKey) : null;
  return set.keys.find((k) => k.kid === kid) ?? null;
}

/** Signature keys of a JWKS document that node:crypto can use; everything else is skipped. */
function parseJwks(body: unknown): CachedKey[] {
  const keys = body && typeof body === 'object' && !Array.isArray(body) ? (body as { keys?: unknown }).keys : undefined;
  if (!Array.isArray(keys)) throw new IdpUnavailableError('JWKS document has no keys array');
  const out: CachedKey[] = [];
  for (const raw of keys.slice(0, 50)) {
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) continue;
    const j = raw as Record<string, unknown>;
    if (j.use !== undefined && j.use !== 'sig') continue;
    if (j.kid !== undefined && (typeof j.kid !== 'string' || j.kid.length === 0 || j.kid.length > 256)) continue;
    if (j.alg !== undefined && typeof j.alg !== 'string') continue;
    let jwk: Record<string, unknown>;
    if (j.kty === 'RSA' && typeof j.n === 'string' && typeof j.e === 'string') jwk = { kty: 'RSA', n: j.n, e: j.e };
    else if (j.kty === 'EC' && typeof j.crv === 'string' && typeof j.x === 'string' && typeof j.y === 'string')
      jwk = { kty: 'EC', crv: j.crv, x: j.x, y: j.y };
    else continue;
    try {
      out.push({
        kid: (j.kid as string | undefined) ?? null,
        alg: (j.alg as string | undefined) ?? null,
        key: createPublicKey({ key: jwk as never, format: 'jwk' }),
      });
    } catch {
      // An unusable key is not a usable key: skipped like an unknown type.
    }
  }
  return out;
}

/**
 * Keys: one key-set cache on the injected clock.
 * - Fresh (younger than cacheMaxAgeMs): served without contacting the IdP.
 * - Stale but younger than cacheMaxAgeMs + staleFallbackMs: a previously verified key is
 *   served at once for its kid while one background refresh runs (stale-while-revalidate).
 *   Refreshes of known kids have their own budget (one in flight; after a failure, none for
 *   discoveryRetryMs): bogus kids can never starve them.
 * - Unknown kids: a refetch spends a token of a separate bucket (jwksRequestsPerMinute per
 *   minute); when it is empty the token is refused as "unknown key id (rate-limited)" without
 *   asking the IdP. Such a token was not verifiably signed by the issuer, so it never counts
 *   toward the lockout (auth-service.ts), and neither does a key-fetch failure (503).
 */
export function createRemoteKeyResolver(opts: RemoteKeyResolverOptions): KeyResolver {
  const retryMs = opts.discoveryRetryMs ?? 10_000;
  const rediscoverMs = opts.rediscoverMs ?? 86_400_000;
  const maxAgeMs = opts.cacheMaxAgeMs ?? 600_000;
  const staleMs = opts.staleFallbackMs ?? 3_600_000;
  const unknownPerMinute = opts.jwksRequestsPerMinute ?? 10;
  let discovery: Discovery | null = null;
  let inflight: Promise<Discovery> | null = null;
  let lastFailureAt: number | null = null;
  let lastError: string | null = null;
  let keySet: KeySet | null = null;
  let keysInflight: Promise<KeySet> | null = null;
  /** Last failed key fetch: known-kid refreshes (and warm-up) wait retryMs after it. */
  let keysFailedAt: number | null = null;
  /** Token bucket for unknown-kid refetches, refilled continuously on the injected clock. */
  let unknownTokens = unknownPerMinute;
  let unknownRefilledAt = opts.clock.now();

  function parseDiscovery(doc: unknown): Discovery {
    if (!doc || typeof doc !== 'object' || Array.isArray(doc))
      throw new IdpUnavailableError('discovery document is not a JSON object');
    const d = doc as Record<string, unknown>;
    if (d.issuer !== opts.issuerUrl)
      throw new IdpUnavailableError(
        `discovery issuer ${JSON.stringify(String(d.issuer)).slice(0, 200)} does not equal the configured issuer`,
      );
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
    const algorithms = Array.isArray(published)
      ? ID_TOKEN_ALGORITHMS.filter((a) => published.includes(a))
      : [...ID_TOKEN_ALGORITHMS];
    if (algorithms.length === 0)
      throw new IdpUnavailableError('the issuer publishes none of RS256, PS256, ES256 for ID tokens');
    return { issuer: d.issuer, jwksUri: u.toString(), algorithms, at: opts.clock.now() };
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
          if (discovery && discovery.jwksUri !== d.jwksUri) keySet = null;
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
          throw err instanceof IdpUnavailableError
            ? err
            : new IdpUnavailableError(`OIDC discovery failed: ${lastError}`);
        } finally {
          inflight = null;
        }
      })();
    }
    return inflight;
  }

  /** One JWKS fetch at a time; callers arriving meanwhile share its result. */
  function fetchKeys(d: Discovery): Promise<KeySet> {
    if (!keysInflight) {
      keysInflight = (async () => {
        try {
          const keys = parseJwks(await fetchJson(d.jwksUri, { timeoutMs: opts.timeoutMs }));
          const set = { keys, fetchedAt: opts.clock.now() };
          keySet = set;
          keysFailedAt = null;
          return set;
        } catch (err) {
          lastError = (err as Error).message;
          keysFailedAt = opts.clock.now();
          throw err instanceof IdpUnavailableError ? err : new IdpUnavailableError(`JWKS unavailable: ${lastError}`);
        } finally {
          keysInflight = null;
        }
      })();
    }
    return keysInflight;
  }

  /** Refresh of the known key set, on its own budget: never more than one, none within retryMs of a failure. */
  function knownRefreshAllowed(now: number): boolean {
    return keysFailedAt === null || now - keysFailedAt >= retryMs;
  }

  function takeUnknownToken(now: number): boolean {
    unknownTokens = Math.min(unknownPerMinute, unknownTokens + ((now - unknownRefilledAt) * unknownPerMinute) / 60_000);
    unknownRefilledAt = now;
    if (unknownTokens < 1) return false;
    unknownTokens -= 1;
    return true;
  }

  function refreshInBackground(d: Discovery, kid: string | null): void {
    if (keysInflight || !knownRefreshAllowed(opts.clock.now())) return;
    fetchKeys(d).catch((err: Error) =>
      opts.logger.warn('JWKS endpoint unreachable; serving a cached signing key', { kid, reason: err.message }),
    );
  }

  const found = (k: CachedKey) => ({ key: { kid: k.kid, alg: k.alg, key: k.key } });
  const notFound = (kid: string | null, reason = 'unknown key id') => ({
    key: null,
    reason: kid === null ? 'token has no kid and the issuer has several keys' : reason,
  });

  return {
    issuer: opts.issuerUrl,
    audience: opts.clientId,
    async algorithms() {
      return (await discover()).algorithms;
    },
    async getKey(kid) {
      const d = await discover();
      const now = opts.clock.now();
      const set = keySet;
      const hit = set ? lookupKey(set, kid) : null;
      if (set && hit) {
        const age = now - set.fetchedAt;
        if (age < maxAgeMs) return found(hit);
        if (age < maxAgeMs + staleMs) {
          refreshInBackground(d, kid);
          return found(hit);
        }
        // Too old to serve without the IdP's word: refresh now (known-kid budget).
        if (!keysInflight && !knownRefreshAllowed(now))
          throw new IdpUnavailableError(`JWKS unavailable: ${lastError ?? 'unknown error'}`);
        const fresh = await fetchKeys(d);
        const k = lookupKey(fresh, kid);
        return k ? found(k) : notFound(kid, 'unknown key id (no longer published by the issuer)');
      }
      if (!set) {
        // First load (or after the jwks_uri changed): the known-kid budget, not the unknown-kid one.
        if (!keysInflight && !knownRefreshAllowed(now))
          throw new IdpUnavailableError(`JWKS unavailable: ${lastError ?? 'unknown error'}`);
        const k = lookupKey(await fetchKeys(d), kid);
        return k ? found(k) : notFound(kid);
      }
      // A kid the cached set does not have: maybe the IdP rotated. Refetch on the unknown-kid budget.
      if (kid === null) return notFound(kid);
      if (!keysInflight && !takeUnknownToken(now)) return notFound(kid, 'unknown key id (JWKS refetch rate-limited)');
      let fresh: KeySet;
      try {
        fresh = await fetchKeys(d);
      } catch (err) {
        // The cached set is still good for known kids; this one is unknown either way.
        if (now - set.fetchedAt < maxAgeMs + staleMs)
          return notFound(kid, `unknown key id (JWKS refetch failed: ${(err as Error).message.slice(0, 200)})`);
        throw err;
      }
      const k = lookupKey(fresh, kid);
      return k ? found(k) : notFound(kid);
    },
    async warm() {
      const d = await discover();
      const now = opts.clock.now();
      if (keySet && now - keySet.fetchedAt < maxAgeMs) return;
      if (!keysInflight && !knownRefreshAllowed(now))
        throw new IdpUnavailableError(`JWKS unavailable: ${lastError ?? 'unknown error'}`);
      await fetchKeys(d);
    },
    status() {
      return {
        issuer: opts.issuerUrl,
        kind: 'remote',
        discovered: discovery !== null,
        jwksUri: discovery?.jwksUri ?? null,
        lastError,
      };
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
const ID_TOKEN_MAX_AGE_SEC = 600;
/** A used token's record outlives the token's acceptance (exp + skew) by this much. */
const REPLAY_RECORD_MARGIN_SEC = 600;

/**
 * A refusal. `signed` is set when the token's signature was verified with the issuer's key and
 * a later check failed: only such attempts count toward the login lockout (lockout.ts);
 * `signed.email` is the token's own e-mail claim (lower-case), when it has one.
 */
export type IdTokenResult =
  { ok: true; identity: VerifiedIdentity } | { ok: false; reason: string; signed?: { email: string | null } };

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
    return type === 'ec' && details.namedCurve === 'prime256v1'
      ? null
      : `ES256 needs a P-256 key (got ${type ?? 'unknown'})`;
  }
  if (type !== 'rsa' && !(alg === 'PS256' && type === 'rsa-pss'))
    return `${alg} needs an RSA key (got ${type ?? 'unknown'})`;
  if ((details.modulusLength ?? 0) < 2048) return 'RSA key shorter than 2048 bits';
  return null;
}

function fail(reason: string): IdTokenResult {
  return { ok: false, reason };
}

export function createIdTokenVerifier(deps: {
  resolver: KeyResolver;
  clock: Clock;
  clockToleranceSec: number;
}): IdTokenVerifier {
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
      if (!decoded || typeof decoded.payload !== 'object' || decoded.payload === null)
        return fail('token is not a JWT with a JSON payload');
      const header = decoded.header as unknown as Record<string, unknown>;
      const alg = header.alg;
      if (typeof alg !== 'string') return fail('token header has no alg');
      if (alg.toLowerCase() === 'none') return fail('algorithm none refused');
      if (!(ID_TOKEN_ALGORITHMS as readonly string[]).includes(alg))
        return fail(`algorithm ${alg.slice(0, 20)} not accepted`);
      if (header.crit !== undefined) return fail('token header carries crit extensions');
      const kid = header.kid;
      if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0 || kid.length > 256))
        return fail('token header kid is malformed');
      const allowed = await resolver.algorithms();
      if (!(allowed as readonly string[]).includes(alg)) return fail(`algorithm ${alg} is not published by the issuer`);
      const found = await resolver.getKey(typeof kid === 'string' ? kid : null);
      if (!found.key) return fail(found.reason);
      const k = found.key;
      if (k.alg !== null && k.alg !== alg) return fail(`token alg ${alg} differs from the key's alg ${k.alg}`);
      const misfit = keyFits(alg as IdTokenAlgorithm, k.key);
      if (misfit) return fail(misfit);

      const nowSec = Math.floor(clock.now() / 1000);
      const claimedEmail = (decoded.payload as Record<string, unknown>).email;
      const signedFail = (reason: string): IdTokenResult => ({
        ok: false,
        reason,
        signed: {
          email: typeof claimedEmail === 'string' && claimedEmail.length <= 254 ? claimedEmail.toLowerCase() : null,
        },
      });
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
        // jsonwebtoken checks the signature first: these errors come from a correctly signed token.
        if (err instanceof jwt.TokenExpiredError) return signedFail('token expired');
        if (err instanceof jwt.NotBeforeError) return signedFail('token not yet valid (nbf)');
        const message = (err as Error).message;
        if (/^jwt (audience|issuer) invalid/.test(message))
          return signedFail(`verification failed: ${message.slice(0, 200)}`);
        return fail(`verification failed: ${message.slice(0, 200)}`);
      }
      if (typeof p.exp !== 'number') return signedFail('token has no exp');
      if (typeof p.iat !== 'number') return signedFail('token has no iat');
      if (p.iat > nowSec + skew) return signedFail('token issued in the future (iat)');
      if (p.iat < nowSec - ID_TOKEN_MAX_AGE_SEC - skew)
        return signedFail(`token too old (issued more than ${ID_TOKEN_MAX_AGE_SEC / 60} minutes ago)`);
      if (typeof p.sub !== 'string' || p.sub.length === 0 || p.sub.length > 255)
        return signedFail('token has no usable sub');
      const audiences = Array.isArray(p.aud) ? p.aud : [p.aud];
      if (p.azp !== undefined && p.azp !== resolver.audience) return signedFail('azp is not this client');
      if (audiences.length > 1 && p.azp === undefined) return signedFail('several audiences and no azp');
      if (typeof p.email !== 'string' || p.email.length > 254) return signedFail('token has no email');
      if (p.email.toLowerCase() !== expectedEmail) return signedFail('token email does not match the login email');
      if (p.email_verified !== true) return signedFail('email not verified by the identity provider');
      const name =
        typeof p.name === 'string' && p.name.length <= 200 && p.name.isWellFormed() && !p.name.includes('\u0000')
          ? p.name
          : null;
      const signedPart = idToken.slice(0, idToken.lastIndexOf('.'));
      return {
        ok: true,
        identity: {
          sub: p.sub,
          email: p.email.toLowerCase(),
          name,
          issuer: resolver.issuer,
          tokenHash: createHash('sha256').update(signedPart).digest(),
          expiresAtMs: (p.exp + skew + REPLAY_RECORD_MARGIN_SEC) * 1000,
        },
      };
    },
  };
}

/** RFC 7638 JWK thumbprint of an RSA public key, base64url (used as the development issuer's kid). */
export function rsaThumbprint(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' }) as { e: string; n: string };
  return createHash('sha256')
    .update(JSON.stringify({ e: jwk.e, kty: 'RSA', n: jwk.n }))
    .digest('base64url');
}
