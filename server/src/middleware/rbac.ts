import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { forbidden, unauthenticated } from '../lib/errors';
import type { AuditService } from '../services/audit/service';
import { actorOf } from './actor';
import { principalHas, type Permission } from '../services/auth/rbac';

/**
 * requirePermission(p): the authenticated role must hold p (services/auth/rbac.ts). A denial
 * is answered 403 and written to the audit trail (access.denied); if that row cannot be
 * written the request still fails.
 */
export function createRequirePermission(audit: AuditService): (p: Permission) => RequestHandler {
  return (permission) =>
    function requirePermission(req: Request, _res: Response, next: NextFunction): void {
      const auth = req.auth;
      if (!auth) {
        next(unauthenticated('permission check without authentication'));
        return;
      }
      if (principalHas(auth, permission)) {
        next();
        return;
      }
      const who = auth.apiKeyId !== undefined ? 'API key' : `role ${auth.role}`;
      audit
        .recordAs(actorOf(req), {
          action: 'access.denied',
          resourceType: 'route',
          resourceId: `${req.method} ${req.baseUrl}${req.route?.path ?? req.path}`.slice(0, 256),
          result: 'denied',
          severity: 'medium',
          errorMessage: `${who} lacks ${permission}`,
        })
        .then(
          () => next(forbidden(`${who} lacks ${permission}`)),
          (err: unknown) => next(err),
        );
    };
}
