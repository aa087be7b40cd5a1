/**
 * SIEM forwarding: the normalized event every connector formats, and the contracts between
 * the outbox worker and the connectors.
 */
import type { Severity } from '../audit/types';

export type { Severity };
export type SiemOrigin = 'audit' | 'api' | 'alert' | 'system';
export type SiemOutcome = 'success' | 'failure' | 'denied';

/** One security event as stored in the outbox payload and handed to a connector. */
export interface SiemEvent {
  /** Stable id (UUID): the same on every delivery attempt, the receiver's idempotency key. */
  id: string;
  /** ISO-8601 UTC time the event happened. */
  time: string;
  tenantId: string;
  eventType: string;
  severity: Severity;
  message: string;
  origin: SiemOrigin;
  outcome: SiemOutcome | null;
  userId: string | null;
  ipAddress: string | null;
  userAgent: string | null;
  requestId: string | null;
  resourceType: string | null;
  resourceId: string | null;
  /** The audit_logs row this event mirrors, when it comes from the audit trail. */
  auditLogId: string | null;
  details: Record<string, unknown> | null;
}

/** What callers of sendEvent/sendBatch provide; the rest is filled in. */
export interface SiemEventInput {
  tenantId: string;
  eventType: string;
  severity: Severity;
  message: string;
  id?: string;
  time?: Date;
  origin?: SiemOrigin;
  outcome?: SiemOutcome | null;
  userId?: string | null;
  ipAddress?: string | null;
  userAgent?: string | null;
  requestId?: string | null;
  resourceType?: string | null;
  resourceId?: string | null;
  auditLogId?: string | null;
  details?: Record<string, unknown> | null;
}

/** The per-event outcome of one delivery attempt. */
export type EventOutcome =
  | { kind: 'delivered' }
  /** Try again later. `penalize: false` re-queues without counting an attempt (e.g. events after a rejected one). */
  | { kind: 'retry'; reason: string; retryAfterMs?: number; penalize?: boolean }
  | { kind: 'dead'; reason: string };

export interface DeliveryReport {
  /** One entry per event id handed to send(). */
  outcomes: Map<string, EventOutcome>;
  /** A short, generic description of the batch-level failure (no event content), if any. */
  error?: string;
}

export interface SiemConnector {
  readonly provider: string;
  /** Delivers events (already in the order they should arrive); never throws for delivery failures. */
  send(events: readonly SiemEvent[]): Promise<DeliveryReport>;
  /** Resolves when the SIEM endpoint answers; rejects with a short reason otherwise. */
  healthCheck(): Promise<void>;
  close(): Promise<void>;
}

export interface QueueStatus {
  queuedEvents: number;
  deadLetter: number;
  lastFlushAt: string | null;
  lastError: string | null;
  healthy: boolean;
}
