/**
 * The encryption module (CONTRACT §5). See docs/ENCRYPTION.md.
 */
export { createEncryptionService } from './service';
export type { Aad, CryptoOptions, EncryptionService, EncryptionServiceOptions, MasterKeyInfo } from './service';
export type { EncryptedData, BinaryEncryptedData } from './envelope';
export {
  parseEncryptedData,
  parseEncryptedString,
  formatEncryptedString,
  keyVersionOfEncryptedString,
  TEXT_FORM_PREFIX,
} from './envelope';
export { ALGORITHM, GCM_IV_BYTES, GCM_TAG_BYTES, AES_KEY_BYTES, sealAesGcm, openAesGcm, randomIv } from './aes-gcm';
export { hmacSha256, verifyHmacSha256, parseSignature, formatSignature, HMAC_SHA256_BYTES } from './hmac';
export { createPasswordHasher, prehashPassword, MIN_BCRYPT_COST, MAX_PASSWORD_BYTES } from './passwords';
export type { PasswordHasher } from './passwords';
export {
  createMasterKey,
  derivedKeys,
  deriveSubkey,
  environmentKeyVersion,
  keyFingerprint,
  HKDF_INFO_ENCRYPTION,
  HKDF_INFO_SIGNATURE,
  KEY_VERSION_PATTERN,
} from './master-key';
export type { KeySource, MasterKey } from './master-key';
export {
  DecryptionError,
  KeyUnavailableError,
  PasswordPolicyError,
  RotationNotSupportedError,
  UnknownKeyVersionError,
} from './errors';
export { staticKeyProvider } from './providers/static';
export { environmentKeyProvider, ENVIRONMENT_KEY_ID, ENVIRONMENT_ROTATION_HELP } from './providers/environment';
export type { EnvironmentKeyProvider } from './providers/environment';
export { createKeyVaultSource, DEFAULT_KEY_VAULT_CLIENT_OPTIONS } from './providers/key-vault';
export type { KeyVaultSourceOptions, TokenCredential } from './providers/key-vault';
export { createCachedKeyProvider, defaultMaxStaleMs } from './providers/cached';
export type { CachedKeyProvider, CachedKeyProviderOptions } from './providers/cached';
export type {
  KeyEventSink,
  KeyProviderEvent,
  KeyProviderStatus,
  KeyVersionInfo,
  MasterKeyProvider,
  RemoteKeySource,
} from './providers/types';
export { createSecretStore, secretAad, SECRET_NAME_PATTERN } from './secret-store';
export type { SecretMetadata, SecretStore } from './secret-store';
export { rewrapEncryptedSecrets, RewrapRefusedError } from './rewrap';
export type { RewrapOptions, RewrapReport, RewrapFailure } from './rewrap';
export { buildEncryption, createMasterKeyProviderFromConfig, auditKeyEvents } from './setup';
export { SYSTEM_TENANT } from '../audit/catalog';
export type { EncryptionSetup, KeyVaultDeps } from './setup';
