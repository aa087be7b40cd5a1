/**
 * The immutable audit archive: a tenant's not-yet-archived audit rows become one NDJSON block
 * blob `audit/<tenant>/<yyyy>/<mm>/<dd>/<firstId>-<lastId>.ndjson`, uploaded with
 * If-None-Match: * (never overwritten), its SHA-256 in the blob metadata and in audit_exports
 * with the previous export's digest (a digest chain, like CloudTrail's digest files).
 *
 * Gap-free: exports of a tenant cover consecutive id ranges, and only ids up to the archive
 * horizon (audit_archive_horizon(): every lower id is committed) are exported, so a row that
 * commits late can never fall behind the archive.
 * Crash-safe and idempotent: the export row is written as 'pending' before the upload; a
 * later run re-renders the same rows (same bytes, same name), finds the blob already there
 * with the same hash, and completes the bookkeeping. The same range is never written twice.
 */
import type { Actor } from '../../domain/actor';
import type { Config } from '../../config';
import type { Pool, PoolClient, Queryable } from '../../db/pool';
import { discardClient, withClient, withTransaction } from '../../db/transaction';
import { ConflictError, DomainError, UnavailableError, conflict, serviceUnavailable } from '../../lib/errors';
import type { Clock } from '../../lib/clock';
import type { Logger } from '../../lib/logger';
import { periodic } from '../../lib/periodic';
import type { AuditService } from '../audit/service';
import type { SiemMetrics } from '../siem/metrics';
import type { BlobStore } from './blob-store';
import { auditCreatedAt, type AuditRecord } from '../audit/record';
import { sealBatch, selectAuditRecordRange } from '../audit/repository';
import { auditChainHeadReader, type ChainHeadReader } from './chain-head';
import { ARCHIVE_FORMAT, GENESIS_DIGEST, blobName, exportDigest, renderNdjson, sha256Hex } from './format';
import * as repo from './repository';

/** Rows per blob; a larger backlog becomes several consecutive exports. */
const MAX_ROWS_PER_EXPORT = 10_000;
/** Exports one tenant may produce per periodic run (the rest waits for the next run). */
const MAX_EXPORTS_PER_TENANT_PER_RUN = 20;

export interface ExportedBlob {
  name: string;
  container: string;
  sha256: string;
  digest: string;
  previousDigest: string;
  count: number;
  firstId: string;
  lastId: string;
  seq: number;
  immutableUntil: string | null;
}

export interface ExportResult {
  /** false: nothing new to archive; `blob` is the existing export covering the range. */
  created: boolean;
  blob: ExportedBlob;
}

export interface ExportOptions {
  from?: Date | null;
  to?: Date | null;
  /** Who asked (POST /audit/blob-storage); absent for the periodic run. */
  actor?: Actor;
}

export interface RunResult {
  tenants: number;
  exports: number;
  failed: number;
}

export interface ArchiveService {
  readonly enabled: boolean;
  readonly blobStore: BlobStore | null;
  /** Exports the tenant's not-yet-archived rows (POST /audit/blob-storage). */
  exportTenant(tenantId: string, opts?: ExportOptions): Promise<ExportResult>;
  /** One periodic run over every tenant with rows to archive. */
  runOnce(): Promise<RunResult>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface ArchiveServiceDeps {
  pool: Pool;
  config: Config;
  logger: Logger;
  clock: Clock;
  audit: AuditService;
  metrics: SiemMetrics;
  blobStore: BlobStore | null;
  chainHead?: ChainHeadReader;
  maxRowsPerExport?: number;
}

function toExportedBlob(e: repo.ExportRow): ExportedBlob {
  return {
    name: e.blob_name,
    container: e.container,
    sha256: e.sha256,
    digest: e.digest,
    previousDigest: e.prev_digest,
    count: e.row_count,
    firstId: e.first_id,
    lastId: e.last_id,
    seq: e.seq,
    immutableUntil: e.immutable_until ? e.immutable_until.toISOString() : null,
  };
}

function blobMetadata(e: repo.ExportRow): Record<string, string> {
  return {
    format: ARCHIVE_FORMAT,
    tenant: encodeURIComponent(e.tenant_id),
    exportseq: String(e.seq),
    firstid: e.first_id,
    lastid: e.last_id,
    count: String(e.row_count),
    sha256: e.sha256,
    prevdigest: e.prev_digest,
    digest: e.digest,
    ...(e.chain_head ? { chainhead: encodeURIComponent(e.chain_head) } : {}),
  };
}

/** A transaction on the tenant's lock holder, with the tenant context row-level security reads. */
function inTenantTx<T>(client: PoolClient, tenantId: string, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  return withTransaction(client, fn, { tenantId });
}

class NothingToExport extends Error {}

/** The storage refused the immutability policy of a written blob: the export stays pending and is retried. */
export class ImmutabilityRefusedError extends UnavailableError {
  constructor(cause: unknown) {
    super('The archive storage did not accept the immutability policy; the export is incomplete and will be retried.', {
      internalReason: `immutability policy refused: ${(cause as Error).message.split('\n')[0]}`,
      cause,
    });
  }
}

export function createArchiveService(deps: ArchiveServiceDeps): ArchiveService {
  const { pool, config, clock, audit, metrics } = deps;
  const blobs = deps.blobStore;
  const enabled = blobs !== null;
  const chainHead = deps.chainHead ?? auditChainHeadReader(audit);
  const maxRows = deps.maxRowsPerExport ?? MAX_ROWS_PER_EXPORT;
  const log = deps.logger.child({ component: 'archive' });
  let running: Promise<RunResult> | null = null;
  let stopping = false;

  function storage(): BlobStore {
    if (!blobs)
      throw new UnavailableError(
        'No audit archive is configured (AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_URL).',
      );
    return blobs;
  }

  /** Renders rows first..last of an export again (resume after a crash) and checks they still hash the same. */
  async function rerender(client: PoolClient, e: repo.ExportRow): Promise<Buffer> {
    const rows = await inTenantTx(client, e.tenant_id, (c) =>
      selectAuditRecordRange(c, e.tenant_id, String(BigInt(e.first_id) - 1n), e.last_id, e.row_count + 1),
    );
    const content = renderNdjson(rows);
    if (rows.length !== e.row_count || sha256Hex(content) !== e.sha256) {
      throw new ConflictError(
        'The audit rows of an unfinished export changed since it was prepared; the archive refuses to continue.',
        {
          internalReason: `pending export ${e.tenant_id}#${e.seq} (${e.first_id}-${e.last_id}) no longer matches its recorded SHA-256`,
        },
      );
    }
    return content;
  }

  async function complete(
    client: PoolClient,
    e: repo.ExportRow,
    content: Buffer | null,
    actor: Actor | undefined,
  ): Promise<repo.ExportRow> {
    const store = storage();
    const body = content ?? (await rerender(client, e));
    await store.ensureContainer();
    const put = await store.putIfAbsent(e.blob_name, body, blobMetadata(e));
    if (put === 'exists') {
      const existing = await store.get(e.blob_name);
      if (!existing || sha256Hex(existing.content) !== e.sha256) {
        throw new ConflictError(
          'An archive blob with this name already exists with different content; it was not overwritten.',
          {
            internalReason: `blob ${e.blob_name} exists with a different SHA-256`,
          },
        );
      }
    }
    let immutableUntil: Date | null = null;
    if (config.archive.immutabilityDays) {
      immutableUntil = new Date(clock.now() + config.archive.immutabilityDays * 86_400_000);
      try {
        await store.setImmutability(e.blob_name, immutableUntil);
      } catch (err) {
        throw new ImmutabilityRefusedError(err);
      }
    }
    const at = new Date(clock.now());
    await inTenantTx(client, e.tenant_id, async (c) => {
      await repo.markComplete(c, e.id, at, immutableUntil);
      await audit.record(
        {
          tenantId: e.tenant_id,
          userId: actor?.userId ?? null,
          action: 'audit.export',
          resourceType: 'audit_archive',
          resourceId: e.blob_name.slice(0, 256),
          after: {
            container: e.container,
            blob: e.blob_name,
            sha256: e.sha256,
            digest: e.digest,
            previousDigest: e.prev_digest,
            chainHead: e.chain_head,
            count: e.row_count,
            firstId: e.first_id,
            lastId: e.last_id,
            seq: e.seq,
            immutableUntil: immutableUntil ? immutableUntil.toISOString() : null,
            trigger: actor ? 'api' : 'schedule',
          },
          severity: 'medium',
          ipAddress: actor?.ip ?? null,
          userAgent: actor?.userAgent ?? null,
          requestId: actor?.requestId ?? null,
        },
        c,
      );
    });
    metrics.archiveExports.inc({ result: 'created' });
    log.info('audit rows archived', { tenantId: e.tenant_id, blob: e.blob_name, count: e.row_count, seq: e.seq });
    return { ...e, status: 'complete', completed_at: at, immutable_until: immutableUntil };
  }

  /** Plans (pending row) and completes the next export; throws NothingToExport when caught up. */
  async function exportNext(
    client: PoolClient,
    tenantId: string,
    horizon: string,
    opts: ExportOptions,
  ): Promise<repo.ExportRow> {
    // Seal what is committed, so the recorded chain head covers the rows being exported.
    // -1 (another instance is sealing) is fine: the head is then that of the last seal.
    await sealBatch(client, 10_000).catch((err: Error) =>
      log.warn('could not seal before export', { err: err.message }),
    );
    const planned = await inTenantTx(client, tenantId, async (c) => {
      const last = await repo.lastExport(c, tenantId);
      const rows = await selectAuditRecordRange(c, tenantId, last?.last_id ?? '0', horizon, maxRows);
      const first = rows[0];
      if (first && opts.from && auditCreatedAt(first) < opts.from) {
        throw conflict(
          'Audit rows older than `from` are not archived yet; archive files are gap-free, so export them first (omit `from`).',
        );
      }
      const cut = opts.to ? rows.findIndex((r) => auditCreatedAt(r) >= (opts.to as Date)) : -1;
      const take = cut === -1 ? rows : rows.slice(0, cut);
      if (take.length === 0) throw new NothingToExport();
      const firstRow = take[0] as AuditRecord;
      const lastRow = take[take.length - 1] as AuditRecord;
      const content = renderNdjson(take);
      const sha256 = sha256Hex(content);
      const seq = (last?.seq ?? 0) + 1;
      const prevDigest = last?.digest ?? GENESIS_DIGEST;
      const head = await chainHead(c, tenantId);
      const digest = exportDigest({
        tenantId,
        seq,
        firstId: firstRow.id,
        lastId: lastRow.id,
        count: take.length,
        sha256,
        prevDigest,
        chainHead: head,
      });
      const row = await repo.insertExport(c, {
        tenantId,
        seq,
        firstId: firstRow.id,
        lastId: lastRow.id,
        count: take.length,
        firstCreatedAt: auditCreatedAt(firstRow),
        lastCreatedAt: auditCreatedAt(lastRow),
        rangeFrom: opts.from ?? null,
        rangeTo: opts.to ?? null,
        container: storage().container,
        blobName: blobName(tenantId, firstRow.createdAt, firstRow.id, lastRow.id),
        sha256,
        prevDigest,
        chainHead: head,
        digest,
        createdBy: opts.actor?.userId ?? null,
      });
      return { row, content };
    });
    return complete(client, planned.row, planned.content, opts.actor);
  }

  async function recordFailure(tenantId: string, err: unknown, actor: Actor | undefined): Promise<void> {
    const reason =
      err instanceof DomainError
        ? (err.internalReason ?? err.message)
        : ((err as Error).message?.split('\n')[0] ?? String(err));
    metrics.archiveExports.inc({ result: 'failed' });
    log.warn('audit archive export failed', { tenantId, reason });
    await audit
      .record({
        tenantId,
        userId: actor?.userId ?? null,
        action: 'audit.export.failed',
        resourceType: 'audit_archive',
        resourceId: config.archive.container,
        result: 'failure',
        severity: 'high',
        errorMessage: reason.slice(0, 2000),
        ipAddress: actor?.ip ?? null,
        userAgent: actor?.userAgent ?? null,
        requestId: actor?.requestId ?? null,
      })
      .catch((e: Error) => log.error('could not record audit.export.failed', { err: e.message }));
  }

  function publicError(err: unknown): unknown {
    if (err instanceof DomainError) return err;
    return serviceUnavailable(
      'The audit archive storage is unavailable; try again later.',
      (err as Error).message?.split('\n')[0],
    );
  }

  /**
   * Runs under the tenant's export lock: finishes an unfinished export first, then exports
   * up to `horizon`. `loop`: keep exporting until caught up (periodic job).
   */
  function withTenantLock<T>(
    tenantId: string,
    wait: boolean,
    fn: (client: PoolClient) => Promise<T>,
  ): Promise<T | null> {
    return withClient(pool, async (client) => {
      if (!(await repo.lockTenantExport(client, tenantId, wait))) return null;
      try {
        return await fn(client);
      } finally {
        // A connection that may still hold the session lock never goes back to the pool.
        await repo.unlockTenantExport(client, tenantId).catch(() => discardClient(client));
      }
    });
  }

  async function resumePending(
    client: PoolClient,
    tenantId: string,
    actor: Actor | undefined,
  ): Promise<repo.ExportRow | null> {
    const pending = await inTenantTx(client, tenantId, (c) => repo.pendingExport(c, tenantId));
    return pending ? complete(client, pending, null, actor) : null;
  }

  const service: ArchiveService = {
    enabled,
    blobStore: blobs,
    async exportTenant(tenantId, opts = {}) {
      storage();
      try {
        const r = await withTenantLock(tenantId, true, async (client) => {
          await resumePending(client, tenantId, opts.actor);
          const horizon = await repo.archiveHorizon(client);
          try {
            return { created: true, row: await exportNext(client, tenantId, horizon, opts) };
          } catch (err) {
            if (!(err instanceof NothingToExport)) throw err;
            const existing = await inTenantTx(
              client,
              tenantId,
              async (c) =>
                (await repo.coveringExport(c, tenantId, opts.from ?? null, opts.to ?? null)) ??
                (await repo.coveringExport(c, tenantId, null, null)),
            );
            if (!existing) throw conflict('There are no audit rows to archive yet.');
            return { created: false, row: existing };
          }
        });
        const done = r as { created: boolean; row: repo.ExportRow };
        return { created: done.created, blob: toExportedBlob(done.row) };
      } catch (err) {
        const isClientError = err instanceof ConflictError && !err.internalReason;
        if (!isClientError) await recordFailure(tenantId, err, opts.actor);
        throw publicError(err);
      }
    },
    runOnce() {
      if (!enabled) return Promise.resolve({ tenants: 0, exports: 0, failed: 0 });
      if (running) return running;
      running = (async () => {
        const result: RunResult = { tenants: 0, exports: 0, failed: 0 };
        const horizon = await repo.archiveHorizon(pool);
        const cursor = await repo.getCursor(pool);
        const tenants = await repo.pendingTenants(pool, cursor, horizon);
        let complete = true;
        for (const tenantId of tenants) {
          if (stopping) {
            complete = false;
            break;
          }
          result.tenants += 1;
          try {
            const done = await withTenantLock(tenantId, false, async (client) => {
              if (await resumePending(client, tenantId, undefined)) result.exports += 1;
              for (let i = 0; i < MAX_EXPORTS_PER_TENANT_PER_RUN; i++) {
                try {
                  const row = await exportNext(client, tenantId, horizon, {});
                  result.exports += 1;
                  if (row.row_count < maxRows) return true;
                } catch (err) {
                  if (err instanceof NothingToExport) return true;
                  throw err;
                }
              }
              return false;
            });
            if (done !== true) complete = false;
          } catch (err) {
            complete = false;
            result.failed += 1;
            await recordFailure(tenantId, err, undefined);
          }
        }
        if (complete) await repo.setCursor(pool, horizon);
        return result;
      })().finally(() => {
        running = null;
      });
      return running;
    },
    async start() {
      if (!enabled || job.started) return;
      stopping = false;
      job.start();
      log.info('audit archive job started', {
        intervalMs: config.archive.intervalMs,
        container: config.archive.container,
      });
    },
    async stop() {
      stopping = true;
      await job.stop();
      if (running) await running.catch(() => undefined);
    },
  };
  // First run soon after start (a restart must not postpone archiving by a whole interval).
  const job = periodic(() => service.runOnce(), {
    intervalMs: config.archive.intervalMs,
    firstDelayMs: Math.min(config.archive.intervalMs, 60_000),
    onError: (err) => log.warn('periodic audit archive run failed', { err: (err as Error).message }),
  });
  return service;
}

export type { Queryable };
