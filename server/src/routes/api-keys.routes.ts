/**
 * Service API keys (CONTRACT §11):
 *   POST   /api-keys      apikeys:manage (admin) + step-up → 201 { success, apiKey, key } (key shown once);
 *                          Idempotency-Key (CONTRACT §6): a replay answers { success, apiKey } without the key
 *   GET    /api-keys      apikeys:manage → { success, apiKeys: [ …metadata, lastUsedAt… ] }
 *   DELETE /api-keys/:id  apikeys:manage → { success: true }; revoked at once (404 for unknown / other tenant)
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { Guards } from '../compose';
import type { Clock } from '../lib/clock';
import { validationFailed } from '../lib/errors';
import { actorOf, authOf } from '../middleware/actor';
import { idempotentRoutes } from '../middleware/idempotency';
import { rejectQuery, validate, validBody, validParams } from '../middleware/input-validation';
import { ErrorResponse } from '../openapi/common';
import { describeRoute } from '../openapi/registry';
import type { ApiKeyService } from '../services/auth/api-keys';
import type { IdempotencyService } from '../services/idempotency/service';
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

// ---- API description (server/src/openapi)
const P = '/api/v1/security';
const noStore = {
  'Cache-Control': {
    description: 'Never cached.',
    required: true,
    schema: { type: 'string' as const, const: 'no-store' },
  },
};
const ApiKeyView = z.strictObject({
  id: z.uuid(),
  name: z.string(),
  scopes: z.array(z.enum(API_SCOPES)),
  prefix: z.string().meta({ description: 'The public part of the key (fsk_<prefix>_…), to recognize it.' }),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime().nullable(),
});
const ApiKeyListEntry = ApiKeyView.extend({
  lastUsedAt: z.iso.datetime().nullable(),
  revokedAt: z.iso.datetime().nullable(),
  createdBy: z.uuid(),
  status: z.enum(['active', 'revoked', 'expired']),
}).meta({ id: 'ApiKey' });
describeRoute({
  method: 'post',
  path: `${P}/api-keys`,
  operationId: 'createApiKey',
  summary: 'Create a service API key (shown once)',
  description:
    'The key (`fsk_<prefix>_<secret>`) is in the answer only; the service keeps an HMAC of it. Use it as `Authorization: Bearer fsk_…` on the routes that accept API keys. Audited key.api.created (high). ' +
    'With an Idempotency-Key, a replay answers the same apiKey without `key`: the secret is never stored; if it was lost, revoke the key and create another.',
  tags: ['identity'],
  security: ['bearerAuth'],
  permission: 'apikeys:manage',
  stepUp: true,
  idempotent: true,
  request: {
    body: createBody,
    bodyExample: { name: 'fleet-telemetry', scopes: ['audit:write'], expiresAt: '2027-06-01T00:00:00Z' },
  },
  responses: {
    201: {
      description: 'Created. `key` is absent in a replay (Idempotent-Replayed: true).',
      headers: noStore,
      schema: z.strictObject({
        success: z.literal(true),
        apiKey: ApiKeyView,
        key: z.string().regex(/^fsk_/).optional().meta({ description: 'The API key; shown once.' }),
      }),
    },
  },
});
describeRoute({
  method: 'get',
  path: `${P}/api-keys`,
  operationId: 'listApiKeys',
  summary: "The tenant's API keys (metadata, never secrets)",
  tags: ['identity'],
  security: ['bearerAuth'],
  permission: 'apikeys:manage',
  responses: {
    200: {
      description: 'The keys.',
      headers: noStore,
      schema: z.strictObject({ success: z.literal(true), apiKeys: z.array(ApiKeyListEntry) }),
    },
  },
});
describeRoute({
  method: 'delete',
  path: `${P}/api-keys/{id}`,
  operationId: 'revokeApiKey',
  summary: 'Revoke an API key (effective on its next request)',
  description: 'Audited key.api.revoked (high).',
  tags: ['identity'],
  security: ['bearerAuth'],
  permission: 'apikeys:manage',
  request: { params: idParams },
  responses: {
    200: { description: 'Revoked.', schema: z.strictObject({ success: z.literal(true) }) },
    404: { description: 'NOT_FOUND: no such key in your tenant.', schema: ErrorResponse },
  },
});

export interface ApiKeyRouteDeps {
  guards: Pick<Guards, 'requireAuth' | 'requirePermission' | 'requireStepUp'>;
  apiKeys: ApiKeyService;
  idempotency: IdempotencyService;
  clock: Clock;
}

export function apiKeysRouter(deps: ApiKeyRouteDeps, router: Router = Router()): Router {
  const { requireAuth, requirePermission, requireStepUp } = deps.guards;
  const { apiKeys } = deps;
  const idempotency = idempotentRoutes(deps.idempotency);

  router.post(
    '/api-keys',
    ...requireAuth,
    requirePermission('apikeys:manage'),
    requireStepUp,
    idempotency.checkKey,
    validate({ body: createBody }),
    async function createApiKey(req: Request, res: Response) {
      const auth = authOf(req);
      const actor = actorOf(req);
      const b = validBody<CreateBody>(req);
      let expiresAt: Date | null = null;
      if (b.expiresAt !== undefined) {
        expiresAt = new Date(b.expiresAt);
        const now = deps.clock.now();
        if (expiresAt.getTime() <= now)
          throw validationFailed([{ path: 'body.expiresAt', message: 'must be in the future', code: 'too_small' }]);
        if (expiresAt.getTime() > now + MAX_LIFETIME_MS)
          throw validationFailed([
            { path: 'body.expiresAt', message: 'must be at most 2 years ahead', code: 'too_big' },
          ]);
      }
      res.set('Cache-Control', 'no-store');
      await idempotency.respond(req, res, 'POST /api-keys', async (q) => {
        const r = await apiKeys.create(
          { tenantId: auth.tenantId, userId: auth.userId },
          { name: b.name, scopes: b.scopes as ApiScope[], expiresAt },
          actor,
          q,
        );
        // The secret is shown once and never kept: a replay answers the metadata only.
        return {
          status: 201,
          body: { success: true, apiKey: r.apiKey, key: r.key },
          keep: { success: true, apiKey: r.apiKey },
        };
      });
    },
  );

  router.get(
    '/api-keys',
    ...requireAuth,
    requirePermission('apikeys:manage'),
    rejectQuery,
    async function listApiKeys(req: Request, res: Response) {
      res.set('Cache-Control', 'no-store').json({ success: true, apiKeys: await apiKeys.list(actorOf(req).tenantId) });
    },
  );

  router.delete(
    '/api-keys/:id',
    ...requireAuth,
    requirePermission('apikeys:manage'),
    validate({ params: idParams }),
    async function revokeApiKey(req: Request, res: Response) {
      const auth = authOf(req);
      await apiKeys.revoke(
        { tenantId: auth.tenantId, userId: auth.userId },
        validParams<{ id: string }>(req).id.toLowerCase(),
        actorOf(req),
      );
      res.json({ success: true });
    },
  );

  return router;
}
