/**
 * The master key object handed around inside the process. Its 32 bytes live on a
 * non-enumerable property and `toJSON` / `util.inspect` show metadata only, so a key that
 * ends up in a log call, a JSON response or an error report never carries its material.
 */
import { createHmac, createSecretKey, hkdfSync, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';

export type KeySource = 'azure-key-vault' | 'environment' | 'static';

const MASTER_KEY_BYTES = 32;
/** Key versions: Key Vault versions (32 hex digits), `env-…`, or configured names. */
export const KEY_VERSION_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** HKDF-SHA256 `info` labels. The master key itself is never used directly by a primitive. */
export const HKDF_INFO_ENCRYPTION = 'fleet-security-api/v1/aes-256-gcm';
export const HKDF_INFO_SIGNATURE = 'fleet-security-api/v1/hmac-sha256';
const FINGERPRINT_LABEL = 'fleet-security-api/v1/fingerprint';
const VERSION_LABEL = 'fleet-security-api/v1/key-version';

export interface MasterKey {
  /** Stable name of the key (Key Vault secret id without version, or `env:FLEET_ENCRYPTION_KEY`). */
  readonly keyId: string;
  /** The version that envelopes name in `keyVersion`. */
  readonly version: string;
  readonly source: KeySource;
  /** HMAC-SHA256(key, label), first 128 bits in hex: identifies the key, reveals nothing of it. */
  readonly fingerprint: string;
  /** The 32 key bytes (non-enumerable; never serialized). */
  readonly material: Buffer;
}

/** Subkeys derived once per master key (HKDF-SHA256, empty salt, distinct info labels). */
export interface DerivedKeys {
  encryption: KeyObject;
  signature: KeyObject;
}

const derivedCache = new WeakMap<MasterKey, DerivedKeys>();
/** Where createMasterKey keeps a key's derived subkeys (non-enumerable; a property read on the hot path). */
const DERIVED = Symbol('fleet.derivedKeys');

function computeDerived(material: Buffer): DerivedKeys {
  const enc = deriveSubkey(material, HKDF_INFO_ENCRYPTION);
  const sig = deriveSubkey(material, HKDF_INFO_SIGNATURE);
  const d = { encryption: createSecretKey(enc), signature: createSecretKey(sig) };
  enc.fill(0);
  sig.fill(0);
  return d;
}

export function deriveSubkey(material: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', material, Buffer.alloc(0), info, 32));
}

/** The encryption and signature keys of a master key (memoized per key object). */
export function derivedKeys(key: MasterKey): DerivedKeys {
  const own = (key as unknown as { [DERIVED]?: DerivedKeys })[DERIVED];
  if (own) return own;
  let d = derivedCache.get(key); // a MasterKey built by other code
  if (!d) {
    d = computeDerived(key.material);
    derivedCache.set(key, d);
  }
  return d;
}

export function keyFingerprint(material: Buffer): string {
  return createHmac('sha256', material).update(FINGERPRINT_LABEL).digest('hex').slice(0, 32);
}

/** The version of an environment-supplied key: `env-` + 64 bits of HMAC-SHA256(key, label). */
export function environmentKeyVersion(material: Buffer): string {
  return `env-${createHmac('sha256', material).update(VERSION_LABEL).digest('hex').slice(0, 16)}`;
}

export function createMasterKey(opts: {
  keyId: string;
  version: string;
  source: KeySource;
  material: Buffer;
}): MasterKey {
  if (!Buffer.isBuffer(opts.material) || opts.material.length !== MASTER_KEY_BYTES) {
    throw new TypeError(`a master key must be exactly ${MASTER_KEY_BYTES} bytes`);
  }
  if (!KEY_VERSION_PATTERN.test(opts.version))
    throw new TypeError('invalid key version (1-64 letters, digits, dot, dash, underscore)');
  const material = Buffer.from(opts.material); // own copy: the caller may zero theirs
  const meta = { keyId: opts.keyId, version: opts.version, source: opts.source, fingerprint: keyFingerprint(material) };
  const key = { ...meta } as MasterKey;
  Object.defineProperty(key, 'material', { value: material, enumerable: false, writable: false, configurable: false });
  Object.defineProperty(key, DERIVED, { value: computeDerived(material), enumerable: false });
  Object.defineProperty(key, 'toJSON', { value: () => ({ ...meta }), enumerable: false });
  Object.defineProperty(key, inspect.custom, { value: () => `MasterKey ${JSON.stringify(meta)}`, enumerable: false });
  return Object.freeze(key);
}
