/**
 * Master key routes (CONTRACT §3, §9), for platform admins only (admins of PLATFORM_TENANT;
 * everyone else 403 FORBIDDEN with an access.denied row):
 *   GET  /master-key         keys:read   → metadata of the current key, audited key.master.read (high)
 *   POST /master-key/rotate  keys:rotate → new Key Vault version, audited key.master.rotated (critical);
 *                                          at most one attempt a minute (429 RATE_LIMITED + Retry-After)
 * Key events are written to the platform tenant's trail (services/encryption/master-key-admin.ts).
 * Responses never contain key material; they are marked `Cache-Control: no-store`.
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { Guards } from '../compose';
import { actorOf } from '../middleware/actor';
import { EMPTY, validate } from '../middleware/input-validation';
import { ErrorResponse } from '../openapi/common';
import { describeRoute } from '../openapi/registry';
import type { MasterKeyAdmin } from '../services/encryption/master-key-admin';

// ---- API description (server/src/openapi)
const MasterKeyReply = z
  .strictObject({
    success: z.literal(true),
    key: z.strictObject({
      keyId: z.string(),
      version: z.string(),
      algorithm: z.literal('AES-256-GCM'),
      source: z.enum(['azure-key-vault', 'environment', 'static']),
      fingerprint: z.string().meta({ description: 'Identifies the key; reveals nothing of it.' }),
      cachedUntil: z.string().nullable(),
    }),
  })
  .meta({ id: 'MasterKeyReply' });
const keyNoStore = {
  'Cache-Control': {
    description: 'Never cached.',
    required: true,
    schema: { type: 'string' as const, const: 'no-store' },
  },
};
describeRoute({
  method: 'get',
  path: '/api/v1/security/master-key',
  operationId: 'getMasterKey',
  summary: "The current master key's metadata (never key material)",
  description: 'Audited key.master.read (high).',
  tags: ['keys'],
  security: ['bearerAuth'],
  permission: 'keys:read',
  platformAdmin: true,
  responses: { 200: { description: 'The metadata.', schema: MasterKeyReply, headers: keyNoStore } },
});
describeRoute({
  method: 'post',
  path: '/api/v1/security/master-key/rotate',
  operationId: 'rotateMasterKey',
  summary: 'Rotate the master key (Key Vault); at most one attempt a minute',
  description:
    'A new Key Vault secret version becomes current; data under older versions still decrypts. Audited key.master.rotated (critical).',
  tags: ['keys'],
  security: ['bearerAuth'],
  permission: 'keys:rotate',
  platformAdmin: true,
  stepUp: true,
  request: { body: EMPTY, bodyOptional: true },
  responses: {
    200: { description: 'Rotated.', schema: MasterKeyReply, headers: keyNoStore },
    409: {
      description:
        'CONFLICT: the key comes from the environment (or the development secrets file) and is rotated by configuration; the message says how.',
      schema: ErrorResponse,
    },
    429: {
      description:
        'RATE_LIMITED: the master key was rotated (or a rotation was attempted) less than a minute ago, or too many requests; Retry-After says when to try again.',
      schema: ErrorResponse,
      headers: {
        'Retry-After': {
          description: 'Seconds until a retry may succeed.',
          required: true,
          schema: { type: 'string', pattern: '^\\d+$' },
        },
      },
    },
  },
});

export interface KeysRouterDeps {
  guards: Pick<Guards, 'requireAuth' | 'requirePermission' | 'requirePlatformAdmin' | 'requireStepUp'>;
  masterKeys: MasterKeyAdmin;
}

export function keysRouter(deps: KeysRouterDeps, router: Router = Router()): Router {
  const { requireAuth, requirePermission, requirePlatformAdmin, requireStepUp } = deps.guards;
  const { masterKeys } = deps;

  router.get(
    '/master-key',
    ...requireAuth,
    requirePermission('keys:read'),
    requirePlatformAdmin,
    validate({}),
    async function getMasterKey(req: Request, res: Response) {
      const key = await masterKeys.describe(actorOf(req));
      res.set('Cache-Control', 'no-store').json({ success: true, key });
    },
  );

  router.post(
    '/master-key/rotate',
    ...requireAuth,
    requirePermission('keys:rotate'),
    requirePlatformAdmin,
    requireStepUp,
    validate({ body: EMPTY }),
    async function rotateMasterKey(req: Request, res: Response) {
      const key = await masterKeys.rotate(actorOf(req));
      res.set('Cache-Control', 'no-store').json({ success: true, key });
    },
  );

  return router;
}
