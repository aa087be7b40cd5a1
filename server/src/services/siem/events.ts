/**
 * Building normalized SIEM events: from audit rows, from API submissions and from code
 * (sendEvent). Sizes are capped here so every connector can rely on bounded events.
 */
import { ACTION_PATTERN, RESERVED_PREFIXES } from '../audit/catalog';
import { auditEventOf, type AuditRecord } from '../audit/record';
import type { AuditEvent, RecordedAudit } from '../audit/types';
import { auditEventId, newEventId } from './event-id';
import type { SiemEvent, SiemEventInput } from './types';

export const MAX_MESSAGE_CHARS = 2000;
/** Serialized `details` larger than this are replaced by a truncation marker. */
export const MAX_DETAILS_BYTES = 16 * 1024;
/** Each of an audit row's before/after larger than this is replaced by a truncation marker. */
const MAX_AUDIT_STATE_BYTES = 6 * 1024;

/** Event types: dotted lower-case names, the audit actions' pattern. */
export const EVENT_TYPE_RE = ACTION_PATTERN;

export function hasReservedPrefix(eventType: string): boolean {
  return RESERVED_PREFIXES.some((p) => eventType.startsWith(p));
}

/** Truncates by code points (never splits a surrogate pair), marking the cut. */
export function truncate(s: string, max: number): string {
  const cps = Array.from(s);
  if (cps.length <= max) return s;
  return cps.slice(0, Math.max(0, max - 1)).join('') + '…';
}

function capJson(value: unknown, maxBytes: number): unknown {
  if (value === undefined) return undefined;
  const text = JSON.stringify(value);
  if (text === undefined) return undefined;
  const bytes = Buffer.byteLength(text, 'utf8');
  return bytes <= maxBytes ? value : { truncated: true, bytes };
}

function capDetails(details: Record<string, unknown> | null | undefined): Record<string, unknown> | null {
  if (!details) return null;
  return capJson(details, MAX_DETAILS_BYTES) as Record<string, unknown>;
}

export function normalizeEvent(input: SiemEventInput, now: number): SiemEvent {
  return {
    id: input.id ?? newEventId(),
    time: (input.time ?? new Date(now)).toISOString(),
    tenantId: input.tenantId,
    eventType: input.eventType,
    severity: input.severity,
    message: truncate(input.message, MAX_MESSAGE_CHARS),
    origin: input.origin ?? 'system',
    outcome: input.outcome ?? null,
    userId: input.userId ?? null,
    ipAddress: input.ipAddress ?? null,
    userAgent: input.userAgent ?? null,
    requestId: input.requestId ?? null,
    resourceType: input.resourceType ?? null,
    resourceId: input.resourceId ?? null,
    auditLogId: input.auditLogId ?? null,
    details: capDetails(input.details),
  };
}

/** The SIEM event that mirrors an audit row (stable id derived from the row id). */
export function eventFromAudit(
  event: AuditEvent & { severity: NonNullable<AuditEvent['severity']> },
  recorded: RecordedAudit,
): SiemEvent {
  const result = event.result ?? 'success';
  const message = `${event.action} (${result})${event.errorMessage ? `: ${event.errorMessage}` : ''}`;
  const details: Record<string, unknown> = {};
  const before = capJson(event.before, MAX_AUDIT_STATE_BYTES);
  const after = capJson(event.after, MAX_AUDIT_STATE_BYTES);
  if (before !== undefined && before !== null) details.before = before;
  if (after !== undefined && after !== null) details.after = after;
  return {
    id: auditEventId(recorded.id),
    time: recorded.createdAt.toISOString(),
    tenantId: event.tenantId,
    eventType: event.action,
    severity: event.severity,
    message: truncate(message, MAX_MESSAGE_CHARS),
    origin: event.action.startsWith('security.alert.') ? 'alert' : 'audit',
    outcome: result,
    userId: event.userId ?? null,
    ipAddress: event.ipAddress ?? null,
    userAgent: event.userAgent ?? null,
    requestId: event.requestId ?? null,
    resourceType: event.resourceType,
    resourceId: event.resourceId ?? null,
    auditLogId: recorded.id,
    details: Object.keys(details).length > 0 ? details : null,
  };
}

/** The event of a stored audit record (read back when an outbox entry refers to it by id). */
export function eventFromAuditRecord(r: AuditRecord): SiemEvent {
  const { event, recorded } = auditEventOf(r);
  return eventFromAudit(event, recorded);
}

/** Numeric severities of the formats that need one. */
export const CEF_SEVERITY: Record<SiemEvent['severity'], number> = { low: 3, medium: 5, high: 8, critical: 10 };
/** RFC 5424 severities: informational, warning, error, critical. */
export const SYSLOG_SEVERITY: Record<SiemEvent['severity'], number> = { low: 6, medium: 4, high: 3, critical: 2 };
/** Datadog log status. */
export const DATADOG_STATUS: Record<SiemEvent['severity'], string> = {
  low: 'info',
  medium: 'warn',
  high: 'error',
  critical: 'critical',
};
