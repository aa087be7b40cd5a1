/**
 * TOTP step-up (CONTRACT §11):
 *   POST   /mfa/totp/enroll             Bearer → { success, otpauthUri } (pending until activated)
 *   POST   /mfa/totp/activate { code }  Bearer → { success, recoveryCodes: [10] } (shown once)
 *   POST   /mfa/step-up { code }        Bearer → { success, token, tokenType, expiresIn, amr, authTime }
 *   DELETE /mfa/totp                    Bearer + step-up → { success: true } (own TOTP)
 *   DELETE /mfa/totp/users/:userId      users:manage (admin) + step-up → { success: true } (reset a user's TOTP)
 */
import { Router, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import type { Composition } from '../compose';
import { notFound } from '../lib/errors';
import { EMPTY, validate, validBody, validParams } from '../middleware/input-validation';
import type { MfaService } from '../services/auth/mfa';

const codeBody = z.strictObject({ code: z.string().trim().min(6).max(11).regex(/^(\d{6}|[A-Za-z2-7]{5}-?[A-Za-z2-7]{5})$/, 'must be a 6-digit code or a recovery code') });
const totpCodeBody = z.strictObject({ code: z.string().trim().regex(/^\d{6}$/, 'must be a 6-digit code') });
const userParams = z.strictObject({ userId: z.uuid() });

export function mfaRouter(c: Composition, deps: { mfa: MfaService; requireStepUp: RequestHandler }, router: Router = Router()): Router {
  const { requireAuth, requirePermission } = c.guards;
  const { mfa, requireStepUp } = deps;
  const meta = (req: Request) => ({ ip: req.ctx.ip, userAgent: req.ctx.userAgent, requestId: req.ctx.requestId });
  const auth = (req: Request) => req.auth as NonNullable<Request['auth']>;

  router.post('/mfa/totp/enroll', ...requireAuth, requirePermission('profile:read'), validate({ body: EMPTY }), async function enrollTotp(req: Request, res: Response) {
    const r = await mfa.enroll(auth(req), meta(req));
    res.set('Cache-Control', 'no-store').json({ success: true, otpauthUri: r.otpauthUri });
  });

  router.post('/mfa/totp/activate', ...requireAuth, requirePermission('profile:read'), validate({ body: totpCodeBody }), async function activateTotp(req: Request, res: Response) {
    const r = await mfa.activate(auth(req), validBody<{ code: string }>(req).code, meta(req));
    res.set('Cache-Control', 'no-store').json({ success: true, recoveryCodes: r.recoveryCodes });
  });

  router.post('/mfa/step-up', ...requireAuth, requirePermission('profile:read'), validate({ body: codeBody }), async function stepUp(req: Request, res: Response) {
    const r = await mfa.stepUp(auth(req), validBody<{ code: string }>(req).code, meta(req));
    res.set('Cache-Control', 'no-store').json({ success: true, token: r.token, tokenType: 'Bearer', expiresIn: r.expiresIn, amr: r.amr, authTime: r.authTime });
  });

  router.delete('/mfa/totp', ...requireAuth, requirePermission('profile:read'), requireStepUp, validate({}), async function removeOwnTotp(req: Request, res: Response) {
    if (!(await mfa.remove(auth(req), auth(req).userId, meta(req)))) throw notFound('TOTP enrollment');
    res.json({ success: true });
  });

  router.delete('/mfa/totp/users/:userId', ...requireAuth, requirePermission('users:manage'), requireStepUp, validate({ params: userParams }), async function resetUserTotp(req: Request, res: Response) {
    if (!(await mfa.remove(auth(req), validParams<{ userId: string }>(req).userId.toLowerCase(), meta(req)))) throw notFound('TOTP enrollment');
    res.json({ success: true });
  });

  return router;
}
