/**
 * Password hashing: bcrypt, cost >= 12 (configurable upwards only).
 *
 * bcrypt reads at most 72 bytes and stops at a NUL byte, so long passphrases would be
 * silently truncated. Every password is therefore pre-hashed first:
 *
 *   bcrypt( base64( HMAC-SHA256(key = "fleet-security-api/v1/bcrypt-prehash", NFKC(password)) ), cost )
 *
 * The pre-hash is 44 ASCII characters for every input: no truncation, no NUL, and two
 * passwords that share their first 72 bytes hash differently. The HMAC key is a fixed public
 * label (domain separation, not a pepper), so hashes do not depend on the master key and
 * survive its rotation. Passwords are NFKC-normalized (NIST SP 800-63B); empty passwords,
 * passwords over 1024 bytes and strings that are not well-formed Unicode are refused.
 */
import { createHmac } from 'node:crypto';
import bcrypt from 'bcrypt';
import { PasswordPolicyError } from './errors';

export const MIN_BCRYPT_COST = 12;
const MAX_BCRYPT_COST = 20;
export const MAX_PASSWORD_BYTES = 1024;
const PREHASH_KEY = 'fleet-security-api/v1/bcrypt-prehash';
const BCRYPT_HASH = /^\$2[aby]\$(\d{2})\$[./A-Za-z0-9]{53}$/;

export interface PasswordHasher {
  readonly cost: number;
  hashPassword(password: string): Promise<string>;
  /** false for a wrong password, a refused password, or a malformed hash; never throws for those. */
  verifyPassword(password: string, hash: string): Promise<boolean>;
  /** true when the hash was made with a lower cost than configured (re-hash at next login). */
  needsRehash(hash: string): boolean;
}

/** The pre-hash bcrypt actually sees; throws PasswordPolicyError for refused input. */
export function prehashPassword(password: unknown): string {
  if (typeof password !== 'string') throw new PasswordPolicyError('password must be a string');
  if (!password.isWellFormed()) throw new PasswordPolicyError('password must be well-formed Unicode');
  const normalized = password.normalize('NFKC');
  const bytes = Buffer.byteLength(normalized, 'utf8');
  if (bytes === 0) throw new PasswordPolicyError('password must not be empty');
  if (bytes > MAX_PASSWORD_BYTES) throw new PasswordPolicyError(`password must be at most ${MAX_PASSWORD_BYTES} bytes`);
  return createHmac('sha256', PREHASH_KEY).update(normalized, 'utf8').digest('base64');
}

export function createPasswordHasher(opts: { cost?: number } = {}): PasswordHasher {
  const cost = opts.cost ?? MIN_BCRYPT_COST;
  if (!Number.isInteger(cost) || cost < MIN_BCRYPT_COST || cost > MAX_BCRYPT_COST) {
    throw new RangeError(
      `bcrypt cost must be a whole number from ${MIN_BCRYPT_COST} to ${MAX_BCRYPT_COST} (BCRYPT_COST); got ${String(opts.cost)}`,
    );
  }
  return {
    cost,
    async hashPassword(password) {
      return bcrypt.hash(prehashPassword(password), cost);
    },
    async verifyPassword(password, hash) {
      if (typeof hash !== 'string' || !BCRYPT_HASH.test(hash)) return false;
      let pre: string;
      try {
        pre = prehashPassword(password);
      } catch {
        return false;
      }
      try {
        return await bcrypt.compare(pre, hash);
      } catch {
        return false;
      }
    },
    needsRehash(hash) {
      const m = typeof hash === 'string' ? BCRYPT_HASH.exec(hash) : null;
      return !m || Number(m[1]) < cost;
    },
  };
}
