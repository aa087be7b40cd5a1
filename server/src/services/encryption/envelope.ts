/**
 * The envelope formats.
 *
 * EncryptedData (CONTRACT §5), a JSON object:
 *   { v: 1, keyVersion, iv: base64(12 bytes), ciphertext: base64, authTag: base64(16 bytes) }
 *   (standard base64 alphabet with padding).
 *
 * Compact text form, for a text column:
 *   v1:<keyVersion>:<iv>:<ciphertext>:<authTag>
 *   where the three binary fields are unpadded base64url. keyVersion never contains ':'.
 *   Example: v1:3f1c9a0d5be24e6c8d7a9b0c1d2e3f40:PVs3H_bOg7I48IM0:liW3YMw:gkVlj2ryUfRHsfbkihkUWA
 *
 * Parsing is strict about the shape: format version, key-version characters, exact IV and tag
 * lengths (canonical encodings), and a ciphertext whose decoded length matches its encoded
 * length (so stray characters are refused). Any violation is the generic DecryptionError.
 */
import { DecryptionError } from './errors';
import { GCM_IV_BYTES, GCM_TAG_BYTES } from './aes-gcm';
import { KEY_VERSION_PATTERN } from './master-key';

export interface EncryptedData {
  /** Format version. */
  v: 1;
  /** Which master-key version encrypted it. */
  keyVersion: string;
  /** base64, 12 bytes. */
  iv: string;
  /** base64. */
  ciphertext: string;
  /** base64, exactly 16 bytes. */
  authTag: string;
}

/** The same envelope with raw bytes (no base64), for large payloads and bytea columns. */
export interface BinaryEncryptedData {
  v: 1;
  keyVersion: string;
  iv: Buffer;
  ciphertext: Buffer;
  authTag: Buffer;
}

export const TEXT_FORM_PREFIX = 'v1';

// The last key version that passed the pattern: data is nearly always under one or two
// versions, so the hot path compares a string instead of running the regular expression.
let lastValidVersion = '';
function isValidKeyVersion(v: unknown): v is string {
  if (v === lastValidVersion && v !== '') return true;
  if (typeof v !== 'string' || v.length > 64 || !KEY_VERSION_PATTERN.test(v)) return false;
  lastValidVersion = v;
  return true;
}

// 12 bytes = 16 base64 characters, no padding; 16 bytes = 22 characters + "==" (the last
// character carries 2 bits, so only A, Q, g, w are canonical).
const IV_B64 = /^[A-Za-z0-9+/]{16}$/;
const TAG_B64 = /^[A-Za-z0-9+/]{21}[AQgw]==$/;
const IV_B64URL = /^[A-Za-z0-9_-]{16}$/;
const TAG_B64URL = /^[A-Za-z0-9_-]{21}[AQgw]$/;

/**
 * Decodes padded standard base64 and checks that every character was consumed: Node's decoder
 * skips characters outside the alphabet, so a stray character shows up as a short result.
 * (Node also maps the base64url characters `-` `_` to the same values; that changes no byte.)
 */
function decodeBase64Strict(s: string): Buffer | null {
  if (s.length % 4 !== 0) return null;
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  const buf = Buffer.from(s, 'base64');
  return buf.length === (s.length / 4) * 3 - pad ? buf : null;
}

/** Unpadded base64url, same completeness check. */
function decodeBase64UrlStrict(s: string): Buffer | null {
  if (s.length % 4 === 1) return null;
  const buf = Buffer.from(s, 'base64url');
  return buf.length === Math.floor((s.length * 3) / 4) ? buf : null;
}

export function toEncryptedData(
  keyVersion: string,
  box: { iv: Buffer; ciphertext: Buffer; authTag: Buffer },
): EncryptedData {
  return {
    v: 1,
    keyVersion,
    iv: box.iv.toString('base64'),
    ciphertext: box.ciphertext.toString('base64'),
    authTag: box.authTag.toString('base64'),
  };
}

/** Validates an EncryptedData (from JSON, a column, anywhere) into bytes; DecryptionError when malformed. */
export function parseEncryptedData(data: unknown): BinaryEncryptedData {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new DecryptionError('malformed');
  const d = data as Record<string, unknown>;
  const { keyVersion, iv, ciphertext, authTag } = d;
  if (
    d.v !== 1 ||
    !isValidKeyVersion(keyVersion) ||
    typeof iv !== 'string' ||
    !IV_B64.test(iv) ||
    typeof authTag !== 'string' ||
    !TAG_B64.test(authTag) ||
    typeof ciphertext !== 'string'
  ) {
    throw new DecryptionError('malformed');
  }
  const ct = decodeBase64Strict(ciphertext);
  if (!ct) throw new DecryptionError('malformed');
  return { v: 1, keyVersion, iv: Buffer.from(iv, 'base64'), ciphertext: ct, authTag: Buffer.from(authTag, 'base64') };
}

/** Validates a BinaryEncryptedData; DecryptionError when malformed. */
export function checkBinaryEncryptedData(data: unknown): BinaryEncryptedData {
  if (typeof data !== 'object' || data === null) throw new DecryptionError('malformed');
  const d = data as BinaryEncryptedData;
  const { iv, authTag, ciphertext, keyVersion } = d;
  if (
    d.v !== 1 ||
    !(iv instanceof Uint8Array) ||
    iv.length !== GCM_IV_BYTES ||
    !(authTag instanceof Uint8Array) ||
    authTag.length !== GCM_TAG_BYTES ||
    !(ciphertext instanceof Uint8Array) ||
    !isValidKeyVersion(keyVersion)
  ) {
    throw new DecryptionError('malformed');
  }
  return d;
}

/** The compact text form of an envelope. */
export function formatEncryptedString(
  keyVersion: string,
  box: { iv: Buffer; ciphertext: Buffer; authTag: Buffer },
): string {
  return `${TEXT_FORM_PREFIX}:${keyVersion}:${box.iv.toString('base64url')}:${box.ciphertext.toString('base64url')}:${box.authTag.toString('base64url')}`;
}

/** Parses the compact text form; DecryptionError when malformed. */
export function parseEncryptedString(text: unknown): BinaryEncryptedData {
  if (typeof text !== 'string') throw new DecryptionError('malformed');
  const parts = text.split(':');
  if (parts.length !== 5) throw new DecryptionError('malformed');
  const [prefix, keyVersion, iv, ciphertext, authTag] = parts as [string, string, string, string, string];
  if (
    prefix !== TEXT_FORM_PREFIX ||
    !isValidKeyVersion(keyVersion) ||
    !IV_B64URL.test(iv) ||
    !TAG_B64URL.test(authTag)
  ) {
    throw new DecryptionError('malformed');
  }
  const ct = decodeBase64UrlStrict(ciphertext);
  if (!ct) throw new DecryptionError('malformed');
  return {
    v: 1,
    keyVersion,
    iv: Buffer.from(iv, 'base64url'),
    ciphertext: ct,
    authTag: Buffer.from(authTag, 'base64url'),
  };
}

/** The key version named by a text-form envelope, or null when it is not one. */
export function keyVersionOfEncryptedString(text: string): string | null {
  const m = /^v1:([A-Za-z0-9._-]{1,64}):/.exec(text);
  return m ? (m[1] as string) : null;
}
