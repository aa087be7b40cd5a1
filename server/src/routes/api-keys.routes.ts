/**
 * Service API keys (CONTRACT §11):
 *   POST   /api-keys      apikeys:manage (admin) + step-up → 201 { success, apiKey, key } (key shown once)
 *   GET    /api-keys      apikeys:manage → { success, apiKeys: [ …metadata, lastUsedAt… ] }
 *   DELETE /api-keys/:id  apikeys:manage → { success: true }; revoked at once (404 for unknown / other tenant)
 */
import { Router, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import type { Composition } from '../compose';
import { validationFailed } from '../lib/errors';
import { rejectQuery, validate, validBody, validParams } from '../middleware/input-validation';
import type { ApiKeyService } from '../services/auth/api-keys';
import { API_SCOPES, type ApiScope } from '../services/auth/rbac';

/** Longest an API key may live (expiresAt). */
const MAX_LIFETIME_MS = 2 * 365 * 86_400_000;

const createBody = z.strictObject({
  name: z
    .string()
    .trim()
    .min(1)
    .max(100)
    .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters'),
  scopes: z
    .array(z.enum(API_SCOPES))
    .min(1)
    .max(API_SCOPES.length)
    .refine((a) => new Set(a).size === a.length, 'must not repeat a scope'),
  expiresAt: z.iso.datetime({ offset: true }).optional(),
});
type CreateBody = z.infer<typeof createBody>;
const idParams = z.strictObject({ id: z.uuid() });

export interface ApiKeyRouteDeps {
  apiKeys: ApiKeyService;
  /** Step-up guard of admin actions (CONTRACT §11); a no-op until TOTP exists. */
  requireStepUp: RequestHandler;
}

export function apiKeysRouter(c: Composition, deps: ApiKeyRouteDeps, router: Router = Router()): Router {
  const { requireAuth, requirePermission } = c.guards;
  const { apiKeys } = deps;
  const meta = (req: Request) => ({ ip: req.ctx.ip, userAgent: req.ctx.userAgent, requestId: req.ctx.requestId });

  router.post(
    '/api-keys',
    ...requireAuth,
    requirePermission('apikeys:manage'),
    deps.requireStepUp,
    validate({ body: createBody }),
    async function createApiKey(req: Request, res: Response) {
      const auth = req.auth as NonNullable<Request['auth']>;
      const b = validBody<CreateBody>(req);
      let expiresAt: Date | null = null;
      if (b.expiresAt !== undefined) {
        expiresAt = new Date(b.expiresAt);
        const now = c.clock.now();
        if (expiresAt.getTime() <= now) throw validationFailed([{ path: 'body.expiresAt', message: 'must be in the future', code: 'too_small' }]);
        if (expiresAt.getTime() > now + MAX_LIFETIME_MS) throw validationFailed([{ path: 'body.expiresAt', message: 'must be at most 2 years ahead', code: 'too_big' }]);
      }
      const r = await apiKeys.create({ tenantId: auth.tenantId, userId: auth.userId }, { name: b.name, scopes: b.scopes as ApiScope[], expiresAt }, meta(req));
      res.status(201).set('Cache-Control', 'no-store').json({ success: true, apiKey: r.apiKey, key: r.key });
    },
  );

  router.get('/api-keys', ...requireAuth, requirePermission('apikeys:manage'), rejectQuery, async function listApiKeys(req: Request, res: Response) {
    const auth = req.auth as NonNullable<Request['auth']>;
    res.set('Cache-Control', 'no-store').json({ success: true, apiKeys: await apiKeys.list(auth.tenantId) });
  });

  router.delete('/api-keys/:id', ...requireAuth, requirePermission('apikeys:manage'), validate({ params: idParams }), async function revokeApiKey(req: Request, res: Response) {
    const auth = req.auth as NonNullable<Request['auth']>;
    await apiKeys.revoke({ tenantId: auth.tenantId, userId: auth.userId }, validParams<{ id: string }>(req).id.toLowerCase(), meta(req));
    res.json({ success: true });
  });

  return router;
}
