/**
 * Re-encrypts stored ciphertexts under the current master key version (`npm run keys:rewrap`).
 * Columns this service owns: encrypted_secrets.ciphertext. For each tenant holding rows under
 * another version, rows are claimed in batches (FOR UPDATE SKIP LOCKED, so two runs or a
 * concurrent writer never conflict), decrypted with their AAD under their own version,
 * re-encrypted under the current one, and updated only if still unchanged — each batch in one
 * transaction together with its `key.rewrap` audit row. A row that does not decrypt is left
 * untouched and reported (id, name, version, reason; never data).
 */
import type { Pool } from '../../db/pool';
import { withTenant } from '../../db/transaction';
import type { Logger } from '../../lib/logger';
import type { AuditService } from '../audit/service';
import { keyVersionOfEncryptedString } from './envelope';
import { DecryptionError } from './errors';
import type { KeySource } from './master-key';
import * as repo from './repository';
import { secretAad } from './secret-store';
import type { EncryptionService } from './service';

export interface RewrapDeps {
  pool: Pool;
  encryption: EncryptionService;
  audit: AuditService;
  logger: Logger;
}

export interface RewrapOptions {
  /** Count what would be re-encrypted; change nothing. */
  dryRun?: boolean;
  batchSize?: number;
  /** Limit the run to one tenant. */
  tenantId?: string | null;
}

export interface RewrapFailure {
  tenantId: string;
  id: string;
  name: string;
  keyVersion: string;
  reason: string;
}

export interface RewrapReport {
  keyId: string;
  targetVersion: string;
  source: KeySource;
  dryRun: boolean;
  /** Rows per key version before the run (all tenants in scope). */
  before: Array<{ keyVersion: string; rows: number }>;
  /** Rows not under the target version before the run. */
  stale: number;
  /**
   * Dry run only: stale key versions no key can be found for (not the current key, not among
   * the previous keys or the vault's versions). A real run would fail those rows.
   */
  unavailable: Array<{ keyVersion: string; rows: number; reason: string }>;
  rewrapped: number;
  failed: RewrapFailure[];
  tenants: Array<{ tenantId: string; rewrapped: number; failed: number }>;
}

/** The key source is degraded; re-encrypting now could move data onto a fallback or stale key. */
export class RewrapRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RewrapRefusedError';
  }
}

const MIN_UUID = '00000000-0000-0000-0000-000000000000';

export async function rewrapEncryptedSecrets(deps: RewrapDeps, opts: RewrapOptions = {}): Promise<RewrapReport> {
  const { pool, encryption, audit, logger } = deps;
  const batchSize = opts.batchSize ?? 200;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000)
    throw new RangeError('batchSize must be 1..10000');

  const target = await encryption.keyProvider.getCurrentKey();
  const status = encryption.keyProvider.status?.();
  if (status?.degraded) {
    throw new RewrapRefusedError(
      `the master key source is degraded (${status.lastError ?? 'serving a cached or fallback key'}); rewrap refuses to re-encrypt until the current key comes from its source again`,
    );
  }

  const usage = (await repo.keyUsage(pool)).filter((u) => !opts.tenantId || u.tenant_id === opts.tenantId);
  const byVersion = new Map<string, number>();
  const staleTenants = new Set<string>();
  let stale = 0;
  for (const u of usage) {
    const n = Number(u.row_count);
    byVersion.set(u.key_version, (byVersion.get(u.key_version) ?? 0) + n);
    if (u.key_version !== target.version) {
      stale += n;
      staleTenants.add(u.tenant_id);
    }
  }
  const report: RewrapReport = {
    keyId: target.keyId,
    targetVersion: target.version,
    source: target.source,
    dryRun: opts.dryRun === true,
    before: [...byVersion.entries()]
      .map(([keyVersion, rows]) => ({ keyVersion, rows }))
      .sort((a, b) => a.keyVersion.localeCompare(b.keyVersion)),
    stale,
    unavailable: [],
    rewrapped: 0,
    failed: [],
    tenants: [],
  };
  if (report.dryRun) {
    // Find out now what the real run would find: a version whose key cannot be obtained.
    for (const b of report.before) {
      if (b.keyVersion === target.version) continue;
      try {
        await encryption.keyProvider.getKeyVersion(b.keyVersion);
      } catch (err) {
        report.unavailable.push({
          keyVersion: b.keyVersion,
          rows: b.rows,
          reason: (err as Error).message || (err as Error).name,
        });
      }
    }
    return report;
  }

  for (const tenantId of [...staleTenants].sort()) {
    const t = { tenantId, rewrapped: 0, failed: 0 };
    let cursor = MIN_UUID;
    for (;;) {
      const batch = await withTenant(pool, tenantId, async (client) => {
        const rows = await repo.claimStaleSecrets(client, tenantId, target.version, cursor, batchSize);
        const fromVersions: Record<string, number> = {};
        const failures: RewrapFailure[] = [];
        let done = 0;
        let toVersion = target.version;
        for (const row of rows) {
          const aad = secretAad(row.tenant_id, row.name);
          let plain: Buffer | null = null;
          try {
            plain = await encryption.decryptFromStringToBuffer(row.ciphertext, { aad });
            const text = await encryption.encryptToString(plain, { aad });
            toVersion = keyVersionOfEncryptedString(text) as string;
            if (await repo.rewrapSecret(client, tenantId, row.id, toVersion, text, row.key_version)) {
              done += 1;
              fromVersions[row.key_version] = (fromVersions[row.key_version] ?? 0) + 1;
            }
          } catch (err) {
            // The key source being down or a database error stops the run (the batch rolls back).
            if (!(err instanceof DecryptionError)) throw err;
            const reason = `decryption failed (${err.reason})`;
            failures.push({ tenantId, id: row.id, name: row.name, keyVersion: row.key_version, reason });
            logger.warn('keys:rewrap: row left unchanged', {
              tenantId,
              id: row.id,
              name: row.name,
              keyVersion: row.key_version,
              reason,
            });
          } finally {
            plain?.fill(0);
          }
        }
        if (rows.length > 0) {
          await audit.record(
            {
              tenantId,
              userId: null,
              action: 'key.rewrap',
              resourceType: 'encrypted_secrets',
              resourceId: null,
              result: failures.length > 0 ? 'failure' : 'success',
              severity: 'high',
              errorMessage:
                failures.length > 0 ? `${failures.length} row(s) could not be decrypted and were left unchanged` : null,
              before: { fromVersions },
              after: {
                toVersion,
                rewrapped: done,
                failed: failures.length,
                failedIds: failures.slice(0, 20).map((f) => f.id),
              },
              userAgent: 'keys:rewrap',
            },
            client,
          );
        }
        return { rows: rows.length, lastId: rows.at(-1)?.id ?? cursor, done, failures };
      });
      t.rewrapped += batch.done;
      t.failed += batch.failures.length;
      report.rewrapped += batch.done;
      report.failed.push(...batch.failures);
      cursor = batch.lastId;
      if (batch.rows < batchSize) break;
    }
    report.tenants.push(t);
    logger.info('keys:rewrap: tenant done', {
      tenantId,
      rewrapped: t.rewrapped,
      failed: t.failed,
      toVersion: target.version,
    });
  }
  return report;
}
