/** SQL of the SIEM outbox, dead letter, worker state and alert bookkeeping. One function per statement. */
import type { Queryable } from '../../db/pool';
import { auditEventId } from './event-id';
import type { Severity, SiemEvent } from './types';

export interface OutboxRow {
  seq: string;
  event_id: string;
  tenant_id: string;
  attempts: number;
  /** null: the event mirrors audit row audit_log_id, read when sending. */
  payload: SiemEvent | null;
  audit_log_id: string | null;
}

const INSERT_OUTBOX = `
INSERT INTO siem_outbox (event_id, tenant_id, audit_log_id, event_type, severity, payload, enqueued_at, next_attempt_at)
SELECT x.event_id, x.tenant_id, x.audit_log_id, x.event_type, x.severity, x.payload, $7, $7
FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::json[])
  AS x(event_id, tenant_id, audit_log_id, event_type, severity, payload)`;

export async function insertOutbox(q: Queryable, events: readonly SiemEvent[], now: Date): Promise<void> {
  if (events.length === 0) return;
  await q.query(INSERT_OUTBOX, [
    events.map((e) => e.id),
    events.map((e) => e.tenantId),
    events.map((e) => e.auditLogId),
    events.map((e) => e.eventType),
    events.map((e) => e.severity),
    events.map((e) => JSON.stringify(e)),
    now,
  ]);
}

/** Queue depth, counting at most `cap` rows (bounded cost however long the queue is). */
const LOCK_OUTBOX_BOUND = `SELECT pg_advisory_xact_lock(hashtextextended('siem-outbox-bound', 7305))`;

/** Serializes submissions near the bound until the transaction ends (count + insert stay exact). */
export async function lockOutboxBound(q: Queryable): Promise<void> {
  await q.query(LOCK_OUTBOX_BOUND);
}

const COUNT_OUTBOX_CAPPED = `SELECT count(*)::int AS n FROM (SELECT 1 FROM siem_outbox LIMIT $1) s`;

export async function countOutboxCapped(q: Queryable, cap: number): Promise<number> {
  const { rows } = await q.query<{ n: number }>(COUNT_OUTBOX_CAPPED, [cap]);
  return rows[0]?.n ?? 0;
}

const COUNT_FRESH_CAPPED = `SELECT count(*)::int AS n FROM (SELECT 1 FROM siem_outbox WHERE attempts = 0 AND claimed_until IS NULL LIMIT $1) s`;

/** Events never tried yet, counting at most `cap` (is a full batch waiting?). */
export async function countFreshCapped(q: Queryable, cap: number): Promise<number> {
  const { rows } = await q.query<{ n: number }>(COUNT_FRESH_CAPPED, [cap]);
  return rows[0]?.n ?? 0;
}

const CLAIM_BATCH = `
UPDATE siem_outbox o SET claimed_by = $1, claimed_until = $2
WHERE o.seq IN (
  SELECT seq FROM siem_outbox
  WHERE (attempts = 0 OR next_attempt_at <= $3) AND (claimed_until IS NULL OR claimed_until < $3)
  ORDER BY seq
  LIMIT $4
  FOR UPDATE SKIP LOCKED)
RETURNING o.seq, o.event_id, o.tenant_id, o.attempts, o.payload, o.audit_log_id::text AS audit_log_id`;

/** Claims up to `limit` due events for `worker` until `leaseUntil`; other workers skip them. */
export async function claimBatch(
  q: Queryable,
  worker: string,
  now: Date,
  leaseUntil: Date,
  limit: number,
): Promise<OutboxRow[]> {
  const { rows } = await q.query<Omit<OutboxRow, 'event_id'> & { event_id: string | null }>(CLAIM_BATCH, [
    worker,
    leaseUntil,
    now,
    limit,
  ]);
  return rows
    .map((r) => ({ ...r, event_id: r.event_id ?? auditEventId(r.audit_log_id as string) }))
    .sort((a, b) => a.seq.length - b.seq.length || (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
}

const RENEW_LEASE = `UPDATE siem_outbox SET claimed_until = $3 WHERE seq = ANY($1::bigint[]) AND claimed_by = $2`;

/** Extends this worker's claim on `seqs` to `leaseUntil`; returns how many rows it still holds. */
export async function renewLease(
  q: Queryable,
  seqs: readonly string[],
  worker: string,
  leaseUntil: Date,
): Promise<number> {
  if (seqs.length === 0) return 0;
  const r = await q.query(RENEW_LEASE, [seqs, worker, leaseUntil]);
  return r.rowCount ?? 0;
}

/** Served by the partial index of migration 045 (claimed rows only: a few batches per instance). */
const EXPIRED_CLAIMS = `SELECT EXISTS (SELECT 1 FROM siem_outbox WHERE claimed_until IS NOT NULL AND claimed_until < $1) AS expired`;

/** Whether an instance's claim ran out (it died or hung): another worker should take the events over now. */
export async function hasExpiredClaims(q: Queryable, now: Date): Promise<boolean> {
  const { rows } = await q.query<{ expired: boolean }>(EXPIRED_CLAIMS, [now]);
  return rows[0]?.expired === true;
}

const DELETE_DELIVERED = `DELETE FROM siem_outbox WHERE seq = ANY($1::bigint[]) AND claimed_by = $2`;

export async function deleteDelivered(q: Queryable, seqs: readonly string[], worker: string): Promise<number> {
  if (seqs.length === 0) return 0;
  const r = await q.query(DELETE_DELIVERED, [seqs, worker]);
  return r.rowCount ?? 0;
}

const RESCHEDULE = `
UPDATE siem_outbox o SET
  attempts = o.attempts + x.inc,
  next_attempt_at = x.next_at,
  last_error = x.reason,
  claimed_by = NULL,
  claimed_until = NULL
FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::int[]) AS x(seq, next_at, reason, inc)
WHERE o.seq = x.seq AND o.claimed_by = $5`;

export interface Reschedule {
  seq: string;
  nextAt: Date;
  reason: string;
  /** 1 counts a failed attempt, 0 re-queues without penalty. */
  inc: 0 | 1;
}

export async function reschedule(q: Queryable, items: readonly Reschedule[], worker: string): Promise<void> {
  if (items.length === 0) return;
  await q.query(RESCHEDULE, [
    items.map((i) => i.seq),
    items.map((i) => i.nextAt),
    items.map((i) => i.reason.slice(0, 1000)),
    items.map((i) => i.inc),
    worker,
  ]);
}

const MOVE_TO_DEAD_LETTER = `
WITH x AS (SELECT * FROM unnest($1::bigint[], $2::text[]) AS x(seq, reason)),
d AS (
  DELETE FROM siem_outbox o USING x
  WHERE o.seq = x.seq AND o.claimed_by = $3
  RETURNING coalesce(o.event_id, siem_audit_event_id(o.audit_log_id)) AS event_id, o.tenant_id, o.audit_log_id, o.event_type, o.severity, o.payload, o.enqueued_at, o.attempts, x.reason)
INSERT INTO siem_dead_letter (event_id, tenant_id, audit_log_id, event_type, severity, payload, enqueued_at, attempts, reason, dead_at)
SELECT event_id, tenant_id, audit_log_id, event_type, severity, payload, enqueued_at, attempts + 1, reason, $4 FROM d
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id`;

/** Moves claimed events to the dead letter with their reasons; returns the moved event ids. */
export async function moveToDeadLetter(
  q: Queryable,
  items: ReadonlyArray<{ seq: string; reason: string }>,
  worker: string,
  now: Date,
): Promise<string[]> {
  if (items.length === 0) return [];
  const { rows } = await q.query<{ event_id: string }>(MOVE_TO_DEAD_LETTER, [
    items.map((i) => i.seq),
    items.map((i) => i.reason.slice(0, 1000)),
    worker,
    now,
  ]);
  return rows.map((r) => r.event_id);
}

const TRIM_QUEUE = `
WITH total AS (SELECT GREATEST(count(*) - $1, 0) AS excess FROM siem_outbox),
counts AS (SELECT tenant_id, count(*) AS n FROM siem_outbox WHERE (SELECT excess FROM total) > 0 GROUP BY tenant_id),
bound AS (SELECT t.excess, ceil($1::numeric / GREATEST((SELECT count(*) FROM counts), 1)) AS share FROM total t),
over_share AS (
  SELECT c.tenant_id, LEAST(c.n - b.share, b.excess)::bigint AS k FROM counts c CROSS JOIN bound b WHERE b.excess > 0 AND c.n > b.share),
candidates AS (
  SELECT x.seq, x.is_high FROM over_share v CROSS JOIN LATERAL (
    SELECT o.seq, (o.severity = 'high') AS is_high FROM siem_outbox o
    WHERE o.tenant_id = v.tenant_id AND o.severity <> 'critical' AND o.event_type NOT LIKE 'security.alert.%' AND o.claimed_until IS NULL
    ORDER BY (o.severity = 'high'), o.seq
    LIMIT v.k) x),
victims AS (
  SELECT seq FROM siem_outbox
  WHERE seq IN (SELECT seq FROM candidates ORDER BY is_high, seq LIMIT (SELECT excess FROM bound))
  FOR UPDATE SKIP LOCKED),
d AS (
  DELETE FROM siem_outbox o USING victims v WHERE o.seq = v.seq
  RETURNING coalesce(o.event_id, siem_audit_event_id(o.audit_log_id)) AS event_id, o.tenant_id, o.audit_log_id, o.event_type, o.severity, o.payload, o.enqueued_at, o.attempts)
INSERT INTO siem_dead_letter (event_id, tenant_id, audit_log_id, event_type, severity, payload, enqueued_at, attempts, reason, dead_at)
SELECT event_id, tenant_id, audit_log_id, event_type, severity, payload, enqueued_at, attempts, 'queue_full: evicted to make room for newer events', $2 FROM d
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id`;

/**
 * Keeps the outbox within `max`, fairly: each tenant's share is max / (tenants with queued
 * events). Only tenants over their share lose events, each at most its excess over the share,
 * and only its own: low and medium first, then high, oldest first; never critical events,
 * alerts or events being sent. A tenant within its share never loses an event to another's
 * flood (the queue may stay over the bound when the excess is all critical or alerts). The
 * evicted events move to the dead letter (reason queue_full). Returns the moved event ids.
 */
export async function trimQueue(q: Queryable, max: number, now: Date): Promise<string[]> {
  const { rows } = await q.query<{ event_id: string }>(TRIM_QUEUE, [max, now]);
  return rows.map((r) => r.event_id);
}

const SET_FORWARDING = `UPDATE siem_settings SET forwarding = $1, updated_at = now() WHERE id AND forwarding IS DISTINCT FROM $1`;

/** Turns queuing of high/critical audit rows (the audit_logs trigger) on or off. */
export async function setForwarding(q: Queryable, on: boolean): Promise<void> {
  await q.query(SET_FORWARDING, [on]);
}

const RELEASE_CLAIMS = `UPDATE siem_outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1`;

export async function releaseClaims(q: Queryable, worker: string): Promise<number> {
  const r = await q.query(RELEASE_CLAIMS, [worker]);
  return r.rowCount ?? 0;
}

const UPSERT_WORKER_SUCCESS = `
INSERT INTO siem_worker_state (instance_id, last_flush_at, updated_at) VALUES ($1, $2, $2)
ON CONFLICT (instance_id) DO UPDATE SET last_flush_at = EXCLUDED.last_flush_at, updated_at = EXCLUDED.updated_at`;

export async function recordFlushSuccess(q: Queryable, worker: string, at: Date): Promise<void> {
  await q.query(UPSERT_WORKER_SUCCESS, [worker, at]);
}

const UPSERT_WORKER_ERROR = `
INSERT INTO siem_worker_state (instance_id, last_error, last_error_at, updated_at) VALUES ($1, $2, $3, $3)
ON CONFLICT (instance_id) DO UPDATE SET last_error = EXCLUDED.last_error, last_error_at = EXCLUDED.last_error_at, updated_at = EXCLUDED.updated_at`;

export async function recordFlushError(q: Queryable, worker: string, error: string, at: Date): Promise<void> {
  await q.query(UPSERT_WORKER_ERROR, [worker, error.slice(0, 500), at]);
}

const DELETE_STALE_WORKERS = `DELETE FROM siem_worker_state WHERE updated_at < $1`;

export async function deleteStaleWorkers(q: Queryable, before: Date): Promise<void> {
  await q.query(DELETE_STALE_WORKERS, [before]);
}

const QUEUE_STATUS = `
SELECT
  (SELECT count(*)::int FROM siem_outbox WHERE $1::text IS NULL OR tenant_id = $1) AS queued,
  (SELECT count(*)::int FROM siem_dead_letter WHERE $1::text IS NULL OR tenant_id = $1) AS dead,
  (SELECT max(last_flush_at) FROM siem_worker_state) AS last_flush_at,
  e.last_error, e.last_error_at
FROM (SELECT 1) one
LEFT JOIN LATERAL (
  SELECT last_error, last_error_at FROM siem_worker_state WHERE last_error_at IS NOT NULL ORDER BY last_error_at DESC LIMIT 1
) e ON true`;

export interface QueueStatusRow {
  queued: number;
  dead: number;
  last_flush_at: Date | null;
  last_error: string | null;
  last_error_at: Date | null;
}

export async function queueStatus(q: Queryable, tenantId: string | null): Promise<QueueStatusRow> {
  const { rows } = await q.query<QueueStatusRow>(QUEUE_STATUS, [tenantId]);
  return rows[0] as QueueStatusRow;
}

// ---- alerting rules

const INSERT_SIGNAL = `INSERT INTO siem_alert_signals (rule, subject, tenant_id, audit_log_id, occurred_at) VALUES ($1, $2, $3, $4, $5)`;

export async function insertSignal(
  q: Queryable,
  s: { rule: string; subject: string; tenantId: string; auditLogId: string | null; at: Date },
): Promise<void> {
  await q.query(INSERT_SIGNAL, [s.rule, s.subject, s.tenantId, s.auditLogId, s.at]);
}

/** Serializes counting for one (rule, subject) until the transaction ends, so the count is exact. */
const LOCK_SUBJECT = `SELECT pg_advisory_xact_lock(hashtextextended($1, 7305))`;

export async function lockSubject(q: Queryable, rule: string, subject: string): Promise<void> {
  await q.query(LOCK_SUBJECT, [`siem-alert:${rule}:${subject}`]);
}

const COUNT_SIGNALS = `SELECT count(*)::int AS n FROM siem_alert_signals WHERE rule = $1 AND subject = $2 AND occurred_at > $3 AND occurred_at <= $4`;

export async function countSignals(
  q: Queryable,
  rule: string,
  subject: string,
  since: Date,
  until: Date,
): Promise<number> {
  const { rows } = await q.query<{ n: number }>(COUNT_SIGNALS, [rule, subject, since, until]);
  return rows[0]?.n ?? 0;
}

/**
 * Marks an alert as raised for (rule, subject) unless one was raised within the window.
 * Returns true when this caller should raise it (concurrent callers: exactly one wins).
 */
const CLAIM_ALERT = `
INSERT INTO siem_alert_state (rule, subject, last_alert_at) VALUES ($1, $2, $3)
ON CONFLICT (rule, subject) DO UPDATE SET last_alert_at = EXCLUDED.last_alert_at
WHERE siem_alert_state.last_alert_at <= $4
RETURNING 1`;

export async function claimAlert(
  q: Queryable,
  rule: string,
  subject: string,
  now: Date,
  suppressedSince: Date,
): Promise<boolean> {
  const r = await q.query(CLAIM_ALERT, [rule, subject, now, suppressedSince]);
  return (r.rowCount ?? 0) > 0;
}

const PRUNE_SIGNALS = `DELETE FROM siem_alert_signals WHERE occurred_at < $1`;
const PRUNE_ALERT_STATE = `DELETE FROM siem_alert_state WHERE last_alert_at < $1`;

export async function pruneAlertData(q: Queryable, before: Date): Promise<void> {
  await q.query(PRUNE_SIGNALS, [before]);
  await q.query(PRUNE_ALERT_STATE, [before]);
}

export type { Severity };
