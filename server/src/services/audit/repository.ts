/**
 * The audit trail's SQL: one named constant per statement, `$n` parameters only, and an
 * explicit Queryable so callers can pass their transaction client. Row mappers live here.
 */
import type { Queryable } from '../../db/pool';
import { tenantContextSql } from '../../db/transaction';
import {
  AUDIT_RECORD_COLUMNS,
  auditHost,
  auditJsonValue,
  auditRecordFromRow,
  presentAuditRecord,
  type AuditRecord,
  type AuditRecordRow,
} from './record';
import type { AuditEntry, AuditResult, RecordedAudit, Severity } from './types';

/**
 * An event ready to store: the record's columns but those the database assigns (id,
 * created_at); texts sanitized and capped, before/after already JSON text.
 */
export type AuditRow = Omit<AuditRecord, 'id' | 'createdAt'> & {
  /** The acting service API key (CONTRACT §11); null for users and the system. */
  apiKeyId: string | null;
};

const INSERT_COLUMNS =
  'tenant_id, user_id, action, resource_type, resource_id, before, after, ip_address, user_agent, result, error_message, severity, request_id, api_key_id';

/** Inside the caller's transaction: its app.tenant_id must name the row's tenant (RLS). */
export const INSERT_AUDIT_LOG = `
INSERT INTO audit_logs (${INSERT_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
RETURNING id, created_at`;

/**
 * One statement, one round trip, its own implicit transaction: sets the transaction-local
 * tenant context (which ends with the statement) and inserts. The fast path of record().
 */
export const INSERT_AUDIT_LOG_IN_TENANT = `
WITH ctx AS MATERIALIZED (SELECT ${tenantContextSql('$1')} AS tenant_id)
INSERT INTO audit_logs (${INSERT_COLUMNS})
SELECT ctx.tenant_id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 FROM ctx
RETURNING id, created_at`;

function insertParams(r: AuditRow): unknown[] {
  return [
    r.tenantId,
    r.userId,
    r.action,
    r.resourceType,
    r.resourceId,
    r.before,
    r.after,
    r.ipAddress,
    r.userAgent,
    r.result,
    r.errorMessage,
    r.severity,
    r.requestId,
    r.apiKeyId,
  ];
}

function toRecorded(rows: Array<{ id: string; created_at: Date }>): RecordedAudit {
  const row = rows[0];
  if (!row) throw new Error('audit insert returned no row');
  return { id: row.id, createdAt: row.created_at };
}

export async function insertAuditLog(q: Queryable, r: AuditRow): Promise<RecordedAudit> {
  const { rows } = await q.query<{ id: string; created_at: Date }>(INSERT_AUDIT_LOG, insertParams(r));
  return toRecorded(rows);
}

export async function insertAuditLogInTenant(q: Queryable, r: AuditRow): Promise<RecordedAudit> {
  const { rows } = await q.query<{ id: string; created_at: Date }>({
    name: 'fleet_audit_insert',
    text: INSERT_AUDIT_LOG_IN_TENANT,
    values: insertParams(r),
  });
  return toRecorded(rows);
}

/**
 * Group commit: several rows of one tenant in one statement (and so one transaction and one
 * WAL flush). The columns arrive as arrays; `ORDER BY ord` inserts them in the given order, so
 * the identity values come back ascending in that order.
 */
const INSERT_AUDIT_LOGS_IN_TENANT = `
WITH ctx AS MATERIALIZED (SELECT ${tenantContextSql('$1')} AS tenant_id)
INSERT INTO audit_logs (${INSERT_COLUMNS})
SELECT ctx.tenant_id, r.user_id, r.action, r.resource_type, r.resource_id, r.before, r.after, r.ip_address, r.user_agent, r.result, r.error_message, r.severity, r.request_id, r.api_key_id
FROM ctx, unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[], $8::inet[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::uuid[])
       WITH ORDINALITY AS r(user_id, action, resource_type, resource_id, before, after, ip_address, user_agent, result, error_message, severity, request_id, api_key_id, ord)
ORDER BY r.ord
RETURNING id, created_at`;

/** Rows of one tenant in one statement; the results in the order of `rows`. */
export async function insertAuditLogsInTenant(
  q: Queryable,
  tenantId: string,
  rows: AuditRow[],
): Promise<RecordedAudit[]> {
  const col = <K extends keyof AuditRow>(k: K): Array<AuditRow[K]> => rows.map((r) => r[k]);
  const res = await q.query<{ id: string; created_at: Date }>({
    name: 'fleet_audit_insert_batch',
    text: INSERT_AUDIT_LOGS_IN_TENANT,
    values: [
      tenantId,
      col('userId'),
      col('action'),
      col('resourceType'),
      col('resourceId'),
      col('before'),
      col('after'),
      col('ipAddress'),
      col('userAgent'),
      col('result'),
      col('errorMessage'),
      col('severity'),
      col('requestId'),
      col('apiKeyId'),
    ],
  });
  if (res.rows.length !== rows.length)
    throw new Error(`audit batch insert returned ${res.rows.length} rows for ${rows.length}`);
  // bigint ids as text: compare by length, then lexically.
  const sorted = [...res.rows].sort((a, b) => a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return sorted.map((r) => ({ id: r.id, createdAt: r.created_at }));
}

/**
 * Newest first, keyset on (created_at, id). Every filter is optional ($n IS NULL); the
 * statement is planned with the actual values, so absent filters fold away.
 */
const SELECT_AUDIT_PAGE = `
SELECT ${AUDIT_RECORD_COLUMNS},
       c.seq::text AS chain_seq, encode(c.row_hash, 'hex') AS chain_hash
  FROM audit_logs l
  LEFT JOIN audit_chain c ON c.audit_id = l.id
 WHERE l.tenant_id = $1
   AND ($2::uuid IS NULL OR l.user_id = $2::uuid)
   AND ($3::text IS NULL OR l.action = $3::text)
   AND ($4::text IS NULL OR l.resource_type = $4::text)
   AND ($5::text IS NULL OR l.resource_id = $5::text)
   AND ($6::text IS NULL OR l.result = $6::text)
   AND ($7::text[] IS NULL OR l.severity = ANY ($7::text[]))
   AND ($8::timestamptz IS NULL OR l.created_at >= $8::timestamptz)
   AND ($9::timestamptz IS NULL OR l.created_at <= $9::timestamptz)
   AND ($10::inet IS NULL OR l.ip_address = $10::inet)
   AND ($11::timestamptz IS NULL OR (l.created_at, l.id) < ($11::timestamptz, $12::bigint))
 ORDER BY l.created_at DESC, l.id DESC
 LIMIT $13`;

export interface PageQuery {
  tenantId: string;
  userId: string | null;
  action: string | null;
  resourceType: string | null;
  resourceId: string | null;
  result: AuditResult | null;
  severities: Severity[] | null;
  from: string | Date | null;
  to: string | Date | null;
  ipAddress: string | null;
  after: { createdAt: string; id: string } | null;
  limit: number;
}

type EntryRow = AuditRecordRow & { chain_seq: string | null; chain_hash: string | null };

/** A record as the API returns it: JSON values, the address without a prefix, its chain position. */
function toEntry(row: EntryRow): AuditEntry {
  const r = auditRecordFromRow(row);
  return {
    ...r,
    before: auditJsonValue(r.before),
    after: auditJsonValue(r.after),
    ipAddress: auditHost(r.ipAddress),
    chain: row.chain_seq !== null && row.chain_hash !== null ? { seq: row.chain_seq, hash: row.chain_hash } : null,
  };
}

export async function selectAuditPage(q: Queryable, p: PageQuery): Promise<AuditEntry[]> {
  const { rows } = await q.query<EntryRow>(SELECT_AUDIT_PAGE, [
    p.tenantId,
    p.userId,
    p.action,
    p.resourceType,
    p.resourceId,
    p.result,
    p.severities,
    p.from,
    p.to,
    p.ipAddress,
    p.after?.createdAt ?? null,
    p.after?.id ?? null,
    p.limit,
  ]);
  return rows.map(toEntry);
}

/** Cross-tenant failed-login counts (SECURITY DEFINER function; returns numbers only). */
const SELECT_FAILED_LOGIN_COUNTS =
  'SELECT by_email::text AS by_email, by_ip::text AS by_ip FROM audit_failed_login_counts($1, $2::inet, $3::timestamptz)';

export async function selectFailedLoginCounts(
  q: Queryable,
  email: string | null,
  ip: string | null,
  since: Date | string,
): Promise<{ byEmail: number; byIp: number }> {
  const { rows } = await q.query<{ by_email: string; by_ip: string }>(SELECT_FAILED_LOGIN_COUNTS, [email, ip, since]);
  const r = rows[0];
  return { byEmail: Number(r?.by_email ?? 0), byIp: Number(r?.by_ip ?? 0) };
}

/** Seals up to $1 committed rows into the chain; -1 when another sealer holds the lock. */
const SEAL_BATCH = 'SELECT audit_seal($1) AS sealed';

export async function sealBatch(q: Queryable, maxRows: number): Promise<number> {
  const { rows } = await q.query<{ sealed: number }>(SEAL_BATCH, [maxRows]);
  return rows[0]?.sealed ?? 0;
}

const SELECT_CHAIN_HEAD = `
SELECT seq::text AS seq, encode(row_hash, 'hex') AS hash, audit_id::text AS audit_id, sealed_at
  FROM audit_chain_head($1)`;

export async function selectChainHead(
  q: Queryable,
  tenantId: string,
): Promise<{ seq: string; hash: string; auditId: string; sealedAt: Date } | null> {
  const { rows } = await q.query<{ seq: string; hash: string; audit_id: string; sealed_at: Date }>(SELECT_CHAIN_HEAD, [
    tenantId,
  ]);
  const r = rows[0];
  return r ? { seq: r.seq, hash: r.hash, auditId: r.audit_id, sealedAt: r.sealed_at } : null;
}

/** Where verification resumes after a retention purge. */
const SELECT_LATEST_ANCHOR = `
SELECT seq::text AS seq, row_hash FROM audit_chain_anchors WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1`;

export async function selectLatestAnchor(
  q: Queryable,
  tenantId: string,
): Promise<{ seq: string; hash: Buffer } | null> {
  const { rows } = await q.query<{ seq: string; row_hash: Buffer }>(SELECT_LATEST_ANCHOR, [tenantId]);
  const r = rows[0];
  return r ? { seq: r.seq, hash: r.row_hash } : null;
}

/**
 * A batch of chain entries in seq order with the audit record each one covers (null when the
 * row is missing). The record is read in PostgreSQL's built-in output forms so the verifier
 * recomputes hashes without trusting any function in the database.
 */
const SELECT_CHAIN_BATCH = `
SELECT c.seq::text AS seq, c.audit_id::text AS audit_id, c.prev_hash, c.row_hash, ${AUDIT_RECORD_COLUMNS}
  FROM audit_chain c
  LEFT JOIN audit_logs l ON l.id = c.audit_id
 WHERE c.tenant_id = $1 AND c.seq > $2::bigint
 ORDER BY c.seq
 LIMIT $3`;

export interface ChainEntry {
  seq: string;
  auditId: string;
  prevHash: Buffer;
  rowHash: Buffer;
  record: AuditRecord | null;
}

type ChainBatchRow = { seq: string; audit_id: string; prev_hash: Buffer; row_hash: Buffer } & {
  [K in keyof AuditRecordRow]: AuditRecordRow[K] | null;
};

export async function selectChainBatch(
  q: Queryable,
  tenantId: string,
  afterSeq: string,
  limit: number,
): Promise<ChainEntry[]> {
  const { rows } = await q.query<ChainBatchRow>(SELECT_CHAIN_BATCH, [tenantId, afterSeq, limit]);
  return rows.map((r) => ({
    seq: r.seq,
    auditId: r.audit_id,
    prevHash: r.prev_hash,
    rowHash: r.row_hash,
    record: presentAuditRecord(r),
  }));
}

/** Rows of a tenant that have no chain entry (yet). */
const SELECT_UNSEALED_SUMMARY = `
SELECT count(*)::text AS n, min(l.id)::text AS oldest
  FROM audit_logs l
 WHERE l.tenant_id = $1
   AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.audit_id = l.id)`;

export async function selectUnsealedSummary(
  q: Queryable,
  tenantId: string,
): Promise<{ count: number; oldestId: string | null }> {
  const { rows } = await q.query<{ n: string; oldest: string | null }>(SELECT_UNSEALED_SUMMARY, [tenantId]);
  return { count: Number(rows[0]?.n ?? 0), oldestId: rows[0]?.oldest ?? null };
}

/** Every tenant with audit rows, chain entries or anchors (loose index scans). */
const SELECT_AUDIT_TENANTS = `
WITH RECURSIVE lt AS (
  (SELECT tenant_id FROM audit_logs ORDER BY tenant_id LIMIT 1)
  UNION ALL
  SELECT (SELECT l.tenant_id FROM audit_logs l WHERE l.tenant_id > lt.tenant_id ORDER BY l.tenant_id LIMIT 1)
    FROM lt WHERE lt.tenant_id IS NOT NULL
), ct AS (
  (SELECT tenant_id FROM audit_chain ORDER BY tenant_id LIMIT 1)
  UNION ALL
  SELECT (SELECT c.tenant_id FROM audit_chain c WHERE c.tenant_id > ct.tenant_id ORDER BY c.tenant_id LIMIT 1)
    FROM ct WHERE ct.tenant_id IS NOT NULL
)
SELECT tenant_id FROM lt WHERE tenant_id IS NOT NULL
UNION
SELECT tenant_id FROM ct WHERE tenant_id IS NOT NULL
UNION
SELECT DISTINCT tenant_id FROM audit_chain_anchors
ORDER BY 1`;

export async function selectAuditTenants(q: Queryable): Promise<string[]> {
  const { rows } = await q.query<{ tenant_id: string }>(SELECT_AUDIT_TENANTS);
  return rows.map((r) => r.tenant_id);
}

/** How long ago (database time) the tenant last recorded a successful `action`; null if never. Caller sets the tenant context. */
const SELECT_LAST_SUCCESS_AGO = `
SELECT (EXTRACT(EPOCH FROM (now() - max(created_at))) * 1000)::float8 AS ago_ms
  FROM audit_logs WHERE tenant_id = $1 AND action = $2 AND result = 'success'`;

export async function selectLastSuccessAgoMs(q: Queryable, tenantId: string, action: string): Promise<number | null> {
  const { rows } = await q.query<{ ago_ms: number | null }>(SELECT_LAST_SUCCESS_AGO, [tenantId, action]);
  return rows[0]?.ago_ms ?? null;
}

// ---- reads for the other modules (SIEM forwarding, tenant streams, archive) ----

export const SELECT_AUDIT_RECORDS_BY_ID = `
SELECT ${AUDIT_RECORD_COLUMNS} FROM audit_logs l WHERE l.tenant_id = $1 AND l.id = ANY ($2::bigint[])`;

/** The tenant's records with these ids (absent ones, e.g. purged by retention, are left out). Caller sets the tenant context. */
export async function selectAuditRecordsById(
  q: Queryable,
  tenantId: string,
  ids: readonly string[],
): Promise<AuditRecord[]> {
  const { rows } = await q.query<AuditRecordRow>(SELECT_AUDIT_RECORDS_BY_ID, [tenantId, ids]);
  return rows.map(auditRecordFromRow);
}

export const SELECT_AUDIT_RECORD_RANGE = `
SELECT ${AUDIT_RECORD_COLUMNS}
  FROM audit_logs l
 WHERE l.tenant_id = $1 AND l.id > $2::bigint AND l.id <= $3::bigint
 ORDER BY l.id
 LIMIT $4`;

/** A tenant's records with afterId < id <= upToId, in id order, at most `limit`. Caller sets the tenant context. */
export async function selectAuditRecordRange(
  q: Queryable,
  tenantId: string,
  afterId: string,
  upToId: string,
  limit: number,
): Promise<AuditRecord[]> {
  const { rows } = await q.query<AuditRecordRow>(SELECT_AUDIT_RECORD_RANGE, [tenantId, afterId, upToId, limit]);
  return rows.map(auditRecordFromRow);
}

export const COUNT_AUDIT_RECORDS_BETWEEN = `
SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1 AND id > $2::bigint AND id < $3::bigint`;

/** A tenant's records strictly between two ids. Caller sets the tenant context. */
export async function countAuditRecordsBetween(
  q: Queryable,
  tenantId: string,
  afterId: string,
  beforeId: string,
): Promise<number> {
  const { rows } = await q.query<{ n: number }>(COUNT_AUDIT_RECORDS_BETWEEN, [tenantId, afterId, beforeId]);
  return rows[0]?.n ?? 0;
}

export const COUNT_AUDIT_RECORDS_AFTER = `SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1 AND id > $2::bigint`;

/** A tenant's records after an id. Caller sets the tenant context. */
export async function countAuditRecordsAfter(q: Queryable, tenantId: string, afterId: string): Promise<number> {
  const { rows } = await q.query<{ n: number }>(COUNT_AUDIT_RECORDS_AFTER, [tenantId, afterId]);
  return rows[0]?.n ?? 0;
}
