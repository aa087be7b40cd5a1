import type { Request } from 'express';
import type { Pool, Queryable } from '../../db/pool';
import { withTenant } from '../../db/transaction';
import type { Logger } from '../../lib/logger';
import { insertAuditLog } from './repository';
import type { AuditEvent, AuditHook, RecordedAudit } from './types';

export interface AuditService {
  /**
   * Writes one audit row. Pass the caller's transaction client as `q` so the row commits
   * with the change it records (fail closed: if it cannot be written, the operation fails).
   */
  record(event: AuditEvent, q?: Queryable): Promise<RecordedAudit>;
  /** Same, with tenant, user, IP, user agent and request id taken from the request. */
  recordFromRequest(req: Request, event: Omit<AuditEvent, 'tenantId'> & { tenantId?: string }, q?: Queryable): Promise<RecordedAudit>;
  addHook(hook: AuditHook): void;
}

export function createAuditService(deps: { pool: Pool; logger: Logger }): AuditService {
  const hooks: AuditHook[] = [];
  async function write(event: AuditEvent, q: Queryable): Promise<RecordedAudit> {
    const full = { ...event, severity: event.severity ?? 'low' };
    const recorded = await insertAuditLog(q, full);
    for (const h of hooks) await h(full, recorded, q);
    return recorded;
  }
  const service: AuditService = {
    record(event, q) {
      if (q) return write(event, q);
      return withTenant(deps.pool, event.tenantId, (client) => write(event, client));
    },
    recordFromRequest(req, event, q) {
      const tenantId = event.tenantId ?? req.auth?.tenantId;
      if (!tenantId) throw new Error('audit event without a tenant');
      return service.record(
        {
          ...event,
          tenantId,
          userId: event.userId !== undefined ? event.userId : (req.auth?.userId ?? null),
          ipAddress: req.ctx.ip,
          userAgent: req.ctx.userAgent,
          requestId: req.ctx.requestId,
        },
        q,
      );
    },
    addHook(hook) {
      hooks.push(hook);
    },
  };
  return service;
}
