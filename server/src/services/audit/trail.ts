/**
 * What a caller asks of the audit trail through the API (routes/audit.routes.ts): reading the
 * events they may see, and verifying the tenant's trail with an audit row for the verdict.
 */
import type { Actor, AuthContext } from '../../domain/actor';
import { forbidden, validationFailed } from '../../lib/errors';
import { principalHas } from '../auth/rbac';
import type { CheckpointService } from './checkpoints';
import { InvalidCursorError, type AuditService } from './service';
import type { TrailVerifyResult } from './tree-verify';
import type { AuditLogFilter, AuditPage, PageOptions } from './types';

export type AuditLogQuery = AuditLogFilter & PageOptions;

export interface AuditTrail {
  /**
   * A page of events `auth` may read: its own, or the tenant's with audit:read:tenant. Asking
   * for another user without that permission is an access.denied row and 403 FORBIDDEN; a
   * cursor this API did not issue is 400 VALIDATION_FAILED.
   */
  listFor(auth: AuthContext, actor: Actor, query: AuditLogQuery): Promise<AuditPage>;
  /** Verifies the actor's tenant trail (optionally against an earlier head) and records the verdict. */
  verifyAndRecord(actor: Actor, anchor?: { seq: string; hash: string }): Promise<TrailVerifyResult>;
}

export function createAuditTrail(deps: { audit: AuditService; checkpoints: CheckpointService }): AuditTrail {
  const { audit, checkpoints } = deps;
  return {
    async listFor(auth, actor, q) {
      const tenantWide = principalHas(auth, 'audit:read:tenant');
      // UUIDs compare case-insensitively (PostgreSQL's uuid type does too).
      const userId = q.userId?.toLowerCase();
      if (!tenantWide && userId !== undefined && userId !== auth.userId.toLowerCase()) {
        await audit.recordAs(actor, {
          action: 'access.denied',
          resourceType: 'audit_log',
          resourceId: `user:${userId}`,
          result: 'denied',
          errorMessage: `role ${auth.role} may read only its own audit events`,
        });
        throw forbidden(`role ${auth.role} asked for another user's audit events`);
      }
      try {
        return await audit.listLogs(
          auth.tenantId,
          {
            userId: tenantWide ? userId : auth.userId,
            action: q.action,
            resourceType: q.resourceType,
            resourceId: q.resourceId,
            result: q.result,
            severities: q.severities,
            from: q.from,
            to: q.to,
          },
          { limit: q.limit, cursor: q.cursor },
        );
      } catch (err) {
        if (err instanceof InvalidCursorError)
          throw validationFailed([
            { path: 'query.cursor', message: 'is not a cursor this API issued', code: 'invalid_cursor' },
          ]);
        throw err;
      }
    },

    async verifyAndRecord(actor, anchor) {
      // The chain, and (when checkpoints are configured) the tree against every stored and the newest published checkpoints.
      const r = await checkpoints.verifyTrail(actor.tenantId, { anchor });
      await audit.recordAs(actor, {
        action: r.valid ? 'audit.verify' : 'audit.verify.failed',
        resourceType: 'audit_chain',
        resourceId: actor.tenantId,
        result: r.valid ? 'success' : 'failure',
        errorMessage: r.reason,
        after: {
          valid: r.valid,
          checked: r.checked,
          firstBrokenId: r.firstBrokenId,
          unsealed: r.unsealed,
          head: r.head,
          anchor: anchor ?? null,
          ...(r.checkpoints ? { checkpoints: r.checkpoints } : {}),
        },
      });
      return r;
    },
  };
}
