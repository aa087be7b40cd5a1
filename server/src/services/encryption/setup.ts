/**
 * Builds the encryption service from configuration for the composition root:
 * - AZURE_KEYVAULT_URL set: Key Vault (DefaultAzureCredential) behind the cache, with
 *   FLEET_ENCRYPTION_KEY / FLEET_ENCRYPTION_PREVIOUS_KEYS as the audited fallback and as
 *   decrypt-only keys for data encrypted before the vault was configured;
 * - otherwise: the environment keys.
 * Key events (refresh failure, fallback) become audit rows of the `_system` tenant.
 */
import { DefaultAzureCredential } from '@azure/identity';
import type { SecretClientOptions } from '@azure/keyvault-secrets';
import type { Config } from '../../config';
import type { Pool } from '../../db/pool';
import type { Clock } from '../../lib/clock';
import type { Logger } from '../../lib/logger';
import type { AuditService } from '../audit/service';
import { describeError } from './errors';
import { createCachedKeyProvider, type CachedKeyProvider } from './providers/cached';
import { environmentKeyProvider } from './providers/environment';
import { createKeyVaultSource, type TokenCredential } from './providers/key-vault';
import type { KeyEventSink, MasterKeyProvider } from './providers/types';
import { createSecretStore, type SecretStore } from './secret-store';
import { createEncryptionService, type EncryptionService } from './service';
import { SYSTEM_TENANT } from '../audit/catalog';

/** Test and advanced wiring: the credential and SDK options for Key Vault. */
export interface KeyVaultDeps {
  /** Default: DefaultAzureCredential (managed identity, workload identity, az login, …). */
  credential?: TokenCredential;
  clientOptions?: SecretClientOptions;
  timeoutMs?: number;
  maxStaleMs?: number;
  retryIntervalMs?: number;
}

export interface EncryptionSetup {
  encryption: EncryptionService;
  secrets: SecretStore;
  readinessChecks: Array<{ name: string; critical: boolean; check(): Promise<void> }>;
  /** Loads the current key once at start-up, so a misconfigured vault shows in the log at once. */
  start(): Promise<void>;
}

/** Key events go to the platform tenant's trail (CONTRACT §9); SYSTEM_TENANT when none is given. */
export function auditKeyEvents(audit: AuditService, tenantId: string = SYSTEM_TENANT): KeyEventSink {
  return async (e) => {
    await audit.record({
      tenantId,
      userId: null,
      action: e.action,
      resourceType: 'master_key',
      resourceId: e.keyId.slice(0, 256),
      result: 'failure',
      severity: e.severity,
      errorMessage: e.reason.slice(0, 2000),
      after: { servedVersion: e.servedVersion, servedSource: e.servedSource },
    });
  };
}

export function createMasterKeyProviderFromConfig(deps: {
  config: Config;
  logger: Logger;
  clock: Clock;
  onEvent?: KeyEventSink;
  keyVault?: KeyVaultDeps;
}): MasterKeyProvider {
  const { config, logger, clock } = deps;
  const env =
    config.keys.fallbackKey || Object.keys(config.keys.previousKeys).length > 0
      ? environmentKeyProvider({
          currentKey: config.keys.fallbackKey,
          previousKeys: config.keys.previousKeys,
          devSecretsFile: config.keys.fallbackKeyFile ?? null,
        })
      : null;
  if (!config.keys.keyVaultUrl) {
    if (!env) throw new Error('no master key source: set AZURE_KEYVAULT_URL or FLEET_ENCRYPTION_KEY');
    return env;
  }
  const kv = deps.keyVault ?? {};
  const source = createKeyVaultSource({
    vaultUrl: config.keys.keyVaultUrl,
    secretName: config.keys.masterKeyName,
    credential: kv.credential ?? new DefaultAzureCredential(),
    clientOptions: kv.clientOptions,
    timeoutMs: kv.timeoutMs,
  });
  return createCachedKeyProvider({
    source,
    fallback: env,
    ttlMs: config.keys.cacheTtlSec * 1000,
    maxStaleMs: kv.maxStaleMs,
    retryIntervalMs: kv.retryIntervalMs,
    clock,
    logger,
    onEvent: deps.onEvent,
  });
}

export function buildEncryption(deps: {
  config: Config;
  logger: Logger;
  clock: Clock;
  pool: Pool;
  audit: AuditService;
  keyVault?: KeyVaultDeps;
}): EncryptionSetup {
  const keyProvider = createMasterKeyProviderFromConfig({
    ...deps,
    onEvent: auditKeyEvents(deps.audit, deps.config.platformTenant),
  });
  const encryption = createEncryptionService({ keyProvider, bcryptCost: deps.config.bcryptCost });
  const secrets = createSecretStore({ pool: deps.pool, encryption });
  const readinessChecks: EncryptionSetup['readinessChecks'] = [];
  if (deps.config.keys.keyVaultUrl) {
    const cached = keyProvider as CachedKeyProvider;
    readinessChecks.push({
      name: 'keyVault',
      // Not critical: with a cached or fallback key the service keeps working (degraded).
      critical: false,
      async check() {
        await cached.getCurrentKey(); // cached within the TTL: no call to the vault
        const s = cached.status();
        if (s.degraded)
          throw new Error(
            s.source === 'environment'
              ? 'Key Vault unavailable: using the fallback key'
              : 'Key Vault unavailable: serving the cached key',
          );
      },
    });
  }
  return {
    encryption,
    secrets,
    readinessChecks,
    async start() {
      try {
        const k = await keyProvider.getCurrentKey();
        deps.logger.info('master key loaded', {
          keyId: k.keyId,
          version: k.version,
          source: k.source,
          fingerprint: k.fingerprint,
        });
      } catch (err) {
        deps.logger.error('master key could not be loaded at start-up; encryption fails until it can', {
          reason: describeError(err),
        });
      }
    },
  };
}
