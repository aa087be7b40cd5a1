import { Router, type Request, type Response } from 'express';
import type { Guards, Services } from '../compose';
import type { Config } from '../config';
import type { Clock } from '../lib/clock';
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
  services: Services;
  guards: Guards;
  config: Pick<Config, 'isProduction'>;
  clock: Clock;
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
  const { services, guards } = deps;
  authRouter({ guards, auth: services.auth, csrf: deps.csrf, secureCookies: deps.config.isProduction }, router);
  auditRouter({ guards, audit: services.audit, trail: services.auditTrail, idempotency: services.idempotency }, router);
  auditProofRouter({ guards, checkpoints: services.checkpoints, proofs: services.auditProofs }, router);
  keysRouter({ guards, masterKeys: services.masterKeys }, router);
  siemRouter(
    {
      guards,
      siem: services.monitoring.siem,
      archive: services.monitoring.archive,
      idempotency: services.idempotency,
    },
    router,
  );
  auditStreamsRouter({ guards, streams: services.monitoring.streams }, router);
  apiKeysRouter({ guards, apiKeys: services.apiKeys, idempotency: services.idempotency, clock: deps.clock }, router);
  mfaRouter({ guards, mfa: services.mfa }, router);

  return router;
}
