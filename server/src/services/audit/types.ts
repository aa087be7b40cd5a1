import type { Queryable } from '../../db/pool';

export type Severity = 'low' | 'medium' | 'high' | 'critical';
export type AuditResult = 'success' | 'failure' | 'denied';

export interface AuditEvent {
  tenantId: string;
  userId?: string | null;
  action: string;
  resourceType: string;
  resourceId?: string | null;
  before?: unknown;
  after?: unknown;
  ipAddress?: string | null;
  userAgent?: string | null;
  result?: AuditResult;
  errorMessage?: string | null;
  /** Defaults to the action catalog's severity (or low). */
  severity?: Severity;
  requestId?: string | null;
}

export interface RecordedAudit {
  id: string;
  createdAt: Date;
}

/** Runs after an audit row is inserted, inside the same transaction (e.g. the SIEM outbox). */
export type AuditHook = (event: Required<Pick<AuditEvent, 'tenantId' | 'action' | 'severity'>> & AuditEvent, recorded: RecordedAudit, q: Queryable) => Promise<void>;
