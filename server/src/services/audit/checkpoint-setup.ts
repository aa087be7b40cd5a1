/** Wires the checkpoint publisher from configuration (compose.ts and the CLIs). */
import { DefaultAzureCredential } from '@azure/identity';
import type { Config } from '../../config';
import type { Pool } from '../../db/pool';
import type { Clock } from '../../lib/clock';
import type { Logger } from '../../lib/logger';
import { createBlobStore, type BlobStore } from '../archive/blob-store';
import type { KeyVaultDeps } from '../encryption';
import type { SiemService } from '../siem/service';
import {
  createCheckpointService,
  environmentCheckpointKey,
  keyVaultCheckpointKey,
  type CheckpointKeySource,
  type CheckpointService,
} from './checkpoints';

export function checkpointKeyFromConfig(
  config: Config,
  clock: Clock,
  keyVault?: KeyVaultDeps,
): CheckpointKeySource | null {
  const a = config.auditLog;
  if (a.checkpointKeyVaultName && config.keys.keyVaultUrl) {
    return keyVaultCheckpointKey({
      vaultUrl: config.keys.keyVaultUrl,
      secretName: a.checkpointKeyVaultName,
      logName: a.name,
      credential: keyVault?.credential ?? new DefaultAzureCredential(),
      clientOptions: keyVault?.clientOptions,
      timeoutMs: keyVault?.timeoutMs,
      ttlMs: config.keys.cacheTtlSec * 1000,
      clock,
    });
  }
  if (a.checkpointSigningKey) return environmentCheckpointKey(a.name, a.checkpointSigningKey);
  return null;
}

export function buildCheckpointService(deps: {
  config: Config;
  pool: Pool;
  logger: Logger;
  clock: Clock;
  keyVault?: KeyVaultDeps;
  siem?: SiemService | null;
  blobStore?: BlobStore | null;
}): CheckpointService {
  const { config } = deps;
  const key = checkpointKeyFromConfig(config, deps.clock, deps.keyVault);
  // The store is only used with a key (publishing, and verifying published copies).
  const blobStore = !key ? null : deps.blobStore !== undefined ? deps.blobStore : createBlobStore(config.archive);
  const siem = deps.siem && config.siem.provider ? deps.siem : null;
  return createCheckpointService({
    pool: deps.pool,
    logger: deps.logger,
    clock: deps.clock,
    config,
    key,
    blobStore,
    siem: siem
      ? async (q, e) => {
          await siem.sendEvent(
            {
              tenantId: e.tenantId,
              eventType: 'audit.checkpoint',
              severity: 'low',
              message: `audit checkpoint ${e.origin} size ${e.treeSize}`,
              time: e.at,
              resourceType: 'audit_checkpoint',
              resourceId: String(e.treeSize),
              details: { origin: e.origin, treeSize: e.treeSize, keyId: e.keyId, blobName: e.blobName, note: e.note },
            },
            q,
          );
        }
      : null,
  });
}
