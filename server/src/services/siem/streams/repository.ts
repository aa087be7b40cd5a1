/** SQL of tenant audit streams (migration 080). One function per statement. */
import type { Queryable } from '../../../db/pool';
import type { Severity } from '../types';

const SEVERITY_RANK: Record<Severity, number> = { low: 1, medium: 2, high: 3, critical: 4 };

export interface StreamRow {
  id: string;
  tenant_id: string;
  name: string;
  provider: string;
  endpoint_url: string;
  schema: 'native' | 'ocsf' | 'ecs';
  min_severity: Severity;
  credentials: string | null;
  created_at: Date;
  updated_at: Date;
}

const STREAM_COLUMNS = `id::text AS id, tenant_id, name, provider, endpoint_url, schema, min_severity, credentials, created_at, updated_at`;

const SELECT_STREAMS = `SELECT ${STREAM_COLUMNS} FROM audit_streams WHERE tenant_id = $1 ORDER BY name`;

export async function selectStreams(q: Queryable, tenantId: string): Promise<StreamRow[]> {
  const { rows } = await q.query<StreamRow>(SELECT_STREAMS, [tenantId]);
  return rows;
}

const SELECT_STREAM = `SELECT ${STREAM_COLUMNS} FROM audit_streams WHERE tenant_id = $1 AND name = $2`;

export async function selectStream(q: Queryable, tenantId: string, name: string): Promise<StreamRow | null> {
  const { rows } = await q.query<StreamRow>(SELECT_STREAM, [tenantId, name]);
  return rows[0] ?? null;
}

const SELECT_STREAM_BY_ID = `SELECT ${STREAM_COLUMNS} FROM audit_streams WHERE tenant_id = $1 AND id = $2`;

export async function selectStreamById(q: Queryable, tenantId: string, id: string): Promise<StreamRow | null> {
  const { rows } = await q.query<StreamRow>(SELECT_STREAM_BY_ID, [tenantId, id]);
  return rows[0] ?? null;
}

/** Serializes stream changes of one tenant (the count limit stays exact). */
const LOCK_TENANT_STREAMS = `SELECT pg_advisory_xact_lock(hashtextextended('audit-streams:' || $1, 7305))`;

export async function lockTenantStreams(q: Queryable, tenantId: string): Promise<void> {
  await q.query(LOCK_TENANT_STREAMS, [tenantId]);
}

const COUNT_STREAMS = `SELECT count(*)::int AS n FROM audit_streams WHERE tenant_id = $1`;

export async function countStreams(q: Queryable, tenantId: string): Promise<number> {
  const { rows } = await q.query<{ n: number }>(COUNT_STREAMS, [tenantId]);
  return rows[0]?.n ?? 0;
}

export interface StreamWrite {
  tenantId: string;
  name: string;
  provider: string;
  endpointUrl: string;
  schema: string;
  minSeverity: Severity;
  /** undefined: keep the stored credentials (update only). */
  credentials: string | null | undefined;
  now: Date;
}

const INSERT_STREAM = `
INSERT INTO audit_streams (tenant_id, name, provider, endpoint_url, schema, min_severity, credentials, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
RETURNING ${STREAM_COLUMNS}`;

export async function insertStream(q: Queryable, w: StreamWrite): Promise<StreamRow> {
  const { rows } = await q.query<StreamRow>(INSERT_STREAM, [
    w.tenantId,
    w.name,
    w.provider,
    w.endpointUrl,
    w.schema,
    w.minSeverity,
    w.credentials ?? null,
    w.now,
  ]);
  return rows[0] as StreamRow;
}

const UPDATE_STREAM = `
UPDATE audit_streams SET provider = $3, endpoint_url = $4, schema = $5, min_severity = $6,
  credentials = CASE WHEN $7::boolean THEN $8 ELSE credentials END, updated_at = $9
WHERE tenant_id = $1 AND name = $2
RETURNING ${STREAM_COLUMNS}`;

export async function updateStream(q: Queryable, w: StreamWrite): Promise<StreamRow | null> {
  const { rows } = await q.query<StreamRow>(UPDATE_STREAM, [
    w.tenantId,
    w.name,
    w.provider,
    w.endpointUrl,
    w.schema,
    w.minSeverity,
    w.credentials !== undefined,
    w.credentials ?? null,
    w.now,
  ]);
  return rows[0] ?? null;
}

const UPSERT_STATE = `
INSERT INTO audit_stream_state (stream_id, tenant_id, min_rank, next_attempt_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (stream_id) DO UPDATE SET min_rank = EXCLUDED.min_rank, attempts = 0, next_attempt_at = EXCLUDED.next_attempt_at`;

/** The worker-side state of a stream; a changed stream is retried at once. */
export async function upsertState(
  q: Queryable,
  streamId: string,
  tenantId: string,
  minSeverity: Severity,
  now: Date,
): Promise<void> {
  await q.query(UPSERT_STATE, [streamId, tenantId, SEVERITY_RANK[minSeverity], now]);
}

const DELETE_STREAM = `DELETE FROM audit_streams WHERE tenant_id = $1 AND name = $2 RETURNING id::text AS id`;

export async function deleteStream(q: Queryable, tenantId: string, name: string): Promise<string | null> {
  const { rows } = await q.query<{ id: string }>(DELETE_STREAM, [tenantId, name]);
  return rows[0]?.id ?? null;
}

const INSERT_TEST_EVENT = `INSERT INTO audit_stream_outbox (stream_id, tenant_id, payload, enqueued_at) VALUES ($1, $2, $3::json, $4)`;

export async function insertTestEvent(
  q: Queryable,
  streamId: string,
  tenantId: string,
  payload: unknown,
  now: Date,
): Promise<void> {
  await q.query(INSERT_TEST_EVENT, [streamId, tenantId, JSON.stringify(payload), now]);
}

export interface StreamStatusRow {
  name: string;
  queued: number;
  dead_letter: number;
  last_delivered_at: Date | null;
  last_error: string | null;
  last_error_at: Date | null;
}

const STREAM_STATUS = `
SELECT s.name,
  (SELECT count(*)::int FROM audit_stream_outbox o WHERE o.stream_id = s.id) AS queued,
  (SELECT count(*)::int FROM audit_stream_dead_letter d WHERE d.stream_id = s.id) AS dead_letter,
  st.last_delivered_at, st.last_error, st.last_error_at
FROM audit_streams s LEFT JOIN audit_stream_state st ON st.stream_id = s.id
WHERE s.tenant_id = $1
ORDER BY s.name`;

export async function streamStatus(q: Queryable, tenantId: string): Promise<StreamStatusRow[]> {
  const { rows } = await q.query<StreamStatusRow>(STREAM_STATUS, [tenantId]);
  return rows;
}

// ---- worker

export interface ClaimedStream {
  stream_id: string;
  tenant_id: string;
  attempts: number;
}

const CLAIM_STREAMS = `
UPDATE audit_stream_state st SET claimed_by = $1, claimed_until = $2
WHERE st.stream_id IN (
  SELECT s.stream_id FROM audit_stream_state s
  WHERE s.next_attempt_at <= $3 AND (s.claimed_until IS NULL OR s.claimed_until < $3)
    AND NOT (s.stream_id = ANY($5::bigint[]))
    AND EXISTS (SELECT 1 FROM audit_stream_outbox o WHERE o.stream_id = s.stream_id)
  ORDER BY s.next_attempt_at
  LIMIT $4
  FOR UPDATE SKIP LOCKED)
RETURNING st.stream_id::text AS stream_id, st.tenant_id, st.attempts`;

/** Claims up to `limit` due streams with queued events for `worker` until `leaseUntil`. */
export async function claimStreams(
  q: Queryable,
  worker: string,
  leaseUntil: Date,
  now: Date,
  limit: number,
  busy: readonly string[],
): Promise<ClaimedStream[]> {
  const { rows } = await q.query<ClaimedStream>(CLAIM_STREAMS, [worker, leaseUntil, now, limit, busy]);
  return rows;
}

export interface StreamOutboxRow {
  seq: string;
  audit_log_id: string | null;
  payload: unknown;
}

const SELECT_STREAM_BATCH = `SELECT seq::text AS seq, audit_log_id::text AS audit_log_id, payload FROM audit_stream_outbox WHERE stream_id = $1 ORDER BY seq LIMIT $2`;

export async function selectStreamBatch(q: Queryable, streamId: string, limit: number): Promise<StreamOutboxRow[]> {
  const { rows } = await q.query<StreamOutboxRow>(SELECT_STREAM_BATCH, [streamId, limit]);
  return rows;
}

const DELETE_STREAM_ROWS = `DELETE FROM audit_stream_outbox WHERE stream_id = $1 AND seq = ANY($2::bigint[])`;

export async function deleteStreamRows(q: Queryable, streamId: string, seqs: readonly string[]): Promise<void> {
  if (seqs.length === 0) return;
  await q.query(DELETE_STREAM_ROWS, [streamId, seqs]);
}

const INSERT_STREAM_DEAD = `
INSERT INTO audit_stream_dead_letter (stream_id, event_id, tenant_id, audit_log_id, payload, reason, dead_at)
SELECT $1, x.event_id, $2, x.audit_log_id, x.payload, x.reason, $3
FROM unnest($4::uuid[], $5::bigint[], $6::json[], $7::text[]) AS x(event_id, audit_log_id, payload, reason)
ON CONFLICT (stream_id, event_id) DO NOTHING`;

export interface StreamDead {
  eventId: string;
  auditLogId: string | null;
  payload: unknown;
  reason: string;
}

export async function insertStreamDead(
  q: Queryable,
  streamId: string,
  tenantId: string,
  at: Date,
  items: readonly StreamDead[],
): Promise<void> {
  if (items.length === 0) return;
  await q.query(INSERT_STREAM_DEAD, [
    streamId,
    tenantId,
    at,
    items.map((i) => i.eventId),
    items.map((i) => i.auditLogId),
    items.map((i) => (i.payload === null || i.payload === undefined ? null : JSON.stringify(i.payload))),
    items.map((i) => i.reason.slice(0, 1000)),
  ]);
}

const STREAM_SUCCESS = `
UPDATE audit_stream_state SET attempts = 0, next_attempt_at = $2, last_delivered_at = $2, claimed_by = NULL, claimed_until = NULL
WHERE stream_id = $1 AND claimed_by = $3`;

export async function recordStreamSuccess(q: Queryable, streamId: string, at: Date, worker: string): Promise<void> {
  await q.query(STREAM_SUCCESS, [streamId, at, worker]);
}

const STREAM_FAILURE = `
UPDATE audit_stream_state SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3, last_error_at = $4, claimed_by = NULL, claimed_until = NULL
WHERE stream_id = $1 AND claimed_by = $5`;

export async function recordStreamFailure(
  q: Queryable,
  streamId: string,
  nextAt: Date,
  error: string,
  at: Date,
  worker: string,
): Promise<void> {
  await q.query(STREAM_FAILURE, [streamId, nextAt, error.slice(0, 500), at, worker]);
}

const TRIM_STREAM = `
WITH excess AS (SELECT seq FROM audit_stream_outbox WHERE stream_id = $1 ORDER BY seq DESC OFFSET $2),
d AS (
  DELETE FROM audit_stream_outbox o USING excess x WHERE o.seq = x.seq
  RETURNING o.audit_log_id, o.payload)
INSERT INTO audit_stream_dead_letter (stream_id, event_id, tenant_id, audit_log_id, payload, reason, dead_at)
SELECT $1, coalesce((d.payload ->> 'id')::uuid, siem_audit_event_id(d.audit_log_id)), $3, d.audit_log_id, d.payload,
  'queue_full: the stream was over its bound; oldest events dropped', $4
FROM d
ON CONFLICT (stream_id, event_id) DO NOTHING
RETURNING event_id`;

/** Keeps a stream's queue within `max`: the oldest events beyond it move to its dead letter. Returns their ids. */
export async function trimStream(
  q: Queryable,
  streamId: string,
  max: number,
  tenantId: string,
  at: Date,
): Promise<string[]> {
  const { rows } = await q.query<{ event_id: string }>(TRIM_STREAM, [streamId, max, tenantId, at]);
  return rows.map((r) => r.event_id);
}

const RELEASE_ALL_STREAMS = `UPDATE audit_stream_state SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1`;

export async function releaseAllStreams(q: Queryable, worker: string): Promise<void> {
  await q.query(RELEASE_ALL_STREAMS, [worker]);
}
