/**
 * SQL of the audit archive. One function per statement; tenant queries run inside withTenant.
 * The audit rows themselves are read through the audit repository (audit/repository.ts).
 */
import type { Queryable } from '../../db/pool';

export interface ExportRow {
  id: string;
  tenant_id: string;
  seq: number;
  first_id: string;
  last_id: string;
  row_count: number;
  first_created_at: Date;
  last_created_at: Date;
  range_from: Date | null;
  range_to: Date | null;
  container: string;
  blob_name: string;
  sha256: string;
  prev_digest: string;
  chain_head: string | null;
  digest: string;
  status: 'pending' | 'complete';
  immutable_until: Date | null;
  created_by: string | null;
  created_at: Date;
  completed_at: Date | null;
}

const EXPORT_COLUMNS = `id::text, tenant_id, seq, first_id::text, last_id::text, row_count, first_created_at, last_created_at, range_from, range_to,
  container, blob_name, sha256, prev_digest, chain_head, digest, status, immutable_until, created_by::text, created_at, completed_at`;

const ARCHIVE_HORIZON = `SELECT audit_archive_horizon()::text AS h`;

/** Highest audit id below which every row is committed (waits ≤ 500 ms for in-flight inserts). */
export async function archiveHorizon(q: Queryable): Promise<string> {
  const { rows } = await q.query<{ h: string }>(ARCHIVE_HORIZON);
  return rows[0]?.h ?? '0';
}

const PENDING_TENANTS = `SELECT tenant_id FROM audit_archive_pending_tenants($1, $2)`;

export async function pendingTenants(q: Queryable, after: string, horizon: string): Promise<string[]> {
  const { rows } = await q.query<{ tenant_id: string }>(PENDING_TENANTS, [after, horizon]);
  return rows.map((r) => r.tenant_id);
}

const ARCHIVED_TENANTS = `SELECT tenant_id FROM audit_archive_tenants()`;

export async function archivedTenants(q: Queryable): Promise<string[]> {
  const { rows } = await q.query<{ tenant_id: string }>(ARCHIVED_TENANTS);
  return rows.map((r) => r.tenant_id);
}

const GET_CURSOR = `SELECT last_scanned_id::text AS c FROM audit_archive_state WHERE id`;

export async function getCursor(q: Queryable): Promise<string> {
  const { rows } = await q.query<{ c: string }>(GET_CURSOR);
  return rows[0]?.c ?? '0';
}

const SET_CURSOR = `UPDATE audit_archive_state SET last_scanned_id = GREATEST(last_scanned_id, $1::bigint), updated_at = now() WHERE id`;

export async function setCursor(q: Queryable, value: string): Promise<void> {
  await q.query(SET_CURSOR, [value]);
}

const PURGED_BEFORE = `SELECT max(purged_before) AS b FROM audit_chain_anchors WHERE tenant_id = $1`;

/** The retention purge's newest cut-off for the tenant (rows created before it may be gone), or null. */
export async function purgedBefore(q: Queryable, tenantId: string): Promise<Date | null> {
  const { rows } = await q.query<{ b: Date | null }>(PURGED_BEFORE, [tenantId]);
  return rows[0]?.b ?? null;
}

const LAST_EXPORT = `SELECT ${EXPORT_COLUMNS} FROM audit_exports WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1`;

export async function lastExport(q: Queryable, tenantId: string): Promise<ExportRow | null> {
  const { rows } = await q.query<ExportRow>(LAST_EXPORT, [tenantId]);
  return rows[0] ?? null;
}

const PENDING_EXPORT = `SELECT ${EXPORT_COLUMNS} FROM audit_exports WHERE tenant_id = $1 AND status = 'pending' ORDER BY seq LIMIT 1`;

export async function pendingExport(q: Queryable, tenantId: string): Promise<ExportRow | null> {
  const { rows } = await q.query<ExportRow>(PENDING_EXPORT, [tenantId]);
  return rows[0] ?? null;
}

const LIST_EXPORTS = `SELECT ${EXPORT_COLUMNS} FROM audit_exports WHERE tenant_id = $1 ORDER BY seq`;

export async function listExports(q: Queryable, tenantId: string): Promise<ExportRow[]> {
  const { rows } = await q.query<ExportRow>(LIST_EXPORTS, [tenantId]);
  return rows;
}

const COVERING_EXPORT = `
SELECT ${EXPORT_COLUMNS} FROM audit_exports
WHERE tenant_id = $1 AND status = 'complete'
  AND ($2::timestamptz IS NULL OR last_created_at >= $2)
  AND ($3::timestamptz IS NULL OR first_created_at < $3)
ORDER BY seq DESC LIMIT 1`;

/** The newest complete export holding rows of [from, to) (open ends when null). */
export async function coveringExport(
  q: Queryable,
  tenantId: string,
  from: Date | null,
  to: Date | null,
): Promise<ExportRow | null> {
  const { rows } = await q.query<ExportRow>(COVERING_EXPORT, [tenantId, from, to]);
  return rows[0] ?? null;
}

const INSERT_EXPORT = `
INSERT INTO audit_exports (tenant_id, seq, first_id, last_id, row_count, first_created_at, last_created_at, range_from, range_to,
  container, blob_name, sha256, prev_digest, chain_head, digest, status, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'pending', $16)
RETURNING ${EXPORT_COLUMNS}`;

export interface NewExport {
  tenantId: string;
  seq: number;
  firstId: string;
  lastId: string;
  count: number;
  firstCreatedAt: Date;
  lastCreatedAt: Date;
  rangeFrom: Date | null;
  rangeTo: Date | null;
  container: string;
  blobName: string;
  sha256: string;
  prevDigest: string;
  chainHead: string | null;
  digest: string;
  createdBy: string | null;
}

export async function insertExport(q: Queryable, e: NewExport): Promise<ExportRow> {
  const { rows } = await q.query<ExportRow>(INSERT_EXPORT, [
    e.tenantId,
    e.seq,
    e.firstId,
    e.lastId,
    e.count,
    e.firstCreatedAt,
    e.lastCreatedAt,
    e.rangeFrom,
    e.rangeTo,
    e.container,
    e.blobName,
    e.sha256,
    e.prevDigest,
    e.chainHead,
    e.digest,
    e.createdBy,
  ]);
  return rows[0] as ExportRow;
}

const MARK_COMPLETE = `
UPDATE audit_exports SET status = 'complete', completed_at = $2, immutable_until = $3
WHERE id = $1 AND status = 'pending'`;

export async function markComplete(q: Queryable, id: string, at: Date, immutableUntil: Date | null): Promise<void> {
  await q.query(MARK_COMPLETE, [id, at, immutableUntil]);
}

const EXPORT_LOCK = `SELECT pg_try_advisory_lock(hashtextextended($1, 7306)) AS ok`;
const EXPORT_LOCK_WAIT = `SELECT pg_advisory_lock(hashtextextended($1, 7306))`;
const EXPORT_UNLOCK = `SELECT pg_advisory_unlock(hashtextextended($1, 7306))`;

/** Session-level lock: one export per tenant at a time across instances. */
export async function lockTenantExport(q: Queryable, tenantId: string, wait: boolean): Promise<boolean> {
  if (wait) {
    await q.query(EXPORT_LOCK_WAIT, [`audit-export:${tenantId}`]);
    return true;
  }
  const { rows } = await q.query<{ ok: boolean }>(EXPORT_LOCK, [`audit-export:${tenantId}`]);
  return rows[0]?.ok === true;
}

export async function unlockTenantExport(q: Queryable, tenantId: string): Promise<void> {
  await q.query(EXPORT_UNLOCK, [`audit-export:${tenantId}`]);
}
