import cookieParser from 'cookie-parser';
import { Router, type Request, type Response } from 'express';
import type { Composition } from '../compose';
import type { CsrfProtection } from '../middleware/csrf';
import { auditRouter } from './audit.routes';
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
  router.use(cookieParser());

  router.get('/csrf-token', function csrfToken(req: Request, res: Response) {
    res.json({ success: true, csrfToken: deps.csrf.issue(req, res) });
  });
  router.use(authRouter(deps));

  router.use(auditRouter(deps.composition));
  router.use(keysRouter(deps.composition));
  router.use(siemRouter(deps.composition));

  return router;
}
