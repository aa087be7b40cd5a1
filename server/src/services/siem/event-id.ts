import { createHash, randomUUID } from 'node:crypto';

/** Namespace of the name-based (v5) ids of events that mirror audit rows. */
const AUDIT_EVENT_NAMESPACE = '6f1c2b4e-8d3a-4f5b-9c7e-2a1d0e9b8c47';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function isUuid(v: string): boolean {
  return UUID_RE.test(v);
}

/** RFC 4122 version-5 UUID (SHA-1 of namespace + name). */
export function uuidv5(name: string, namespace: string = AUDIT_EVENT_NAMESPACE): string {
  if (!isUuid(namespace)) throw new Error('uuidv5 namespace must be a UUID');
  const h = createHash('sha1')
    .update(Buffer.from(namespace.replace(/-/g, ''), 'hex'))
    .update(name, 'utf8')
    .digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x50;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** The stable event id of the SIEM event that mirrors audit row `auditLogId`. */
export function auditEventId(auditLogId: string): string {
  return uuidv5(`audit_logs:${auditLogId}`);
}

export function newEventId(): string {
  return randomUUID();
}
