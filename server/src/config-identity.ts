/**
 * The identity settings of CONTRACT §10–§11, checked for config.ts (which alone reads the
 * environment and hands `get` here): access-token signing keys, the refresh reuse grace and
 * the MFA policy. Messages name the variable and what to do; key text is never echoed.
 */
import { generateSigningKey, parseSigningKey, SigningKeyError, SIGNING_ALGS, type SigningAlg } from './lib/jws-keys';

export interface IdentitySettings {
  signingAlg: SigningAlg;
  /** PKCS#8 private key text (PEM or base64 DER) of the current signing key. */
  signingKey: string;
  /** Retired keys still published while tokens they signed can be valid. */
  previousSigningKeys: ReadonlyArray<{ key: string; expiresAtMs: number }>;
  refreshReuseGraceSec: number;
  mfaRequiredForAdmins: boolean;
}

export const IDENTITY_SETTINGS = [
  'JWT_SIGNING_ALG',
  'JWT_SIGNING_KEY',
  'JWT_PREVIOUS_SIGNING_KEYS',
  'REFRESH_REUSE_GRACE_SECONDS',
  'MFA_REQUIRED_FOR_ADMINS',
] as const;

const KEYGEN_HINT =
  '`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 | base64 -w0` (ES256) or `openssl genpkey -algorithm ed25519 | base64 -w0` (EdDSA)';

export function loadIdentitySettings(a: {
  get: (k: string) => string | undefined;
  dev: Record<string, string>;
  prod: boolean;
  now: number;
  err: (variable: string, message: string) => void;
  warn: (variable: string, message: string) => void;
}): IdentitySettings {
  const { get, dev, prod, err, warn } = a;
  const rawAlg = get('JWT_SIGNING_ALG') ?? 'ES256';
  let signingAlg: SigningAlg = 'ES256';
  if ((SIGNING_ALGS as readonly string[]).includes(rawAlg)) signingAlg = rawAlg as SigningAlg;
  else err('JWT_SIGNING_ALG', 'must be ES256 (default) or EdDSA');

  // Development secrets hold one generated key per algorithm.
  const devKey = signingAlg === 'EdDSA' ? dev.JWT_SIGNING_KEY_EDDSA : dev.JWT_SIGNING_KEY;
  let signingKey = get('JWT_SIGNING_KEY') ?? devKey ?? '';
  if (!signingKey && prod) {
    err(
      'JWT_SIGNING_KEY',
      `is required in production: the private key (PKCS#8 PEM or base64) that signs access tokens; generate one with ${KEYGEN_HINT}`,
    );
  } else if (!signingKey) {
    // Outside production without development secrets (NODE_ENV=test, scripts): a key for this
    // process only. Its tokens do not survive a restart nor verify on another instance.
    signingKey = generateSigningKey(signingAlg);
    warn(
      'JWT_SIGNING_KEY',
      `is not set: a temporary key signs access tokens in this process only (tokens fail after a restart or on another instance); set one: ${KEYGEN_HINT}`,
    );
  } else {
    try {
      const k = parseSigningKey(signingKey, { expectAlg: signingAlg });
      if (!k.privateKey) err('JWT_SIGNING_KEY', 'must be a private key');
    } catch (e) {
      if (!(e instanceof SigningKeyError)) throw e;
      err('JWT_SIGNING_KEY', `${e.message}; generate one with ${KEYGEN_HINT}`);
    }
  }

  const previousSigningKeys: Array<{ key: string; expiresAtMs: number }> = [];
  const rawPrev = get('JWT_PREVIOUS_SIGNING_KEYS');
  if (rawPrev) {
    rawPrev
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .forEach((entry, i) => {
        const at = entry.lastIndexOf('@');
        const expiry = at > 0 ? Date.parse(entry.slice(at + 1)) : NaN;
        if (at <= 0 || !Number.isFinite(expiry) || !/^\d{4}-\d\d-\d\dT/.test(entry.slice(at + 1))) {
          err(
            'JWT_PREVIOUS_SIGNING_KEYS',
            `entry ${i + 1} must be KEY@EXPIRY (base64 PKCS#8 or SPKI key, @, ISO 8601 time after which no token it signed is valid: retirement + JWT_EXPIRES_IN)`,
          );
          return;
        }
        const key = entry.slice(0, at);
        try {
          parseSigningKey(key, { allowPublic: true });
        } catch (e) {
          if (!(e instanceof SigningKeyError)) throw e;
          err('JWT_PREVIOUS_SIGNING_KEYS', `entry ${i + 1} ${e.message}`);
          return;
        }
        if (expiry <= a.now)
          warn(
            'JWT_PREVIOUS_SIGNING_KEYS',
            `entry ${i + 1} has expired and is no longer published or accepted; remove it`,
          );
        previousSigningKeys.push({ key, expiresAtMs: expiry });
      });
  }

  let refreshReuseGraceSec = 10;
  const rawGrace = get('REFRESH_REUSE_GRACE_SECONDS');
  if (rawGrace !== undefined) {
    const n = /^\d{1,2}$/.test(rawGrace.trim()) ? Number(rawGrace.trim()) : NaN;
    if (!Number.isInteger(n) || n < 0 || n > 60)
      err('REFRESH_REUSE_GRACE_SECONDS', 'must be a whole number of seconds from 0 (no grace) to 60');
    else refreshReuseGraceSec = n;
  }

  let mfaRequiredForAdmins = false;
  const rawMfa = get('MFA_REQUIRED_FOR_ADMINS');
  if (rawMfa !== undefined) {
    const v = rawMfa.trim().toLowerCase();
    if (['true', '1', 'yes'].includes(v)) mfaRequiredForAdmins = true;
    else if (!['false', '0', 'no'].includes(v)) err('MFA_REQUIRED_FOR_ADMINS', 'must be true or false');
  }

  return { signingAlg, signingKey, previousSigningKeys, refreshReuseGraceSec, mfaRequiredForAdmins };
}
