import { Router, type Request, type Response } from 'express';
import type { Composition } from '../compose';
import { parseCookies, type CsrfProtection } from '../middleware/csrf';
import { rejectQuery } from '../middleware/input-validation';
import { describeRoute } from '../openapi/registry';
import { z } from 'zod';
import { apiKeysRouter } from './api-keys.routes';
import { auditRouter } from './audit.routes';
import { mfaRouter } from './mfa.routes';
import { auditProofRouter } from './audit-proofs.routes';
import { auditStreamsRouter } from './audit-streams.routes';
import { authRouter } from './auth.routes';
import { keysRouter } from './keys.routes';
import { siemRouter } from './siem.routes';

describeRoute({
  method: 'get',
  path: '/api/v1/security/csrf-token',
  operationId: 'getCsrfToken',
  summary: 'A CSRF token for the cookie refresh',
  description:
    'Sets the signed CSRF cookie (fleet.csrf; __Host-fleet.csrf in production) and returns the token to send back as X-CSRF-Token with POST /refresh when the refresh token comes from the fleet_refresh cookie.',
  tags: ['auth'],
  security: [],
  responses: {
    200: {
      description: 'The token.',
      schema: z.strictObject({ success: z.literal(true), csrfToken: z.string() }),
      headers: {
        'Set-Cookie': { description: 'The CSRF cookie (HttpOnly, SameSite=Strict).', schema: { type: 'string' } },
      },
    },
  },
});

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
  auditProofRouter(deps.composition, router);
  keysRouter(deps.composition, router);
  siemRouter(deps.composition, router);
  auditStreamsRouter(deps.composition, router);
  apiKeysRouter(
    deps.composition,
    { apiKeys: deps.composition.services.apiKeys, requireStepUp: deps.composition.guards.requireStepUp },
    router,
  );
  mfaRouter(
    deps.composition,
    { mfa: deps.composition.services.mfa, requireStepUp: deps.composition.guards.requireStepUp },
    router,
  );

  return router;
}
