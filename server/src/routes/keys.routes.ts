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
import { EMPTY, validate } from '../middleware/input-validation';
import { createRequirePlatformAdmin } from '../middleware/platform';
import { KeyUnavailableError, RotationNotSupportedError, type MasterKeyInfo } from '../services/encryption';
import { createRotationThrottle } from '../services/encryption/rotation-throttle';

export function keysRouter(c: Composition, router: Router = Router()): Router {
  const { requireAuth, requirePermission } = c.guards;
  const { encryption, audit } = c.services;
  const platform = c.config.platformTenant;
  const requirePlatformAdmin = createRequirePlatformAdmin(audit, platform);
  const throttle = createRotationThrottle({ pool: c.pool, clock: c.clock, platformTenant: platform });

  router.get('/master-key', ...requireAuth, requirePermission('keys:read'), requirePlatformAdmin, validate({}), async function getMasterKey(req: Request, res: Response) {
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
  });

  router.post(
    '/master-key/rotate',
    ...requireAuth,
    requirePermission('keys:rotate'),
    requirePlatformAdmin,
    validate({ body: EMPTY }),
    async function rotateMasterKey(req: Request, res: Response) {
      const gate = await throttle.acquire();
      if (!gate.ok) throw rateLimited(gate.retryAfterSec, 'The master key was rotated (or a rotation was attempted) less than a minute ago; try again later.');
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
            throw serviceUnavailable('The key vault is unavailable; the master key was not rotated. Try again later.', err.message);
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
          req.ctx.log.error('master key rotated but the audit row could not be written', { version: rotated.version, keyId: rotated.keyId });
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
