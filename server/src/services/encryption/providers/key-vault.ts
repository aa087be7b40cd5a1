/**
 * Azure Key Vault as the master key source, through the official SDK
 * (@azure/keyvault-secrets). The key is a secret named AZURE_KEYVAULT_MASTER_KEY_NAME whose
 * value is base64 of 32 random bytes; the secret *version* is the envelope's keyVersion.
 * Rotation writes a new version (setSecret). Every call has a deadline; the SDK retries
 * transient failures a bounded number of times. Errors never include the secret value.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { SecretClient, type KeyVaultSecret, type SecretClientOptions } from '@azure/keyvault-secrets';
import { decodeKey32 } from '../../../config';
import { KeyUnavailableError, UnknownKeyVersionError, describeError } from '../errors';
import { createMasterKey, type MasterKey } from '../master-key';
import type { RemoteKeySource } from './types';

/** The SDK's credential type (@azure/core-auth TokenCredential; DefaultAzureCredential in production). */
export type TokenCredential = ConstructorParameters<typeof SecretClient>[1];

/** Key Vault secret versions are 32 hexadecimal characters. */
const KEY_VAULT_VERSION = /^[0-9a-fA-F]{32}$/;

export interface KeyVaultSourceOptions {
  vaultUrl: string;
  secretName: string;
  credential: TokenCredential;
  /** SDK client options (retry, agent, TLS, API version). Merged over the defaults below. */
  clientOptions?: SecretClientOptions;
  /** Deadline for one operation including the SDK's retries (default 10 s). */
  timeoutMs?: number;
}

export const DEFAULT_KEY_VAULT_CLIENT_OPTIONS: SecretClientOptions = {
  retryOptions: { maxRetries: 2, retryDelayInMs: 300, maxRetryDelayInMs: 3000 },
};

function statusOf(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown })?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

export function createKeyVaultSource(opts: KeyVaultSourceOptions): RemoteKeySource {
  const vaultUrl = opts.vaultUrl.replace(/\/+$/, '');
  const keyId = `${vaultUrl}/secrets/${opts.secretName}`;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const client = new SecretClient(vaultUrl, opts.credential, {
    ...DEFAULT_KEY_VAULT_CLIENT_OPTIONS,
    ...opts.clientOptions,
  });

  function toMasterKey(secret: KeyVaultSecret, expectedVersion?: string): MasterKey {
    const version = secret.properties.version;
    if (!version || !KEY_VAULT_VERSION.test(version))
      throw new KeyUnavailableError('Key Vault returned a secret without a valid version');
    if (expectedVersion && version.toLowerCase() !== expectedVersion.toLowerCase())
      throw new KeyUnavailableError('Key Vault returned a different version than requested');
    if (secret.properties.enabled === false) throw new UnknownKeyVersionError(version);
    const material = typeof secret.value === 'string' ? decodeKey32(secret.value) : null;
    if (!material) {
      throw new KeyUnavailableError(
        `the Key Vault secret ${opts.secretName} (version ${version}) is not base64 of exactly 32 bytes; store \`openssl rand -base64 32\``,
      );
    }
    try {
      return createMasterKey({ keyId, version, source: 'azure-key-vault', material });
    } finally {
      material.fill(0);
    }
  }

  return {
    source: 'azure-key-vault',
    keyId,
    isPlausibleVersion: (version) => KEY_VAULT_VERSION.test(version),
    async fetchCurrent() {
      let secret: KeyVaultSecret;
      try {
        secret = await client.getSecret(opts.secretName, { abortSignal: AbortSignal.timeout(timeoutMs) });
      } catch (err) {
        throw new KeyUnavailableError(`Key Vault read of ${opts.secretName} failed (${describeError(err)})`, {
          cause: err,
        });
      }
      return toMasterKey(secret);
    },
    async fetchVersion(version) {
      if (!KEY_VAULT_VERSION.test(version)) throw new UnknownKeyVersionError(version);
      let secret: KeyVaultSecret;
      try {
        secret = await client.getSecret(opts.secretName, { version, abortSignal: AbortSignal.timeout(timeoutMs) });
      } catch (err) {
        const status = statusOf(err);
        // 404: no such version; 403 with a disabled secret: Key Vault refuses to hand it out.
        if (status === 404 || (status === 403 && /disabled/i.test((err as Error).message)))
          throw new UnknownKeyVersionError(version);
        throw new KeyUnavailableError(
          `Key Vault read of ${opts.secretName}/${version} failed (${describeError(err)})`,
          { cause: err },
        );
      }
      return toMasterKey(secret, version);
    },
    async createVersion() {
      const material = randomBytes(32);
      const value = material.toString('base64');
      let secret: KeyVaultSecret;
      try {
        secret = await client.setSecret(opts.secretName, value, {
          contentType: 'application/octet-stream; encoding=base64',
          tags: { purpose: 'fleet-master-key', algorithm: 'AES-256-GCM', createdBy: 'fleet-security-api' },
          abortSignal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        material.fill(0);
        throw new KeyUnavailableError(
          `Key Vault write of a new ${opts.secretName} version failed (${describeError(err)})`,
          { cause: err },
        );
      }
      try {
        const key = toMasterKey({ ...secret, value: secret.value ?? value });
        if (!timingSafeEqual(key.material, material))
          throw new KeyUnavailableError('Key Vault stored a different value than was written');
        return key;
      } finally {
        material.fill(0);
      }
    },
    async listVersions() {
      const out: Array<{ version: string; source: 'azure-key-vault'; enabled: boolean; createdAt: Date | null }> = [];
      try {
        for await (const p of client.listPropertiesOfSecretVersions(opts.secretName, {
          abortSignal: AbortSignal.timeout(timeoutMs),
        })) {
          if (p.version)
            out.push({
              version: p.version,
              source: 'azure-key-vault',
              enabled: p.enabled !== false,
              createdAt: p.createdOn ?? null,
            });
        }
      } catch (err) {
        throw new KeyUnavailableError(
          `Key Vault listing of ${opts.secretName} versions failed (${describeError(err)})`,
          { cause: err },
        );
      }
      return out.sort((a, b) => (b.createdAt?.getTime() ?? 0) - (a.createdAt?.getTime() ?? 0));
    },
  };
}
