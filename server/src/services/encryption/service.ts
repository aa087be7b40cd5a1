/**
 * The encryption service (CONTRACT §5): AES-256-GCM envelopes under versioned master keys,
 * HMAC-SHA256 signatures, bcrypt passwords, master-key metadata and rotation.
 *
 * Keys: each master key version is only ever used as HKDF-SHA256 input. The AES key is
 * HKDF(master, salt = empty, info = "fleet-security-api/v1/aes-256-gcm", 32 bytes), the
 * signature key the same with info "fleet-security-api/v1/hmac-sha256" (see master-key.ts).
 * The AAD given to GCM is exactly the caller's `aad` (none when absent or empty).
 */
import { ALGORITHM, openAesGcm, sealAesGcm, type SealedBox } from './aes-gcm';
import {
  checkBinaryEncryptedData,
  formatEncryptedString,
  parseEncryptedData,
  parseEncryptedString,
  toEncryptedData,
  type BinaryEncryptedData,
  type EncryptedData,
} from './envelope';
import { DecryptionError, RotationNotSupportedError, UnknownKeyVersionError } from './errors';
import { formatSignature, hmacSha256, parseSignature, verifyHmacSha256, type SignableData } from './hmac';
import { derivedKeys, type KeySource, type MasterKey } from './master-key';
import { createPasswordHasher, MIN_BCRYPT_COST } from './passwords';
import type { KeyVersionInfo, MasterKeyProvider } from './providers/types';

export type Aad = string | Uint8Array;
export interface CryptoOptions {
  /** Additional authenticated data: binds the ciphertext to its context (e.g. tenant + record id). */
  aad?: Aad | null;
}

/** What GET /master-key shows: never key material. */
export interface MasterKeyInfo {
  keyId: string;
  version: string;
  algorithm: typeof ALGORITHM;
  source: KeySource;
  fingerprint: string;
  /** ISO time the cached key is next re-read from its source; null when not cached (environment). */
  cachedUntil: string | null;
}

export interface EncryptionService {
  encrypt(plaintext: string | Uint8Array, opts?: CryptoOptions): Promise<EncryptedData>;
  /** Decrypts to a UTF-8 string (throws DecryptionError if the plaintext is not UTF-8; use decryptToBuffer for bytes). */
  decrypt(data: EncryptedData, opts?: CryptoOptions): Promise<string>;
  decryptToBuffer(data: EncryptedData, opts?: CryptoOptions): Promise<Buffer>;
  /** The compact text form `v1:<keyVersion>:<iv>:<ciphertext>:<tag>` (base64url). */
  encryptToString(plaintext: string | Uint8Array, opts?: CryptoOptions): Promise<string>;
  decryptFromString(text: string, opts?: CryptoOptions): Promise<string>;
  decryptFromStringToBuffer(text: string, opts?: CryptoOptions): Promise<Buffer>;
  /** The envelope with raw bytes: no base64 cost, for large payloads and bytea columns. */
  encryptBinary(plaintext: string | Uint8Array, opts?: CryptoOptions): Promise<BinaryEncryptedData>;
  decryptBinary(data: BinaryEncryptedData, opts?: CryptoOptions): Promise<Buffer>;

  hashPassword(password: string): Promise<string>;
  verifyPassword(password: string, hash: string): Promise<boolean>;
  passwordNeedsRehash(hash: string): boolean;

  /** `s1:<keyVersion>:<base64url HMAC-SHA256>` under the current key's signature subkey. */
  createSignature(data: SignableData): Promise<string>;
  /** false for a wrong, malformed, wrong-length or unknown-version signature; never throws for those. */
  verifySignature(data: SignableData, signature: unknown): Promise<boolean>;

  /** The current master key (material is non-enumerable: never serialize it anywhere). */
  getMasterKey(): Promise<MasterKey>;
  /** Metadata of the current key for GET /master-key. */
  describeMasterKey(): Promise<MasterKeyInfo>;
  /** Creates a new master key version (Key Vault) and returns its metadata. */
  rotateKey(): Promise<MasterKeyInfo>;
  listKeyVersions(): Promise<KeyVersionInfo[]>;
  readonly keyProvider: MasterKeyProvider;
}

export interface EncryptionServiceOptions {
  keyProvider: MasterKeyProvider;
  /** bcrypt cost, at least 12 (BCRYPT_COST). */
  bcryptCost?: number;
}

function toBytes(plaintext: string | Uint8Array): Uint8Array {
  if (typeof plaintext === 'string') {
    if (!plaintext.isWellFormed())
      throw new TypeError('plaintext must be well-formed Unicode (it contains a lone surrogate)');
    return Buffer.from(plaintext, 'utf8');
  }
  if (plaintext instanceof Uint8Array) return plaintext;
  throw new TypeError('plaintext must be a string or bytes');
}

function aadBytes(opts: CryptoOptions | undefined): Uint8Array | null {
  const aad = opts?.aad;
  if (aad === undefined || aad === null) return null;
  if (typeof aad === 'string') return Buffer.from(aad, 'utf8');
  if (aad instanceof Uint8Array) return aad;
  throw new TypeError('aad must be a string or bytes');
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function asUtf8(plain: Buffer): string {
  try {
    return utf8.decode(plain);
  } catch {
    plain.fill(0);
    throw new DecryptionError('invalid-utf8');
  }
}

export function createEncryptionService(opts: EncryptionServiceOptions): EncryptionService {
  const provider = opts.keyProvider;
  if (!provider || typeof provider.getCurrentKey !== 'function' || typeof provider.getKeyVersion !== 'function') {
    throw new TypeError(
      'createEncryptionService needs a keyProvider (staticKeyProvider, environmentKeyProvider or a Key Vault provider)',
    );
  }
  const passwords = createPasswordHasher({ cost: opts.bcryptCost ?? MIN_BCRYPT_COST });
  const peek = provider.peekCurrentKey?.bind(provider);
  const peekVersion = provider.peekKeyVersion?.bind(provider);

  async function currentKey(): Promise<MasterKey> {
    return (peek && peek()) || provider.getCurrentKey();
  }

  /** The key a ciphertext names; an unknown version is a decryption failure like any other. */
  async function keyForDecryption(version: string): Promise<MasterKey> {
    try {
      return await provider.getKeyVersion(version);
    } catch (err) {
      if (err instanceof UnknownKeyVersionError) throw new DecryptionError('unknown-key-version');
      throw err; // KeyUnavailableError: the source is down, not the data
    }
  }

  // Hot paths: when the key is cached (peek*), no await and no closure — one resolved promise
  // per call. Synchronous throws (bad input, DecryptionError) become rejections.
  function seal<T>(
    plaintext: string | Uint8Array,
    o: CryptoOptions | undefined,
    shape: (version: string, box: SealedBox) => T,
  ): Promise<T> {
    try {
      const pt = toBytes(plaintext);
      const aad = aadBytes(o);
      const key = peek && peek();
      if (key) return Promise.resolve(shape(key.version, sealAesGcm(derivedKeys(key).encryption, pt, aad)));
      return provider.getCurrentKey().then((k) => shape(k.version, sealAesGcm(derivedKeys(k).encryption, pt, aad)));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  function open<I>(parse: (input: I) => BinaryEncryptedData, input: I, o: CryptoOptions | undefined): Promise<Buffer> {
    try {
      const d = parse(input);
      const aad = aadBytes(o);
      const key = peekVersion && peekVersion(d.keyVersion);
      if (key) return Promise.resolve(openAesGcm(derivedKeys(key).encryption, d.iv, d.ciphertext, d.authTag, aad));
      return keyForDecryption(d.keyVersion).then((k) =>
        openAesGcm(derivedKeys(k).encryption, d.iv, d.ciphertext, d.authTag, aad),
      );
    } catch (err) {
      return Promise.reject(err);
    }
  }

  function info(key: MasterKey): MasterKeyInfo {
    const status = provider.status?.();
    const cachedUntil =
      status && status.cachedUntil !== null && status.source === key.source
        ? new Date(status.cachedUntil).toISOString()
        : null;
    return {
      keyId: key.keyId,
      version: key.version,
      algorithm: ALGORITHM,
      source: key.source,
      fingerprint: key.fingerprint,
      cachedUntil,
    };
  }

  return {
    keyProvider: provider,
    encrypt: (plaintext, o) => seal(plaintext, o, toEncryptedData),
    decrypt: (data, o) => open(parseEncryptedData, data, o).then(asUtf8),
    decryptToBuffer: (data, o) => open(parseEncryptedData, data, o),
    encryptToString: (plaintext, o) => seal(plaintext, o, formatEncryptedString),
    decryptFromString: (text, o) => open(parseEncryptedString, text, o).then(asUtf8),
    decryptFromStringToBuffer: (text, o) => open(parseEncryptedString, text, o),
    encryptBinary: (plaintext, o) =>
      seal(plaintext, o, (keyVersion, box): BinaryEncryptedData => ({
        v: 1,
        keyVersion,
        iv: box.iv,
        ciphertext: box.ciphertext,
        authTag: box.authTag,
      })),
    decryptBinary: (data, o) => open(checkBinaryEncryptedData, data, o),

    hashPassword: (password) => passwords.hashPassword(password),
    verifyPassword: (password, hash) => passwords.verifyPassword(password, hash),
    passwordNeedsRehash: (hash) => passwords.needsRehash(hash),

    async createSignature(data) {
      const key = await currentKey();
      return formatSignature(key.version, hmacSha256(derivedKeys(key).signature, data));
    },
    async verifySignature(data, signature) {
      const parsed = parseSignature(signature);
      if (!parsed || (typeof data !== 'string' && !(data instanceof Uint8Array))) return false;
      let key = peekVersion ? peekVersion(parsed.keyVersion) : null;
      if (!key) {
        try {
          key = await provider.getKeyVersion(parsed.keyVersion);
        } catch (err) {
          if (err instanceof UnknownKeyVersionError) return false;
          throw err;
        }
      }
      return verifyHmacSha256(derivedKeys(key).signature, data, parsed.tag);
    },

    getMasterKey: currentKey,
    async describeMasterKey() {
      return info(await provider.getCurrentKey());
    },
    async rotateKey() {
      if (!provider.rotate)
        throw new RotationNotSupportedError(
          'This key provider cannot create key versions; rotate the key by configuration.',
        );
      return info(await provider.rotate());
    },
    async listKeyVersions() {
      if (provider.listVersions) return provider.listVersions();
      const k = await provider.getCurrentKey();
      return [{ version: k.version, source: k.source, enabled: true, createdAt: null, current: true }];
    },
  };
}
