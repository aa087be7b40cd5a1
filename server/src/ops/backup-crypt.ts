/**
 * Authenticated, streaming encryption of backup files (AES-256-GCM in independently
 * authenticated chunks, the construction of age/Tink "streaming AEAD").
 *
 * File format, version 1 (all integers big-endian):
 *
 *   header (60 bytes)
 *     0..7    magic "FLEETBK1"
 *     8..11   chunk size N in bytes (uint32; 65536 when written by this module, 1 KiB..16 MiB accepted)
 *     12..27  key id: the first 16 bytes of SHA-256("fleet-backup-key-id\0" || key); tells which
 *             key a file needs without revealing it (the key is 32 random bytes)
 *     28..59  salt: 32 random bytes, fresh for every file
 *   chunks, one after another
 *     AES-256-GCM(fileKey, nonce_i, aad = the 60 header bytes, plaintext_i) || 16-byte tag
 *     - plaintext_i is exactly N bytes, except the last chunk: 1..N bytes (0 only for empty input;
 *       there is always a last chunk)
 *     - nonce_i (12 bytes) = counter i as an 88-bit integer || 0x01 for the last chunk, 0x00 otherwise
 *     - fileKey = HKDF-SHA256(ikm = key, salt = salt, info = "fleet-backup v1 AES-256-GCM", 32 bytes)
 *
 * What this gives: any change to the header, a chunk or a tag fails authentication; chunks
 * cannot be reordered (counter in the nonce), dropped from the end or extended past the end
 * (final flag); a per-file key means nonces never repeat under one key. Decryption releases a
 * chunk only after its tag verified, but a file is only known to be complete at its final
 * chunk: callers decrypt to a temporary file and use it only when decryption succeeded.
 *
 * Key file (BACKUP_ENCRYPTION_KEY_FILE): base64 of exactly 32 random bytes on one line,
 * e.g. `openssl rand -base64 32 > backup.key; chmod 600 backup.key`.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { decodeKey32 } from '../config';

const MAGIC = Buffer.from('FLEETBK1', 'ascii');
export const HEADER_LEN = 60;
export const TAG_LEN = 16;
const DEFAULT_CHUNK_SIZE = 64 * 1024;
export const MIN_CHUNK_SIZE = 1024;
const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
const INFO = Buffer.from('fleet-backup v1 AES-256-GCM', 'ascii');
const KEY_ID_PREFIX = Buffer.from('fleet-backup-key-id\0', 'ascii');

export type BackupCryptErrorCode = 'BAD_KEY_FILE' | 'NOT_A_BACKUP' | 'WRONG_KEY' | 'CORRUPT';

export class BackupCryptError extends Error {
  constructor(
    readonly code: BackupCryptErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'BackupCryptError';
  }
}

/** Parses key file contents: base64 of exactly 32 bytes, surrounding whitespace ignored. */
export function parseKey(contents: Buffer | string): Buffer {
  const text = Buffer.isBuffer(contents) ? contents.toString('utf8') : contents;
  const key = decodeKey32(text.trim());
  if (!key)
    throw new BackupCryptError(
      'BAD_KEY_FILE',
      'the backup key file must hold base64 of exactly 32 random bytes (create one with `openssl rand -base64 32`)',
    );
  if (new Set(key).size < 8)
    throw new BackupCryptError('BAD_KEY_FILE', 'the backup key has too little variety to be random');
  return key;
}

/** Reads and parses a key file; `warnings` receives advice (e.g. permissive file mode). */
export function readKeyFile(file: string, warnings: string[] = []): Buffer {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new BackupCryptError('BAD_KEY_FILE', `the backup key file ${file} cannot be read`);
  }
  if (!st.isFile()) throw new BackupCryptError('BAD_KEY_FILE', `the backup key file ${file} is not a regular file`);
  if (st.size > 1024)
    throw new BackupCryptError('BAD_KEY_FILE', `the backup key file ${file} is too large to be a key file`);
  if ((st.mode & 0o077) !== 0)
    warnings.push(
      `the backup key file ${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
    );
  let contents: Buffer;
  try {
    contents = fs.readFileSync(file);
  } catch {
    throw new BackupCryptError('BAD_KEY_FILE', `the backup key file ${file} cannot be read`);
  }
  return parseKey(contents);
}

export function keyId(key: Buffer): Buffer {
  return createHash('sha256').update(KEY_ID_PREFIX).update(key).digest().subarray(0, 16);
}

function fileKey(key: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', key, salt, INFO, 32));
}

function nonce(counter: bigint, final: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(counter, 3);
  n[11] = final ? 1 : 0;
  return n;
}

export interface BackupHeader {
  chunkSize: number;
  keyId: Buffer;
  salt: Buffer;
}

export function parseHeader(header: Buffer): BackupHeader {
  if (header.length < HEADER_LEN || !header.subarray(0, 8).equals(MAGIC)) {
    throw new BackupCryptError('NOT_A_BACKUP', 'not an encrypted Fleet backup (bad magic or too short)');
  }
  const chunkSize = header.readUInt32BE(8);
  if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE)
    throw new BackupCryptError('CORRUPT', 'the backup header is corrupt (chunk size out of range)');
  return { chunkSize, keyId: Buffer.from(header.subarray(12, 28)), salt: Buffer.from(header.subarray(28, 60)) };
}

/** A byte queue that hands out exact-size slices without quadratic copying. */
class ByteQueue {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    if (b.length === 0) return;
    this.parts.push(b);
    this.length += b.length;
  }
  take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const head = this.parts[0] as Buffer;
      const need = n - off;
      if (head.length <= need) {
        head.copy(out, off);
        off += head.length;
        this.parts.shift();
      } else {
        head.copy(out, off, 0, need);
        this.parts[0] = head.subarray(need);
        off += need;
      }
    }
    this.length -= n;
    return out;
  }
}

/** Encrypts a plaintext stream into the v1 format. */
export function createEncryptStream(key: Buffer, opts: { chunkSize?: number } = {}): Transform {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (key.length !== 32) throw new BackupCryptError('BAD_KEY_FILE', 'the backup key must be 32 bytes');
  if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE)
    throw new RangeError('chunk size out of range');
  const salt = randomBytes(32);
  const header = Buffer.alloc(HEADER_LEN);
  MAGIC.copy(header, 0);
  header.writeUInt32BE(chunkSize, 8);
  keyId(key).copy(header, 12);
  salt.copy(header, 28);
  const k = fileKey(key, salt);
  const queue = new ByteQueue();
  let counter = 0n;
  let headerSent = false;

  const seal = (plain: Buffer, final: boolean): Buffer => {
    const c = createCipheriv('aes-256-gcm', k, nonce(counter, final), { authTagLength: TAG_LEN });
    counter += 1n;
    c.setAAD(header);
    const body = Buffer.concat([c.update(plain), c.final()]);
    return Buffer.concat([body, c.getAuthTag()]);
  };
  const sendHeader = (t: Transform): void => {
    if (!headerSent) {
      t.push(header);
      headerSent = true;
    }
  };
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      sendHeader(this);
      queue.push(chunk);
      // Strictly more than one chunk buffered: the chunk taken is known not to be the last.
      while (queue.length > chunkSize) this.push(seal(queue.take(chunkSize), false));
      cb();
    },
    flush(cb: TransformCallback) {
      sendHeader(this);
      this.push(seal(queue.take(queue.length), true));
      cb();
    },
  });
}

/**
 * Decrypts the v1 format with whichever of `keys` the header names. Errors are
 * BackupCryptError: NOT_A_BACKUP, WRONG_KEY, CORRUPT (altered, truncated or extended).
 */
export function createDecryptStream(keys: readonly Buffer[]): Transform {
  const queue = new ByteQueue();
  let header: Buffer | null = null;
  let k: Buffer | null = null;
  let chunkSize = 0;
  let counter = 0n;

  const open = (sealed: Buffer, final: boolean): Buffer => {
    const body = sealed.subarray(0, sealed.length - TAG_LEN);
    const tag = sealed.subarray(sealed.length - TAG_LEN);
    try {
      const d = createDecipheriv('aes-256-gcm', k as Buffer, nonce(counter, final), { authTagLength: TAG_LEN });
      d.setAAD(header as Buffer);
      d.setAuthTag(tag);
      const out = Buffer.concat([d.update(body), d.final()]);
      counter += 1n;
      return out;
    } catch {
      throw new BackupCryptError('CORRUPT', 'authentication failed: the backup was altered, truncated or extended');
    }
  };
  const readHeader = (): void => {
    if (header || queue.length < HEADER_LEN) return;
    const h = queue.take(HEADER_LEN);
    const parsed = parseHeader(h);
    const key = keys.find((candidate) => keyId(candidate).equals(parsed.keyId));
    if (!key) {
      throw new BackupCryptError(
        'WRONG_KEY',
        `wrong key: the backup was encrypted with key id ${parsed.keyId.toString('hex')}, which matches none of the given keys`,
      );
    }
    header = h;
    chunkSize = parsed.chunkSize;
    k = fileKey(key, parsed.salt);
  };
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      try {
        queue.push(chunk);
        readHeader();
        if (header) {
          while (queue.length > chunkSize + TAG_LEN) this.push(open(queue.take(chunkSize + TAG_LEN), false));
        }
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb: TransformCallback) {
      try {
        readHeader();
        if (!header)
          throw new BackupCryptError('NOT_A_BACKUP', 'not an encrypted Fleet backup (shorter than its header)');
        if (queue.length < TAG_LEN)
          throw new BackupCryptError('CORRUPT', 'authentication failed: the backup was altered, truncated or extended');
        this.push(open(queue.take(queue.length), true));
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}
