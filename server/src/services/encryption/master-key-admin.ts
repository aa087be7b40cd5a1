/**
 * Master key administration (CONTRACT §3, §9): reading the current key's metadata and rotating
 * it, each audited in the platform tenant's trail (key.master.read, high; key.master.rotated,
 * critical). The caller is a platform admin (the routes check it). Rotation: at most one attempt
 * a minute (429 RATE_LIMITED + Retry-After); the Key Vault call runs with no database
 * transaction open (no pooled connection waits on the vault): the vault first, then a short
 * transaction for the audit row.
 */
import type { Actor } from '../../domain/actor';
import type { Pool } from '../../db/pool';
import { withTenant } from '../../db/transaction';
import type { Clock } from '../../lib/clock';
import { conflict, rateLimited, serviceUnavailable } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import type { AuditService } from '../audit/service';
import { KeyUnavailableError, RotationNotSupportedError } from './errors';
import { createRotationThrottle } from './rotation-throttle';
import type { EncryptionService, MasterKeyInfo } from './service';

export interface MasterKeyAdmin {
  /** The current key's metadata (never key material); audited. 503 when the key is unavailable. */
  describe(actor: Actor): Promise<MasterKeyInfo>;
  /** A new key version becomes current; audited. 409 for a key rotated by configuration, 503 when the vault is down. */
  rotate(actor: Actor): Promise<MasterKeyInfo>;
}

export function createMasterKeyAdmin(deps: {
  pool: Pool;
  clock: Clock;
  logger: Logger;
  audit: AuditService;
  encryption: EncryptionService;
  platformTenant: string;
}): MasterKeyAdmin {
  const { pool, audit, encryption, logger } = deps;
  const platform = deps.platformTenant;
  const throttle = createRotationThrottle({ pool, clock: deps.clock, platformTenant: platform });

  async function describe(actor: Actor): Promise<MasterKeyInfo> {
    let info: MasterKeyInfo;
    try {
      info = await encryption.describeMasterKey();
    } catch (err) {
      if (!(err instanceof KeyUnavailableError)) throw err;
      await audit.recordAs(actor, {
        tenantId: platform,
        action: 'key.master.read',
        resourceType: 'master_key',
        result: 'failure',
        severity: 'high',
        errorMessage: err.message.slice(0, 2000),
      });
      throw serviceUnavailable('The master key is unavailable; try again later.', err.message);
    }
    await audit.recordAs(actor, {
      tenantId: platform,
      action: 'key.master.read',
      resourceType: 'master_key',
      resourceId: info.keyId.slice(0, 256),
      severity: 'high',
      after: { version: info.version, source: info.source, fingerprint: info.fingerprint },
    });
    return info;
  }

  /** Asks the vault for a new version; a refusal is audited and mapped to the contract's error. */
  async function rotateInVault(
    actor: Actor,
    before: { keyId: string; version: string } | null,
    gate: { attempted: boolean },
  ): Promise<MasterKeyInfo> {
    const failed = (err: Error) =>
      audit.recordAs(actor, {
        tenantId: platform,
        action: 'key.master.rotated',
        resourceType: 'master_key',
        resourceId: before?.keyId.slice(0, 256) ?? null,
        result: 'failure',
        severity: 'critical',
        errorMessage: err.message.slice(0, 2000),
        before: before ? { version: before.version } : undefined,
      });
    try {
      gate.attempted = true;
      return await encryption.rotateKey();
    } catch (err) {
      if (err instanceof RotationNotSupportedError) {
        gate.attempted = false; // the vault was not asked: nothing to throttle
        await failed(err);
        throw conflict(err.message);
      }
      if (err instanceof KeyUnavailableError) {
        await failed(err);
        throw serviceUnavailable(
          'The key vault is unavailable; the master key was not rotated. Try again later.',
          err.message,
        );
      }
      throw err;
    }
  }

  async function rotate(actor: Actor): Promise<MasterKeyInfo> {
    const gate = await throttle.acquire();
    if (!gate.ok)
      throw rateLimited(
        gate.retryAfterSec,
        'The master key was rotated (or a rotation was attempted) less than a minute ago; try again later.',
      );
    const state = { attempted: false };
    try {
      const before = encryption.keyProvider.peekCurrentKey?.() ?? (await encryption.getMasterKey().catch(() => null));
      const rotated = await rotateInVault(actor, before, state);
      try {
        await withTenant(pool, platform, (client) =>
          audit.recordAs(
            actor,
            {
              tenantId: platform,
              action: 'key.master.rotated',
              resourceType: 'master_key',
              resourceId: rotated.keyId.slice(0, 256),
              severity: 'critical',
              before: before ? { version: before.version, fingerprint: before.fingerprint } : undefined,
              after: { version: rotated.version, fingerprint: rotated.fingerprint, source: rotated.source },
            },
            client,
          ),
        );
      } catch (err) {
        logger.error('master key rotated but the audit row could not be written', {
          requestId: actor.requestId,
          version: rotated.version,
          keyId: rotated.keyId,
        });
        throw err;
      }
      return rotated;
    } finally {
      gate.release(state.attempted);
    }
  }

  return { describe, rotate };
}
