/**
 * Access tokens (CONTRACT §10): JWS compact tokens signed with an asymmetric key (ES256 by
 * default, EdDSA selectable) whose RFC 7638 thumbprint is the header `kid`. The public keys —
 * current and retired-but-still-valid — are published at /.well-known/jwks.json, so other
 * services verify without a shared secret.
 *
 * Verification pins the algorithm per key (a key is one algorithm: `alg` must be the key's,
 * never `none`, never HMAC keyed by a public key), then the issuer, audience, type, expiry and
 * issue time, on the injected clock. Tokens signed before the upgrade (HS256 under JWT_SECRET
 * or JWT_PREVIOUS_SECRETS) stay valid until they expire: the HS256 path accepts only tokens
 * issued before `legacyHs256Since` (the first start with asymmetric keys, kept in the
 * database), and closes for good JWT_EXPIRES_IN after it.
 */
import { createSecretKey, randomUUID, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { secretId, type Config } from '../../config';
import type { Clock } from '../../lib/clock';
import { parseSigningKey, type PublicJwk, type SigningAlg } from '../../lib/jws-keys';

export interface AccessClaims {
  sub: string;
  sid: string;
  tid: string;
  jti: string;
  iat: number;
  exp: number;
  /** Authentication methods of a step-up token (["otp"]). */
  amr?: readonly string[];
  /** When the step-up (or login) that minted this token happened, in seconds. */
  authTime?: number;
}

export interface TokenService {
  issue(input: { userId: string; sessionId: string; tenantId: string; amr?: readonly string[]; authTime?: number }): {
    token: string;
    expiresIn: number;
    claims: AccessClaims;
  };
  /**
   * Returns the claims, or null with a reason (for logs and audit) when the token is not valid.
   * `expired` marks a token with a valid signature that merely ran out.
   */
  verify(
    token: string,
  ): { claims: AccessClaims; reason?: undefined } | { claims: null; reason: string; expired?: boolean };
  /** How many verified tokens are remembered (see createTokenService). */
  cachedCount(): number;
  /** The JWK Set to publish now: the current key and retired keys not yet expired. */
  jwks(): { keys: PublicJwk[] };
  /** The current signing key's id and algorithm. */
  readonly current: { kid: string; alg: SigningAlg };
  /** Tokens issued before this time (ms) may be HS256; null: the HS256 path is closed. */
  readonly legacyHs256Since: number | null;
  /** Sets the switch time once it is known (read from the database after a start without it). */
  setLegacyHs256Since(ms: number): void;
}

/** Clock skew allowed on `exp`, in seconds. */
const EXP_TOLERANCE_SEC = 5;
/** Verified tokens remembered by default (a few MB at most). */
const VERIFIED_TOKEN_CACHE_MAX = 10_000;
/** The media type of our access tokens (RFC 9068 §2.1). */
const ACCESS_TOKEN_TYP = 'at+jwt';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A tenant id, or `_platform` (the platform tenant, CONTRACT §9). */
const TENANT = /^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,63}|_platform)$/;
const B64URL = /^[A-Za-z0-9_-]*$/;

interface VerifyKey {
  kid: string;
  alg: SigningAlg;
  publicKey: KeyObject;
  /** null: the current key (no expiry). */
  expiresAtMs: number | null;
  jwk: PublicJwk;
}

type Verdict = ReturnType<TokenService['verify']>;

function parseJson(b64: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(Buffer.from(b64, 'base64url').toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function signBytes(alg: SigningAlg, key: KeyObject, data: Buffer): Buffer {
  return alg === 'ES256' ? cryptoSign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }) : cryptoSign(null, data, key);
}

function verifyBytes(alg: SigningAlg, key: KeyObject, data: Buffer, sig: Buffer): boolean {
  if (sig.length !== 64) return false; // both ES256 (r||s) and Ed25519 signatures are 64 bytes
  try {
    return alg === 'ES256'
      ? cryptoVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig)
      : cryptoVerify(null, data, key, sig);
  } catch {
    return false;
  }
}

/**
 * Tokens are verified in full (signature, algorithm, key id, issuer, audience, expiry,
 * claim shapes) the first time they are seen. A token that passed is remembered, keyed by its
 * exact text, until it expires (or its key retires): presenting the same string again only
 * re-checks `exp`, so the signature check and JSON parsing are not repeated on every request
 * of a session. Only tokens that verified enter the table (forged ones cannot fill it); any
 * change to a token's text is a different key and goes through full verification. The table
 * holds at most `verifiedCacheMax` entries, the oldest dropped first. The session itself is
 * still checked in the database on every request (see sessions.authenticate): the table never
 * skips that check.
 */
export function createTokenService(
  config: Config,
  clock: Clock,
  opts: { verifiedCacheMax?: number; legacyHs256Since?: number | null } = {},
): TokenService {
  const verifiedMax = opts.verifiedCacheMax ?? VERIFIED_TOKEN_CACHE_MAX;
  const verified = new Map<string, { claims: AccessClaims; until: number }>();
  const { issuer, audience, expiresInSec } = config.jwt;
  const id = config.identity;

  const cur = parseSigningKey(id.signingKey, { expectAlg: id.signingAlg });
  if (!cur.privateKey) throw new Error('JWT_SIGNING_KEY must be a private key');
  const signingKey = cur.privateKey;
  const byKid = new Map<string, VerifyKey>([
    [cur.kid, { kid: cur.kid, alg: cur.alg, publicKey: cur.publicKey, expiresAtMs: null, jwk: cur.jwk }],
  ]);
  for (const p of id.previousSigningKeys) {
    const k = parseSigningKey(p.key, { allowPublic: true });
    if (!byKid.has(k.kid))
      byKid.set(k.kid, { kid: k.kid, alg: k.alg, publicKey: k.publicKey, expiresAtMs: p.expiresAtMs, jwk: k.jwk });
  }
  const headerB64 = Buffer.from(JSON.stringify({ alg: cur.alg, typ: ACCESS_TOKEN_TYP, kid: cur.kid })).toString(
    'base64url',
  );

  // Pre-upgrade HS256 tokens: secrets as KeyObjects, built once.
  // Unknown (null) keeps the HS256 path closed: the safe default.
  let legacySince = opts.legacyHs256Since ?? null;
  const hsKey = (s: string): KeyObject => createSecretKey(Buffer.from(s, 'utf8'));
  const hsByKid = new Map<string, KeyObject>();
  // Previous secrets verify until their expiry (JWT_PREVIOUS_SECRETS `secret@<ISO time>`), then are refused.
  const hsNotAfter = new Map<string, number>();
  if (config.jwt.secret) {
    hsByKid.set(secretId(config.jwt.secret), hsKey(config.jwt.secret));
    config.jwt.previousSecrets.forEach((s, i) => {
      hsByKid.set(secretId(s), hsKey(s));
      const until = config.jwt.previousSecretsNotAfter?.[i];
      if (typeof until === 'number') hsNotAfter.set(secretId(s), until);
    });
  }
  let legacyClosesAtSec = 0;
  const setSince = (ms: number | null): void => {
    legacySince = ms;
    legacyClosesAtSec = ms === null ? 0 : Math.floor(ms / 1000) + expiresInSec + EXP_TOLERANCE_SEC;
  };
  setSince(legacySince);

  function checkClaims(p: Record<string, unknown>, nowSec: number): Verdict {
    if (p.iss !== issuer) return { claims: null, reason: 'verification failed: jwt issuer invalid' };
    if (p.aud !== audience) return { claims: null, reason: 'verification failed: jwt audience invalid' };
    if (
      typeof p.sub !== 'string' ||
      !UUID.test(p.sub) ||
      typeof p.sid !== 'string' ||
      !UUID.test(p.sid) ||
      typeof p.tid !== 'string' ||
      !TENANT.test(p.tid) ||
      typeof p.jti !== 'string' ||
      p.jti.length > 64 ||
      typeof p.iat !== 'number' ||
      typeof p.exp !== 'number' ||
      !Number.isInteger(p.iat) ||
      !Number.isInteger(p.exp)
    ) {
      return { claims: null, reason: 'claims missing or malformed' };
    }
    if (p.nbf !== undefined) return { claims: null, reason: 'claims missing or malformed' }; // never issued here
    if (nowSec >= p.exp + EXP_TOLERANCE_SEC) return { claims: null, reason: 'access token expired', expired: true };
    // Tokens issued here have iat = now and exp = iat + JWT_EXPIRES_IN. A token that claims
    // otherwise was not (a future iat, or a lifetime beyond the setting, is what a token
    // minted with a leaked or retired key would carry).
    if (p.iat > nowSec + EXP_TOLERANCE_SEC) return { claims: null, reason: 'token issued in the future (iat)' };
    if (p.exp - p.iat > expiresInSec) return { claims: null, reason: 'token lifetime longer than JWT_EXPIRES_IN' };
    const claims: AccessClaims = { sub: p.sub, sid: p.sid, tid: p.tid, jti: p.jti, iat: p.iat, exp: p.exp };
    if (p.amr !== undefined || p.auth_time !== undefined) {
      if (
        !Array.isArray(p.amr) ||
        p.amr.length > 5 ||
        !p.amr.every((m) => typeof m === 'string' && m.length <= 16) ||
        typeof p.auth_time !== 'number' ||
        !Number.isInteger(p.auth_time) ||
        p.auth_time > p.iat
      ) {
        return { claims: null, reason: 'claims missing or malformed' };
      }
      claims.amr = Object.freeze([...(p.amr as string[])]);
      claims.authTime = p.auth_time;
    }
    return { claims: Object.freeze(claims) };
  }

  function verifyLegacy(token: string, nowSec: number): Verdict {
    if (legacySince === null || hsByKid.size === 0 || nowSec >= legacyClosesAtSec)
      return { claims: null, reason: 'algorithm HS256 not accepted' };
    let out: Verdict = { claims: null, reason: 'token is not a JWT' };
    let refused: string | null = null;
    let retireAtSec = Number.POSITIVE_INFINITY;
    const lookup: jwt.GetPublicKeyOrSecret = (header, cb) => {
      const until = header.kid ? hsNotAfter.get(header.kid) : undefined;
      if (until !== undefined) retireAtSec = Math.floor(until / 1000);
      if (until !== undefined && clock.now() >= until) {
        refused = 'key id retired (its JWT_PREVIOUS_SECRETS entry expired)';
        cb(new Error(refused));
        return;
      }
      const secret = header.kid ? hsByKid.get(header.kid) : undefined;
      if (!secret) {
        refused = 'unknown key id';
        cb(new Error(refused));
        return;
      }
      cb(null, secret);
    };
    jwt.verify(
      token,
      lookup,
      { algorithms: ['HS256'], clockTimestamp: nowSec, ignoreExpiration: true },
      (err, decoded) => {
        if (err) {
          out = { claims: null, reason: refused ?? `verification failed: ${err.message}` };
          return;
        }
        const p = decoded as Record<string, unknown>;
        if (typeof p !== 'object' || p === null) return;
        // Only tokens minted before the upgrade: an HS256 token issued since is a forgery.
        if (typeof p.iat !== 'number' || p.iat >= Math.floor((legacySince as number) / 1000)) {
          out = { claims: null, reason: 'HS256 token issued after the switch to asymmetric keys' };
          return;
        }
        out = checkClaims(p, nowSec);
        remember(token, out, Math.min(legacyClosesAtSec, retireAtSec));
      },
    );
    return out;
  }

  /** Keeps a verified token until its exp (+ tolerance) or `untilSec`, whichever is first. */
  function remember(token: string, v: Verdict, untilSec: number): void {
    if (!v.claims || verifiedMax <= 0) return;
    if (verified.size >= verifiedMax) verified.delete(verified.keys().next().value as string);
    verified.set(token, { claims: v.claims, until: Math.min(v.claims.exp + EXP_TOLERANCE_SEC, untilSec) });
  }

  function verifyFull(token: string, nowSec: number): Verdict {
    const parts = token.split('.');
    if (parts.length !== 3 || !parts.every((x) => B64URL.test(x)))
      return { claims: null, reason: 'token is not a JWT' };
    const [h, p, s] = parts as [string, string, string];
    const header = parseJson(h);
    if (!header) return { claims: null, reason: 'token is not a JWT' };
    const alg = header.alg;
    if (alg === 'HS256') return verifyLegacy(token, nowSec);
    if (alg !== 'ES256' && alg !== 'EdDSA') return { claims: null, reason: `algorithm ${String(alg)} not accepted` };
    const key = typeof header.kid === 'string' ? byKid.get(header.kid) : undefined;
    if (!key) return { claims: null, reason: 'unknown key id' };
    if (key.alg !== alg)
      return { claims: null, reason: `algorithm ${alg} not accepted for key ${key.kid} (${key.alg})` };
    if (key.expiresAtMs !== null && clock.now() >= key.expiresAtMs)
      return { claims: null, reason: 'signing key retired' };
    if (header.typ !== ACCESS_TOKEN_TYP || header.crit !== undefined)
      return { claims: null, reason: 'token type not accepted' };
    if (!verifyBytes(key.alg, key.publicKey, Buffer.from(`${h}.${p}`), Buffer.from(s, 'base64url')))
      return { claims: null, reason: 'verification failed: invalid signature' };
    const payload = parseJson(p);
    if (!payload) return { claims: null, reason: 'claims missing or malformed' };
    const v = checkClaims(payload, nowSec);
    remember(token, v, key.expiresAtMs === null ? Infinity : Math.floor(key.expiresAtMs / 1000));
    return v;
  }

  return {
    current: { kid: cur.kid, alg: cur.alg },
    get legacyHs256Since() {
      return legacySince;
    },
    setLegacyHs256Since: (ms) => setSince(ms),
    issue({ userId, sessionId, tenantId, amr, authTime }) {
      const iat = Math.floor(clock.now() / 1000);
      const claims: AccessClaims = {
        sub: userId,
        sid: sessionId,
        tid: tenantId,
        jti: randomUUID(),
        iat,
        exp: iat + expiresInSec,
      };
      const body: Record<string, unknown> = { ...claims, iss: issuer, aud: audience };
      if (amr && authTime !== undefined) {
        claims.amr = Object.freeze([...amr]);
        claims.authTime = authTime;
        body.amr = amr;
        body.auth_time = authTime;
      }
      const signingInput = `${headerB64}.${Buffer.from(JSON.stringify(body)).toString('base64url')}`;
      const sig = signBytes(cur.alg, signingKey, Buffer.from(signingInput)).toString('base64url');
      return { token: `${signingInput}.${sig}`, expiresIn: expiresInSec, claims };
    },
    verify(token) {
      if (typeof token !== 'string' || token.length > 4096)
        return { claims: null, reason: 'token missing or too long' };
      const nowSec = Math.floor(clock.now() / 1000);
      const known = verified.get(token);
      if (known !== undefined) {
        if (nowSec < known.until) return { claims: known.claims };
        verified.delete(token); // expired: the full check below gives the usual answer
      }
      return verifyFull(token, nowSec);
    },
    cachedCount: () => verified.size,
    jwks() {
      const now = clock.now();
      return {
        keys: [...byKid.values()].filter((k) => k.expiresAtMs === null || now < k.expiresAtMs).map((k) => k.jwk),
      };
    },
  };
}
