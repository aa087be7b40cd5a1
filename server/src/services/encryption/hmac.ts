/**
 * HMAC-SHA256 signatures. The primitive takes any key; the service signs with a key derived
 * from the master key by HKDF (see master-key.ts), never with the master or encryption key.
 *
 * Signature text form: s1:<keyVersion>:<base64url of the 32-byte tag, unpadded>
 * The key version lets a signature made before a rotation still verify afterwards.
 */
import { createHmac, timingSafeEqual, type KeyObject } from 'node:crypto';
import { KEY_VERSION_PATTERN } from './master-key';

export const HMAC_SHA256_BYTES = 32;
const SIGNATURE_PREFIX = 's1';
// 32 bytes = 43 base64url characters; the last one carries 4 bits, so its low 2 bits are 0.
const TAG_B64URL = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

export type SignableData = string | Uint8Array;

function asBytes(data: SignableData): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data instanceof Uint8Array) return data;
  throw new TypeError('data to sign must be a string or bytes');
}

export function hmacSha256(key: KeyObject | Uint8Array, data: SignableData): Buffer {
  return createHmac('sha256', key).update(asBytes(data)).digest();
}

/** Constant-time check of a full 32-byte tag; any other length (or type) is simply false. */
export function verifyHmacSha256(key: KeyObject | Uint8Array, data: SignableData, tag: unknown): boolean {
  if (!(tag instanceof Uint8Array) || tag.length !== HMAC_SHA256_BYTES) return false;
  const expected = hmacSha256(key, data);
  return timingSafeEqual(expected, tag);
}

export function formatSignature(keyVersion: string, tag: Buffer): string {
  return `${SIGNATURE_PREFIX}:${keyVersion}:${tag.toString('base64url')}`;
}

/** Parses a signature string; null for anything malformed (wrong type, prefix, length, alphabet). */
export function parseSignature(signature: unknown): { keyVersion: string; tag: Buffer } | null {
  if (typeof signature !== 'string' || signature.length > 128) return null;
  const parts = signature.split(':');
  if (parts.length !== 3) return null;
  const [prefix, keyVersion, tag] = parts as [string, string, string];
  if (prefix !== SIGNATURE_PREFIX || !KEY_VERSION_PATTERN.test(keyVersion) || !TAG_B64URL.test(tag)) return null;
  const bytes = Buffer.from(tag, 'base64url');
  return bytes.length === HMAC_SHA256_BYTES ? { keyVersion, tag: bytes } : null;
}
