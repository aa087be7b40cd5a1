/**
 * Master key routes (CONTRACT §3, §9), for platform admins only (admins of PLATFORM_TENANT;
 * everyone else 403 FORBIDDEN with an access.denied row):
 *   GET  /master-key         keys:read   → metadata of the current key, audited key.master.read (high)
 *   POST /master-key/rotate  keys:rotate → new Key Vault version, audited key.master.rotated (critical);
 *                                          at most one attempt a minute (429 RATE_LIMITED + Retry-After)
 * Key events are written to the platform tenant's trail. The Key Vault call runs with no
 * database transaction open (no pooled connection waits on the vault): the vault first, then a
 * short transaction for the audit row.
 * Responses never contain key material; they are marked `Cache-Control: no-store`.
 */
import { Router, type Request, type Response } from 'express';
import type { Composition } from '../compose';
import { withTenant } from '../db/transaction';
import { conflict, rateLimited, serviceUnavailable } from '../lib/errors';
import { z } from 'zod';
import { EMPTY, validate } from '../middleware/input-validation';
import { createRequirePlatformAdmin } from '../middleware/platform';
import { ErrorResponse } from '../openapi/common';
import { describeRoute } from '../openapi/registry';
import { KeyUnavailableError, RotationNotSupportedError, type MasterKeyInfo } from '../services/encryption';
import { createRotationThrottle } from '../services/encryption/rotation-throttle';

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

export function keysRouter(c: Composition, router: Router = Router()): Router {
  const { requireAuth, requirePermission } = c.guards;
  const { encryption, audit } = c.services;
  const platform = c.config.platformTenant;
  const requirePlatformAdmin = createRequirePlatformAdmin(audit, platform);
  const throttle = createRotationThrottle({ pool: c.pool, clock: c.clock, platformTenant: platform });

  router.get(
    '/master-key',
    ...requireAuth,
    requirePermission('keys:read'),
    requirePlatformAdmin,
    validate({}),
    async function getMasterKey(req: Request, res: Response) {
      let info: MasterKeyInfo;
      try {
        info = await encryption.describeMasterKey();
      } catch (err) {
        if (!(err instanceof KeyUnavailableError)) throw err;
        await audit.recordFromRequest(req, {
          tenantId: platform,
          action: 'key.master.read',
          resourceType: 'master_key',
          result: 'failure',
          severity: 'high',
          errorMessage: err.message.slice(0, 2000),
        });
        throw serviceUnavailable('The master key is unavailable; try again later.', err.message);
      }
      await audit.recordFromRequest(req, {
        tenantId: platform,
        action: 'key.master.read',
        resourceType: 'master_key',
        resourceId: info.keyId.slice(0, 256),
        severity: 'high',
        after: { version: info.version, source: info.source, fingerprint: info.fingerprint },
      });
      res.set('Cache-Control', 'no-store').json({ success: true, key: info });
    },
  );

  router.post(
    '/master-key/rotate',
    ...requireAuth,
    requirePermission('keys:rotate'),
    requirePlatformAdmin,
    c.guards.requireStepUp,
    validate({ body: EMPTY }),
    async function rotateMasterKey(req: Request, res: Response) {
      const gate = await throttle.acquire();
      if (!gate.ok)
        throw rateLimited(
          gate.retryAfterSec,
          'The master key was rotated (or a rotation was attempted) less than a minute ago; try again later.',
        );
      let attempted = false;
      try {
        const before = encryption.keyProvider.peekCurrentKey?.() ?? (await encryption.getMasterKey().catch(() => null));
        const failed = async (err: Error) =>
          audit.recordFromRequest(req, {
            tenantId: platform,
            action: 'key.master.rotated',
            resourceType: 'master_key',
            resourceId: before?.keyId.slice(0, 256) ?? null,
            result: 'failure',
            severity: 'critical',
            errorMessage: err.message.slice(0, 2000),
            before: before ? { version: before.version } : undefined,
          });
        let rotated: MasterKeyInfo;
        try {
          attempted = true;
          rotated = await encryption.rotateKey();
        } catch (err) {
          if (err instanceof RotationNotSupportedError) {
            attempted = false; // the vault was not asked: nothing to throttle
            await failed(err);
            throw conflict(err.message);
          }
          if (err instanceof KeyUnavailableError) {
            await failed(err);
            throw serviceUnavailable(
              'The key vault is unavailable; the master key was not rotated. Try again later.',
              err.message,
            );
          }
          throw err;
        }
        try {
          await withTenant(c.pool, platform, (client) =>
            audit.recordFromRequest(
              req,
              {
                tenantId: platform,
                action: 'key.master.rotated',
                resourceType: 'master_key',
                resourceId: rotated.keyId.slice(0, 256),
                severity: 'critical',
                before: before ? { version: before.version, fingerprint: before.fingerprint } : undefined,
                after: { version: rotated.version, fingerprint: rotated.fingerprint, source: rotated.source },
              },
              client,
            ),
          );
        } catch (err) {
          req.ctx.log.error('master key rotated but the audit row could not be written', {
            version: rotated.version,
            keyId: rotated.keyId,
          });
          throw err;
        }
        res.set('Cache-Control', 'no-store').json({ success: true, key: rotated });
      } finally {
        gate.release(attempted);
      }
    },
  );

  return router;
}
