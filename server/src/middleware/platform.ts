import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { forbidden, unauthenticated } from '../lib/errors';
import type { AuditService } from '../services/audit/service';
import { actorOf } from './actor';

/**
 * requirePlatformAdmin: CONTRACT §9. After requirePermission (the role check), the caller's
 * tenant must be the platform tenant (PLATFORM_TENANT): a tenant admin governs their tenant
 * only, never the deployment's master key. A denial is 403 FORBIDDEN and an access.denied row
 * in the caller's tenant (the request fails if the row cannot be written).
 */
export function createRequirePlatformAdmin(audit: AuditService, platformTenant: string): RequestHandler {
  return function requirePlatformAdmin(req: Request, _res: Response, next: NextFunction): void {
    const auth = req.auth;
    if (!auth) {
      next(unauthenticated('platform check without authentication'));
      return;
    }
    if (auth.tenantId === platformTenant && auth.role === 'admin') {
      next();
      return;
    }
    const reason = 'platform administration: only admins of the platform tenant';
    audit
      .recordAs(actorOf(req), {
        action: 'access.denied',
        resourceType: 'route',
        resourceId: `${req.method} ${req.baseUrl}${req.route?.path ?? req.path}`.slice(0, 256),
        result: 'denied',
        severity: 'medium',
        errorMessage: reason,
      })
      .then(
        () => next(forbidden(reason)),
        (err: unknown) => next(err),
      );
  };
}
