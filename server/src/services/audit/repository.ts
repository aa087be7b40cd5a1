import type { Queryable } from '../../db/pool';
import type { AuditEvent, RecordedAudit, Severity } from './types';

export const INSERT_AUDIT_LOG = `
INSERT INTO audit_logs
  (tenant_id, user_id, action, resource_type, resource_id, before, after, ip_address, user_agent, result, error_message, severity, request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING id, created_at`;

export async function insertAuditLog(q: Queryable, e: AuditEvent & { severity: Severity }): Promise<RecordedAudit> {
  const { rows } = await q.query<{ id: string; created_at: Date }>(INSERT_AUDIT_LOG, [
    e.tenantId,
    e.userId ?? null,
    e.action,
    e.resourceType,
    e.resourceId ?? null,
    e.before === undefined ? null : JSON.stringify(e.before),
    e.after === undefined ? null : JSON.stringify(e.after),
    e.ipAddress ?? null,
    e.userAgent ?? null,
    e.result ?? 'success',
    e.errorMessage ?? null,
    e.severity,
    e.requestId ?? null,
  ]);
  const row = rows[0] as { id: string; created_at: Date };
  return { id: row.id, createdAt: row.created_at };
}
