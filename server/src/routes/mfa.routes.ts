/**
 * TOTP step-up (CONTRACT §11):
 *   POST   /mfa/totp/enroll             Bearer → { success, otpauthUri } (pending until activated)
 *   POST   /mfa/totp/activate { code }  Bearer → { success, recoveryCodes: [10] } (shown once)
 *   POST   /mfa/step-up { code }        Bearer → { success, token, tokenType, expiresIn, amr, authTime }
 *   DELETE /mfa/totp                    Bearer + step-up → { success: true } (own TOTP)
 *   DELETE /mfa/totp/users/:userId      users:manage (admin) + step-up → { success: true } (reset a user's TOTP)
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { Guards } from '../compose';
import { notFound } from '../lib/errors';
import { actorOf, authOf } from '../middleware/actor';
import { EMPTY, validate, validBody, validParams } from '../middleware/input-validation';
import { ErrorResponse } from '../openapi/common';
import { describeRoute } from '../openapi/registry';
import type { MfaService } from '../services/auth/mfa';

const codeBody = z.strictObject({
  code: z
    .string()
    .trim()
    .min(6)
    .max(11)
    .regex(/^(\d{6}|[A-Za-z2-7]{5}-?[A-Za-z2-7]{5})$/, 'must be a 6-digit code or a recovery code'),
});
const totpCodeBody = z.strictObject({
  code: z
    .string()
    .trim()
    .regex(/^\d{6}$/, 'must be a 6-digit code'),
});
const userParams = z.strictObject({ userId: z.uuid() });

// ---- API description (server/src/openapi)
const P = '/api/v1/security';
const noStore = {
  'Cache-Control': {
    description: 'Never cached.',
    required: true,
    schema: { type: 'string' as const, const: 'no-store' },
  },
};
const ok = { description: 'Done.', schema: z.strictObject({ success: z.literal(true) }) };
const conflict409 = (what: string) => ({ description: `CONFLICT: ${what}`, schema: ErrorResponse });
describeRoute({
  method: 'post',
  path: `${P}/mfa/totp/enroll`,
  operationId: 'enrollTotp',
  summary: 'Start a TOTP enrollment (pending until activated)',
  description:
    'Add the otpauth URI (RFC 6238, SHA-1, 6 digits, 30 s) to an authenticator app, then activate with a code. A new enrollment replaces a pending one.',
  tags: ['identity'],
  security: ['bearerAuth'],
  permission: 'profile:read',
  request: { body: EMPTY, bodyOptional: true },
  responses: {
    200: {
      description: 'The pending enrollment.',
      headers: noStore,
      schema: z.strictObject({ success: z.literal(true), otpauthUri: z.string().regex(/^otpauth:\/\/totp\//) }),
    },
    409: conflict409('TOTP is already active for this user.'),
  },
});
describeRoute({
  method: 'post',
  path: `${P}/mfa/totp/activate`,
  operationId: 'activateTotp',
  summary: 'Activate TOTP with a first code; answers the recovery codes (shown once)',
  tags: ['identity'],
  security: ['bearerAuth'],
  permission: 'profile:read',
  request: { body: totpCodeBody, bodyExample: { code: '123456' } },
  responses: {
    200: {
      description: 'Active.',
      headers: noStore,
      schema: z.strictObject({
        success: z.literal(true),
        recoveryCodes: z.array(z.string()).meta({ description: 'Ten single-use recovery codes; shown once.' }),
      }),
    },
    409: conflict409('no pending enrollment, or TOTP is already active.'),
  },
});
describeRoute({
  method: 'post',
  path: `${P}/mfa/step-up`,
  operationId: 'stepUp',
  summary: 'Step up with a TOTP or recovery code; answers an access token accepted by step-up routes for 10 minutes',
  description:
    'A wrong code is 400 VALIDATION_FAILED (body.code, invalid_code); wrong codes count, and after too many step-up is locked (429 RATE_LIMITED + Retry-After).',
  tags: ['identity'],
  security: ['bearerAuth'],
  permission: 'profile:read',
  request: { body: codeBody, bodyExample: { code: '123456' } },
  responses: {
    200: {
      description: 'The step-up access token.',
      headers: noStore,
      schema: z.strictObject({
        success: z.literal(true),
        token: z.string(),
        tokenType: z.literal('Bearer'),
        expiresIn: z.int().min(1),
        amr: z
          .array(z.string())
          .meta({ description: 'RFC 8176: ["otp"] for a TOTP code, ["mfa"] for a recovery code.' }),
        authTime: z.int().meta({ description: 'When the step-up happened (seconds since the epoch).' }),
      }),
    },
    409: conflict409('TOTP is not active for this user.'),
  },
});
describeRoute({
  method: 'delete',
  path: `${P}/mfa/totp`,
  operationId: 'removeOwnTotp',
  summary: 'Remove your own TOTP (and recovery codes)',
  tags: ['identity'],
  security: ['bearerAuth'],
  permission: 'profile:read',
  stepUp: true,
  responses: { 200: ok, 404: { description: 'NOT_FOUND: no TOTP enrollment.', schema: ErrorResponse } },
});
describeRoute({
  method: 'delete',
  path: `${P}/mfa/totp/users/{userId}`,
  operationId: 'resetUserTotp',
  summary: "Reset a user's TOTP (admin)",
  tags: ['identity'],
  security: ['bearerAuth'],
  permission: 'users:manage',
  stepUp: true,
  request: { params: userParams },
  responses: {
    200: ok,
    404: {
      description: 'NOT_FOUND: the user has no TOTP enrollment (or is not in your tenant).',
      schema: ErrorResponse,
    },
  },
});

export interface MfaRouterDeps {
  guards: Pick<Guards, 'requireAuth' | 'requirePermission' | 'requireStepUp'>;
  mfa: MfaService;
}

export function mfaRouter(deps: MfaRouterDeps, router: Router = Router()): Router {
  const { requireAuth, requirePermission, requireStepUp } = deps.guards;
  const { mfa } = deps;

  router.post(
    '/mfa/totp/enroll',
    ...requireAuth,
    requirePermission('profile:read'),
    validate({ body: EMPTY }),
    async function enrollTotp(req: Request, res: Response) {
      const r = await mfa.enroll(authOf(req), actorOf(req));
      res.set('Cache-Control', 'no-store').json({ success: true, otpauthUri: r.otpauthUri });
    },
  );

  router.post(
    '/mfa/totp/activate',
    ...requireAuth,
    requirePermission('profile:read'),
    validate({ body: totpCodeBody }),
    async function activateTotp(req: Request, res: Response) {
      const r = await mfa.activate(authOf(req), validBody<{ code: string }>(req).code, actorOf(req));
      res.set('Cache-Control', 'no-store').json({ success: true, recoveryCodes: r.recoveryCodes });
    },
  );

  router.post(
    '/mfa/step-up',
    ...requireAuth,
    requirePermission('profile:read'),
    validate({ body: codeBody }),
    async function stepUp(req: Request, res: Response) {
      const r = await mfa.stepUp(authOf(req), validBody<{ code: string }>(req).code, actorOf(req));
      res.set('Cache-Control', 'no-store').json({
        success: true,
        token: r.token,
        tokenType: 'Bearer',
        expiresIn: r.expiresIn,
        amr: r.amr,
        authTime: r.authTime,
      });
    },
  );

  router.delete(
    '/mfa/totp',
    ...requireAuth,
    requirePermission('profile:read'),
    requireStepUp,
    validate({}),
    async function removeOwnTotp(req: Request, res: Response) {
      if (!(await mfa.remove(authOf(req), authOf(req).userId, actorOf(req)))) throw notFound('TOTP enrollment');
      res.json({ success: true });
    },
  );

  router.delete(
    '/mfa/totp/users/:userId',
    ...requireAuth,
    requirePermission('users:manage'),
    requireStepUp,
    validate({ params: userParams }),
    async function resetUserTotp(req: Request, res: Response) {
      if (!(await mfa.remove(authOf(req), validParams<{ userId: string }>(req).userId.toLowerCase(), actorOf(req))))
        throw notFound('TOTP enrollment');
      res.json({ success: true });
    },
  );

  return router;
}
