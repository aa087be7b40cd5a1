import { RotationNotSupportedError, UnknownKeyVersionError } from '../errors';
import { createMasterKey, type MasterKey } from '../master-key';
import type { KeyVersionInfo, MasterKeyProvider } from './types';

/**
 * Fixed keys held in memory: `keys` maps version → 32-byte key; `currentVersion` encrypts.
 * For tests and for embedding the service where keys come from elsewhere. Cannot rotate:
 * build a new provider with the new version added.
 */
export function staticKeyProvider(keys: Record<string, Buffer>, currentVersion: string): MasterKeyProvider {
  const byVersion = new Map<string, MasterKey>();
  for (const [version, material] of Object.entries(keys)) {
    byVersion.set(version, createMasterKey({ keyId: 'static', version, source: 'static', material }));
  }
  const current = byVersion.get(currentVersion);
  if (!current)
    throw new TypeError(`staticKeyProvider: currentVersion "${currentVersion}" is not one of the given keys`);
  const currentPromise = Promise.resolve(current);
  return {
    getCurrentKey: () => currentPromise,
    peekCurrentKey: () => current,
    peekKeyVersion: (version) => byVersion.get(version) ?? null,
    async getKeyVersion(version) {
      const k = byVersion.get(version);
      if (!k) throw new UnknownKeyVersionError(version);
      return k;
    },
    async rotate() {
      throw new RotationNotSupportedError(
        'Static keys cannot be rotated by the service: construct a new staticKeyProvider with the new version as current and the old versions kept.',
      );
    },
    async listVersions(): Promise<KeyVersionInfo[]> {
      return [...byVersion.values()].map((k) => ({
        version: k.version,
        source: 'static',
        enabled: true,
        createdAt: null,
        current: k === current,
      }));
    },
    status: () => ({ source: 'static', cachedUntil: null, degraded: false, lastError: null }),
  };
}
