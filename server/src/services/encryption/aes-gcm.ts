/**
 * AES-256-GCM primitives with this project's policy built in: 256-bit keys, 96-bit IVs,
 * 128-bit tags — nothing else is accepted. Node accepts shorter tags unless told otherwise,
 * so decryption passes `authTagLength: 16` *and* checks the length itself. Plaintext is
 * returned only after the tag verified; on failure the partial output is zeroed.
 */
import { createCipheriv, createDecipheriv, randomBytes, type KeyObject } from 'node:crypto';
import { DecryptionError } from './errors';

export const AES_KEY_BYTES = 32;
export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;
export const ALGORITHM = 'AES-256-GCM' as const;

export interface SealedBox {
  iv: Buffer;
  ciphertext: Buffer;
  authTag: Buffer;
}

// Random IVs are drawn from a pool filled by the CSPRNG (as crypto.randomUUID does): one
// randomBytes call per 512 IVs instead of one per message. Every refill allocates a new
// buffer, so an IV handed out is never overwritten and never handed out twice.
const IV_POOL_BYTES = GCM_IV_BYTES * 512;
let ivPool: Buffer = Buffer.alloc(0);
let ivOffset = 0;

/** A fresh random 96-bit IV. */
export function randomIv(): Buffer {
  if (ivOffset + GCM_IV_BYTES > ivPool.length) {
    ivPool = randomBytes(IV_POOL_BYTES);
    ivOffset = 0;
  }
  const iv = ivPool.subarray(ivOffset, ivOffset + GCM_IV_BYTES);
  ivOffset += GCM_IV_BYTES;
  return iv;
}

function keyIsAes256(key: KeyObject | Buffer): boolean {
  if (Buffer.isBuffer(key)) return key.length === AES_KEY_BYTES;
  return key.type === 'secret' && key.symmetricKeySize === AES_KEY_BYTES;
}

/** Encrypts under a random IV (or the given one — tests and interop only). */
export function sealAesGcm(
  key: KeyObject | Buffer,
  plaintext: Uint8Array,
  aad?: Uint8Array | null,
  iv: Buffer = randomIv(),
): SealedBox {
  if (!keyIsAes256(key)) throw new TypeError('AES-256-GCM needs a 32-byte key');
  if (iv.length !== GCM_IV_BYTES) throw new TypeError('AES-256-GCM IVs are 12 bytes');
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: GCM_TAG_BYTES });
  if (aad && aad.length > 0) cipher.setAAD(aad);
  let ciphertext = cipher.update(plaintext);
  const rest = cipher.final();
  if (rest.length > 0) ciphertext = Buffer.concat([ciphertext, rest]);
  return { iv, ciphertext, authTag: cipher.getAuthTag() };
}

/**
 * Decrypts and authenticates. Anything outside the policy (key, IV or tag size) and any
 * authentication failure throws the one DecryptionError; no plaintext escapes on failure.
 */
export function openAesGcm(
  key: KeyObject | Buffer,
  iv: Uint8Array,
  ciphertext: Uint8Array,
  authTag: Uint8Array,
  aad?: Uint8Array | null,
): Buffer {
  if (!keyIsAes256(key) || iv.length !== GCM_IV_BYTES || authTag.length !== GCM_TAG_BYTES) {
    throw new DecryptionError('malformed');
  }
  let out: Buffer | null = null;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: GCM_TAG_BYTES });
    decipher.setAuthTag(authTag);
    if (aad && aad.length > 0) decipher.setAAD(aad);
    out = decipher.update(ciphertext);
    const rest = decipher.final(); // throws when the tag does not verify
    return rest.length > 0 ? Buffer.concat([out, rest]) : out;
  } catch {
    out?.fill(0);
    throw new DecryptionError('authentication-failed');
  }
}
