/**
 * The audit record: one stored audit_logs row as every reader sees it. The audit module owns
 * it: its type, the one column list that reads it, and the one row mapper. Other modules (the
 * SIEM forwarder, the tenant streams, the archive) read it through the audit repository's read
 * functions (repository.ts), never with SQL of their own against audit_logs.
 *
 * Every column comes back in PostgreSQL's own output form, exactly as stored: the archive
 * publishes these bytes, the chain verifier hashes them (after its own canonicalisation).
 */
import type { AuditResult, RecordedAudit, Severity, StoredAuditEvent } from './types';

export interface AuditRecord {
  /** bigint as text. */
  id: string;
  tenantId: string;
  userId: string | null;
  action: string;
  resourceType: string;
  resourceId: string | null;
  /** The stored jsonb as PostgreSQL prints it (already JSON), or null. */
  before: string | null;
  after: string | null;
  /** The stored inet as PostgreSQL prints it: "203.0.113.7", "2001:db8::1" (a prefix only when not a host). */
  ipAddress: string | null;
  userAgent: string | null;
  result: AuditResult;
  errorMessage: string | null;
  severity: Severity;
  requestId: string | null;
  /** UTC with microseconds: 2026-01-01T00:00:00.123456Z */
  createdAt: string;
}

/**
 * The columns of an AuditRecord, read from `audit_logs l` (the alias is part of the list): those
 * of the seed and the chain (migration 021), so the chain verifier reads any database it covers.
 */
export const AUDIT_RECORD_COLUMNS = `l.id::text AS id, l.tenant_id, l.user_id::text AS user_id, l.action, l.resource_type,
  l.resource_id, l.before::text AS before, l.after::text AS after, l.ip_address, l.user_agent, l.result,
  l.error_message, l.severity, l.request_id, extract(epoch FROM l.created_at)::text AS created_epoch`;

/** A row as AUDIT_RECORD_COLUMNS returns it. */
export interface AuditRecordRow {
  id: string;
  tenant_id: string;
  user_id: string | null;
  action: string;
  resource_type: string;
  resource_id: string | null;
  before: string | null;
  after: string | null;
  ip_address: string | null;
  user_agent: string | null;
  result: AuditResult;
  error_message: string | null;
  severity: Severity;
  request_id: string | null;
  created_epoch: string;
}

/** The row mapper. */
export function auditRecordFromRow(r: AuditRecordRow): AuditRecord {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    userId: r.user_id,
    action: r.action,
    resourceType: r.resource_type,
    resourceId: r.resource_id,
    before: r.before,
    after: r.after,
    ipAddress: r.ip_address,
    userAgent: r.user_agent,
    result: r.result,
    errorMessage: r.error_message,
    severity: r.severity,
    requestId: r.request_id,
    createdAt: epochToChainTimestamp(r.created_epoch),
  };
}

/**
 * The same row from an outer join (every column null when the audit row is absent): null
 * unless every NOT NULL column is there.
 */
export function presentAuditRecord(r: { [K in keyof AuditRecordRow]: AuditRecordRow[K] | null }): AuditRecord | null {
  const { id, tenant_id, action, resource_type, result, severity, created_epoch } = r;
  if (
    id === null ||
    tenant_id === null ||
    action === null ||
    resource_type === null ||
    result === null ||
    severity === null ||
    created_epoch === null
  )
    return null;
  return auditRecordFromRow({ ...r, id, tenant_id, action, resource_type, result, severity, created_epoch });
}

/**
 * `extract(epoch FROM created_at)::text` (e.g. "1767225600.120000") → "2026-01-01T00:00:00.120000Z",
 * computed here rather than by a database function (the chain verifier trusts none).
 */
export function epochToChainTimestamp(epoch: string): string {
  const m = /^(-?)(\d+)(?:\.(\d{1,6}))?$/.exec(epoch);
  if (!m) throw new Error(`unexpected epoch text ${JSON.stringify(epoch)}`);
  const sign = m[1] === '-' ? -1n : 1n;
  const micros = sign * (BigInt(m[2] as string) * 1_000_000n + BigInt((m[3] ?? '').padEnd(6, '0')));
  // floor division so times before 1970 format correctly too
  let ms = micros / 1000n;
  let rem = micros % 1000n;
  if (rem < 0n) {
    rem += 1000n;
    ms -= 1n;
  }
  const iso = new Date(Number(ms)).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, -1)}${rem.toString().padStart(3, '0')}Z`;
}

/** The stored JSON as a value (null for SQL NULL and JSON null alike). */
export function auditJsonValue(text: string | null): unknown {
  return text === null ? null : JSON.parse(text);
}

/** created_at as a Date (millisecond precision, as the driver reads a timestamptz). */
export function auditCreatedAt(r: Pick<AuditRecord, 'createdAt'>): Date {
  return new Date(r.createdAt);
}

/** The address without a prefix length (PostgreSQL's host()). */
export function auditHost(ip: string | null): string | null {
  if (ip === null) return null;
  const slash = ip.indexOf('/');
  return slash === -1 ? ip : ip.slice(0, slash);
}

/** The record as the event audit hooks see, and its id and time: what a forwarder builds from. */
export function auditEventOf(r: AuditRecord): { event: StoredAuditEvent; recorded: RecordedAudit } {
  return {
    event: {
      tenantId: r.tenantId,
      userId: r.userId,
      action: r.action,
      resourceType: r.resourceType,
      resourceId: r.resourceId,
      before: auditJsonValue(r.before) ?? undefined,
      after: auditJsonValue(r.after) ?? undefined,
      ipAddress: r.ipAddress,
      userAgent: r.userAgent,
      result: r.result,
      errorMessage: r.errorMessage,
      severity: r.severity,
      requestId: r.requestId,
    },
    recorded: { id: r.id, createdAt: auditCreatedAt(r) },
  };
}
