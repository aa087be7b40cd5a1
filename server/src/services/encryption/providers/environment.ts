import { KeyUnavailableError, RotationNotSupportedError, UnknownKeyVersionError } from '../errors';
import { createMasterKey, environmentKeyVersion, type MasterKey } from '../master-key';
import type { KeyVersionInfo, MasterKeyProvider } from './types';

export const ENVIRONMENT_KEY_ID = 'env:FLEET_ENCRYPTION_KEY';

export const ENVIRONMENT_ROTATION_HELP =
  'The master key comes from the environment (FLEET_ENCRYPTION_KEY) and cannot be rotated through the API. ' +
  'Rotate it by configuration: (1) generate a key with `openssl rand -base64 32`; ' +
  '(2) add it to FLEET_ENCRYPTION_PREVIOUS_KEYS on every instance (as next:<key>) so all can decrypt it; ' +
  '(3) make it FLEET_ENCRYPTION_KEY and move the old key to FLEET_ENCRYPTION_PREVIOUS_KEYS (as <old version>:<old key>); ' +
  '(4) run `npm run keys:rewrap`; (5) remove the old key once no data uses it. ' +
  'Better: configure AZURE_KEYVAULT_URL, which rotates here. See docs/ENCRYPTION.md.';

export interface EnvironmentKeyProvider extends MasterKeyProvider {
  /** Whether this version is one of the configured keys (no I/O). */
  hasVersion(version: string): boolean;
  readonly hasCurrent: boolean;
}

/**
 * FLEET_ENCRYPTION_KEY (current, may be null when only older keys are configured) and
 * FLEET_ENCRYPTION_PREVIOUS_KEYS (`name:base64key`, decrypt only). Each key answers to its
 * derived version (`env-` + 64-bit HMAC of the key) and to the name it was configured under,
 * so data stays readable however the operator names an old key.
 */
/** The rotation help when the key is the generated development key (in the secrets file). */
function devKeyRotationHelp(file: string): string {
  return (
    `The master key is the generated development key in ${file} (no FLEET_ENCRYPTION_KEY is set) and cannot be rotated through the API. ` +
    'To try rotation locally: set FLEET_ENCRYPTION_KEY to a new key (`openssl rand -base64 32`) and FLEET_ENCRYPTION_PREVIOUS_KEYS to <old version>:<the FLEET_ENCRYPTION_KEY value in that file>, restart, ' +
    'then run `npm run keys:rewrap`. Production rotates in Key Vault (AZURE_KEYVAULT_URL). See docs/ENCRYPTION.md.'
  );
}

export function environmentKeyProvider(opts: {
  currentKey: Buffer | null;
  previousKeys?: Readonly<Record<string, Buffer>>;
  devSecretsFile?: string | null;
}): EnvironmentKeyProvider {
  const byVersion = new Map<string, MasterKey>();
  const listed: MasterKey[] = [];
  let current: MasterKey | null = null;
  if (opts.currentKey) {
    current = createMasterKey({
      keyId: ENVIRONMENT_KEY_ID,
      version: environmentKeyVersion(opts.currentKey),
      source: 'environment',
      material: opts.currentKey,
    });
    byVersion.set(current.version, current);
    listed.push(current);
  }
  for (const [name, material] of Object.entries(opts.previousKeys ?? {})) {
    const derived = environmentKeyVersion(material);
    if (current && derived === current.version) continue; // the current key listed again
    const k = createMasterKey({
      keyId: 'env:FLEET_ENCRYPTION_PREVIOUS_KEYS',
      version: derived,
      source: 'environment',
      material,
    });
    if (!byVersion.has(derived)) {
      byVersion.set(derived, k);
      listed.push(k);
    }
    if (!byVersion.has(name)) byVersion.set(name, k);
  }
  const currentPromise = current ? Promise.resolve(current) : null;
  return {
    hasCurrent: current !== null,
    hasVersion: (version) => byVersion.has(version),
    getCurrentKey() {
      return currentPromise ?? Promise.reject(new KeyUnavailableError('FLEET_ENCRYPTION_KEY is not set'));
    },
    peekCurrentKey: () => current,
    peekKeyVersion: (version) => byVersion.get(version) ?? null,
    async getKeyVersion(version) {
      const k = byVersion.get(version);
      if (!k) throw new UnknownKeyVersionError(version);
      return k;
    },
    async rotate() {
      throw new RotationNotSupportedError(
        opts.devSecretsFile ? devKeyRotationHelp(opts.devSecretsFile) : ENVIRONMENT_ROTATION_HELP,
      );
    },
    async listVersions(): Promise<KeyVersionInfo[]> {
      return listed.map((k) => ({
        version: k.version,
        source: 'environment',
        enabled: true,
        createdAt: null,
        current: k === current,
      }));
    },
    status: () => ({
      source: 'environment',
      cachedUntil: null,
      degraded: false,
      lastError: current ? null : 'FLEET_ENCRYPTION_KEY is not set',
    }),
  };
}
