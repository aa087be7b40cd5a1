/**
 * Master key routes (CONTRACT §3):
 *   GET  /master-key         keys:read   → metadata of the current key, audited key.master.read (high)
 *   POST /master-key/rotate  keys:rotate → new Key Vault version, audited key.master.rotated (critical)
 * Responses never contain key material; they are marked `Cache-Control: no-store`.
 */
import { Router, type Request, type Response } from 'express';
import type { Composition } from '../compose';
import { withTenant } from '../db/transaction';
import { conflict, serviceUnavailable } from '../lib/errors';
import { EMPTY, validate } from '../middleware/input-validation';
import { KeyUnavailableError, RotationNotSupportedError, type MasterKeyInfo } from '../services/encryption';

export function keysRouter(c: Composition, router: Router = Router()): Router {
  const { requireAuth, requirePermission } = c.guards;
  const { encryption, audit } = c.services;

  router.get('/master-key', ...requireAuth, requirePermission('keys:read'), validate({}), async function getMasterKey(req: Request, res: Response) {
    let info: MasterKeyInfo;
    try {
      info = await encryption.describeMasterKey();
    } catch (err) {
      if (!(err instanceof KeyUnavailableError)) throw err;
      await audit.recordFromRequest(req, {
        action: 'key.master.read',
        resourceType: 'master_key',
        result: 'failure',
        severity: 'high',
        errorMessage: err.message.slice(0, 2000),
      });
      throw serviceUnavailable('The master key is unavailable; try again later.', err.message);
    }
    await audit.recordFromRequest(req, {
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
    c.guards.requireStepUp,
    validate({ body: EMPTY }),
    async function rotateMasterKey(req: Request, res: Response) {
      const auth = req.auth as NonNullable<Request['auth']>;
      const before = encryption.keyProvider.peekCurrentKey?.() ?? (await encryption.getMasterKey().catch(() => null));
      const failed = async (err: Error) =>
        audit.recordFromRequest(req, {
          action: 'key.master.rotated',
          resourceType: 'master_key',
          resourceId: before?.keyId.slice(0, 256) ?? null,
          result: 'failure',
          severity: 'critical',
          errorMessage: err.message.slice(0, 2000),
          before: before ? { version: before.version } : undefined,
        });
      let rotated: MasterKeyInfo | null = null;
      let info: MasterKeyInfo;
      try {
        // The audit row commits in the same transaction that is open while the vault writes the
        // new version; if the row cannot be written the request fails (and says so in the log).
        info = await withTenant(c.pool, auth.tenantId, async (client) => {
          rotated = await encryption.rotateKey();
          await audit.recordFromRequest(
            req,
            {
              action: 'key.master.rotated',
              resourceType: 'master_key',
              resourceId: rotated.keyId.slice(0, 256),
              severity: 'critical',
              before: before ? { version: before.version, fingerprint: before.fingerprint } : undefined,
              after: { version: rotated.version, fingerprint: rotated.fingerprint, source: rotated.source },
            },
            client,
          );
          return rotated;
        });
      } catch (err) {
        if (err instanceof RotationNotSupportedError) {
          await failed(err);
          throw conflict(err.message);
        }
        if (err instanceof KeyUnavailableError) {
          await failed(err);
          throw serviceUnavailable('The key vault is unavailable; the master key was not rotated. Try again later.', err.message);
        }
        if (rotated) {
          req.ctx.log.error('master key rotated but the audit row could not be written', { version: (rotated as MasterKeyInfo).version, keyId: (rotated as MasterKeyInfo).keyId });
        }
        throw err;
      }
      res.set('Cache-Control', 'no-store').json({ success: true, key: info });
    },
  );

  return router;
}
