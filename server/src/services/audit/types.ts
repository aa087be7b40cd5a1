import type { Queryable } from '../../db/pool';
import type { AuditRecord } from './record';

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];
export type AuditResult = 'success' | 'failure' | 'denied';

export const RESULTS: readonly AuditResult[] = ['success', 'failure', 'denied'];

export interface AuditEvent {
  tenantId: string;
  userId?: string | null;
  /** A catalog action (catalog.ts) for server-side events; any well-formed name otherwise. */
  action: string;
  resourceType: string;
  resourceId?: string | null;
  /** Scrubbed of secret-looking keys and capped at 64 kB (as JSON) before storage. */
  before?: unknown;
  after?: unknown;
  ipAddress?: string | null;
  userAgent?: string | null;
  result?: AuditResult;
  errorMessage?: string | null;
  /** Defaults to the action catalog's severity (or low). */
  severity?: Severity;
  requestId?: string | null;
  /** The acting service API key (stored in audit_logs.api_key_id); user_id is then null. */
  apiKeyId?: string | null;
}

/** The event as stored: severity and result resolved, before/after scrubbed. */
export type StoredAuditEvent = AuditEvent & { severity: Severity; result: AuditResult };

export interface RecordedAudit {
  id: string;
  createdAt: Date;
}

/** Runs after an audit row is inserted, inside the same transaction (e.g. the SIEM outbox). */
export type AuditHook = (
  event: Required<Pick<AuditEvent, 'tenantId' | 'action' | 'severity'>> & AuditEvent,
  recorded: RecordedAudit,
  q: Queryable,
) => Promise<void>;

export interface AuditHookOptions {
  /**
   * Runs the hook only for events it returns true for. Events no hook wants are written
   * with a single statement instead of a transaction (the fast path).
   */
  when?: (event: StoredAuditEvent) => boolean;
}

/** One audit record as the API returns it: before/after as JSON values, the address without a prefix length. */
export interface AuditEntry extends Omit<AuditRecord, 'before' | 'after'> {
  before: unknown;
  after: unknown;
  /** Position in the tenant's hash chain; null while the row awaits sealing. */
  chain: { seq: string; hash: string } | null;
}

export interface AuditLogFilter {
  userId?: string;
  action?: string;
  resourceType?: string;
  resourceId?: string;
  result?: AuditResult;
  severities?: Severity[];
  /** Inclusive lower bound (ISO 8601 or Date). */
  from?: string | Date;
  /** Inclusive upper bound (ISO 8601 or Date). */
  to?: string | Date;
}

export interface AuditPage {
  entries: AuditEntry[];
  /** Opaque; pass as `cursor` for the next (older) page; null at the end. */
  nextCursor: string | null;
}

export interface PageOptions {
  /** 1..500, default 50. */
  limit?: number;
  cursor?: string | null;
}

export interface FailedAuthCounts {
  /** Failed logins for this (lower-cased) email since `since`, across tenants. */
  byEmail: number;
  /** Failed logins from this IP address since `since`, across tenants. */
  byIp: number;
}

export interface ChainHead {
  tenantId: string;
  seq: string;
  /** Hex SHA-256 of the newest chain entry. */
  hash: string;
  auditId: string;
  sealedAt: Date;
}

export interface ChainAnchor {
  seq: string;
  /** Hex SHA-256 expected at that position. */
  hash: string;
}

export interface VerifyResult {
  tenantId: string;
  valid: boolean;
  /** Chain entries examined. */
  checked: number;
  /** Audit row id of the first entry that failed verification. */
  firstBrokenId: string | null;
  /** Why it failed (modified row, missing row, sequence gap, link mismatch, ...). */
  reason: string | null;
  /** Rows written but not yet sealed into the chain. */
  unsealed: number;
  oldestUnsealedId: string | null;
  head: { seq: string; hash: string } | null;
  /** Where verification started after a retention purge (null when from the beginning). */
  resumedFrom: { seq: string; hash: string } | null;
}
