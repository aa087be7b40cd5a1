import { Router, type Request, type Response } from 'express';
import type { Composition } from '../compose';
import { parseCookies, type CsrfProtection } from '../middleware/csrf';
import { rejectQuery } from '../middleware/input-validation';
import { apiKeysRouter } from './api-keys.routes';
import { auditRouter } from './audit.routes';
import { mfaRouter } from './mfa.routes';
import { authRouter } from './auth.routes';
import { keysRouter } from './keys.routes';
import { siemRouter } from './siem.routes';

export interface SecurityRouterDeps {
  composition: Composition;
  csrf: CsrfProtection;
}

/** The /api/v1/security router: thin glue over the area routers. */
export function securityRouter(deps: SecurityRouterDeps): Router {
  const router = Router();

  // Cookies are parsed only by the routes that read them (the CSRF cookie, the refresh cookie).
  router.get('/csrf-token', rejectQuery, parseCookies, function csrfToken(req: Request, res: Response) {
    res.json({ success: true, csrfToken: deps.csrf.issue(req, res) });
  });
  // The areas register their routes on this one router (no nested routers to walk per request).
  authRouter(deps, router);
  auditRouter(deps.composition, router);
  keysRouter(deps.composition, router);
  siemRouter(deps.composition, router);
  apiKeysRouter(deps.composition, { apiKeys: deps.composition.services.apiKeys, requireStepUp: deps.composition.guards.requireStepUp }, router);
  mfaRouter(deps.composition, { mfa: deps.composition.services.mfa, requireStepUp: deps.composition.guards.requireStepUp }, router);

  return router;
}
