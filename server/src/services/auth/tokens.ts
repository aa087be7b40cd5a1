/**
 * Access tokens: HS256 JWTs signed with JWT_SECRET. The header `kid` names the secret
 * (a non-reversible fingerprint), so JWT_PREVIOUS_SECRETS keep verifying during rotation.
 * Verification pins the algorithm, issuer and audience and uses the injected clock.
 */
import { createSecretKey, randomUUID, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { secretId, type Config } from '../../config';
import type { Clock } from '../../lib/clock';

export interface AccessClaims {
  sub: string;
  sid: string;
  tid: string;
  jti: string;
  iat: number;
  exp: number;
}

export interface TokenService {
  issue(input: { userId: string; sessionId: string; tenantId: string }): { token: string; expiresIn: number; claims: AccessClaims };
  /**
   * Returns the claims, or null with a reason (for logs and audit) when the token is not valid.
   * `expired` marks a token with a valid signature that merely ran out.
   */
  verify(token: string): { claims: AccessClaims; reason?: undefined } | { claims: null; reason: string; expired?: boolean };
  /** How many verified tokens are remembered (see createTokenService). */
  cachedCount(): number;
}

/** Clock skew allowed on `exp`, in seconds (jsonwebtoken's clockTolerance). */
const EXP_TOLERANCE_SEC = 5;
/** Verified tokens remembered by default (a few MB at most). */
export const VERIFIED_TOKEN_CACHE_MAX = 10_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A tenant id, or `_platform` (the platform tenant, CONTRACT §9). */
const TENANT = /^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,63}|_platform)$/;

/**
 * Tokens are verified in full (signature, algorithm, key id, issuer, audience, expiry,
 * claim shapes) the first time they are seen. A token that passed is remembered, keyed by its
 * exact text, until it expires: presenting the same string again only re-checks `exp`, so
 * the HMAC and the JSON parsing are not repeated on every request of a session. Only tokens
 * that verified enter the table (forged ones cannot fill it); any change to a token's text is
 * a different key and goes through full verification. The table holds at most
 * `verifiedCacheMax` entries, the oldest dropped first. Secrets are fixed for the process's
 * life, so a remembered verdict cannot outlive the secret that produced it. The session
 * itself is still checked in the database on every request (see sessions.authenticate).
 */
export function createTokenService(config: Config, clock: Clock, opts: { verifiedCacheMax?: number } = {}): TokenService {
  const verifiedMax = opts.verifiedCacheMax ?? VERIFIED_TOKEN_CACHE_MAX;
  const verified = new Map<string, AccessClaims>();
  // Secrets as KeyObjects, built once: given a string, jsonwebtoken first tries (and fails)
  // to parse it as a PEM public key on every call, which costs ~40x the HMAC itself.
  const key = (s: string): KeyObject => createSecretKey(Buffer.from(s, 'utf8'));
  const current = { kid: secretId(config.jwt.secret), secret: key(config.jwt.secret) };
  const byKid = new Map<string, KeyObject>([[current.kid, current.secret]]);
  // Previous secrets verify until their expiry (JWT_PREVIOUS_SECRETS `secret@<ISO time>`), then are refused.
  const notAfter = new Map<string, number>();
  config.jwt.previousSecrets.forEach((s, i) => {
    byKid.set(secretId(s), key(s));
    const until = config.jwt.previousSecretsNotAfter?.[i];
    if (typeof until === 'number') notAfter.set(secretId(s), until);
  });
  const { issuer, audience, expiresInSec } = config.jwt;

  return {
    issue({ userId, sessionId, tenantId }) {
      const iat = Math.floor(clock.now() / 1000);
      const claims: AccessClaims = { sub: userId, sid: sessionId, tid: tenantId, jti: randomUUID(), iat, exp: iat + expiresInSec };
      const token = jwt.sign({ ...claims, iss: issuer, aud: audience }, current.secret, { algorithm: 'HS256', keyid: current.kid }); // iat comes from the payload (the injected clock)
      return { token, expiresIn: expiresInSec, claims };
    },
    verify(token) {
      if (typeof token !== 'string' || token.length > 4096) return { claims: null, reason: 'token missing or too long' };
      const nowSec = Math.floor(clock.now() / 1000);
      const known = verified.get(token);
      if (known !== undefined) {
        if (nowSec < known.exp + EXP_TOLERANCE_SEC) return { claims: known };
        verified.delete(token); // expired: the full check below gives the usual answer
      }
      // One decode: jsonwebtoken hands the parsed header to the key lookup (synchronously, as
      // a callback) and then checks signature, algorithm, issuer, audience and expiry.
      let refused: string | null = null;
      /** Signed with a previous secret that has an expiry: not remembered, so the expiry is checked every time. */
      let retiring = false;
      let out: ReturnType<TokenService['verify']> = { claims: null, reason: 'token is not a JWT' };
      const lookup: jwt.GetPublicKeyOrSecret = (header, cb) => {
        if (header.alg !== 'HS256') refused = `algorithm ${String(header.alg)} not accepted`;
        const until = header.kid ? notAfter.get(header.kid) : undefined;
        if (refused === null && until !== undefined) {
          if (clock.now() >= until) refused = 'key id retired (its JWT_PREVIOUS_SECRETS entry expired)';
          else retiring = true;
        }
        const secret = refused === null && header.kid ? byKid.get(header.kid) : undefined;
        if (!secret) {
          refused ??= 'unknown key id';
          cb(new Error(refused));
          return;
        }
        cb(null, secret);
      };
      jwt.verify(token, lookup, { algorithms: ['HS256'], issuer, audience, clockTimestamp: nowSec, clockTolerance: EXP_TOLERANCE_SEC }, (err, decoded) => {
        if (err) {
          if (refused !== null) out = { claims: null, reason: refused };
          else if (err instanceof jwt.TokenExpiredError) out = { claims: null, reason: 'access token expired', expired: true };
          else if (err.message === 'jwt malformed' || err.message === 'invalid token') out = { claims: null, reason: 'token is not a JWT' };
          else out = { claims: null, reason: `verification failed: ${err.message}` };
          return;
        }
        const p = decoded as jwt.JwtPayload | string | undefined;
        if (typeof p !== 'object' || p === null || typeof p.sub !== 'string' || !UUID.test(p.sub) || typeof p.sid !== 'string' || !UUID.test(p.sid) || typeof p.tid !== 'string' || !TENANT.test(p.tid) || typeof p.jti !== 'string' || typeof p.iat !== 'number' || typeof p.exp !== 'number') {
          out = { claims: null, reason: 'claims missing or malformed' };
          return;
        }
        // Tokens issued here have iat = now and exp = iat + JWT_EXPIRES_IN. A token that claims
        // otherwise was not (a future iat, or a lifetime beyond the setting, is what a token
        // minted with a leaked or retired secret would carry).
        if (p.iat > nowSec + EXP_TOLERANCE_SEC) {
          out = { claims: null, reason: 'token issued in the future (iat)' };
          return;
        }
        if (p.exp - p.iat > expiresInSec) {
          out = { claims: null, reason: 'token lifetime longer than JWT_EXPIRES_IN' };
          return;
        }
        const claims: AccessClaims = Object.freeze({ sub: p.sub, sid: p.sid, tid: p.tid, jti: p.jti, iat: p.iat, exp: p.exp });
        out = { claims };
        // A token with nbf (never issued here) is not remembered: its check is not only exp.
        if (verifiedMax > 0 && p.nbf === undefined && !retiring) {
          if (verified.size >= verifiedMax) verified.delete(verified.keys().next().value as string);
          verified.set(token, claims);
        }
      });
      return out;
    },
    cachedCount: () => verified.size,
  };
}
