/**
 * requireStepUp (CONTRACT §11): routes marked *step-up* (master-key rotation, API key
 * creation, role changes through the API, TOTP removal) need an access token minted by
 * POST /mfa/step-up less than 10 minutes ago — once the user has TOTP, and always for admins
 * when MFA_REQUIRED_FOR_ADMINS=true. Otherwise 403 STEP_UP_REQUIRED with how to get one;
 * the refusal is audited (access.step_up_required).
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Clock } from '../lib/clock';
import { AppError, unauthenticated } from '../lib/errors';
import type { AuditService } from '../services/audit/service';
import { actorOf } from './actor';
import { STEP_UP_MAX_AGE_MS, type MfaService } from '../services/auth/mfa';

const STEP_UP_HOW =
  'POST /api/v1/security/mfa/step-up with { "code": "<TOTP code>" } and repeat this request with the token it returns (valid for step-up for 10 minutes)';
const ENROLL_HOW =
  'enroll TOTP first: POST /api/v1/security/mfa/totp/enroll (add the otpauthUri to an authenticator app), POST /api/v1/security/mfa/totp/activate with { "code" }, then POST /api/v1/security/mfa/step-up with { "code" } and repeat this request with the token it returns';

export function createRequireStepUp(deps: {
  mfa: MfaService;
  audit: AuditService;
  clock: Clock;
  mfaRequiredForAdmins: boolean;
}): RequestHandler {
  async function check(req: Request): Promise<void> {
    const auth = req.auth;
    if (!auth) throw unauthenticated('step-up check without authentication');
    if (auth.apiKeyId !== undefined)
      throw new AppError('FORBIDDEN', 403, 'API keys cannot perform this action.', {
        internalReason: 'API key on a step-up route',
      });
    const fresh = auth.stepUpAt !== undefined && deps.clock.now() - auth.stepUpAt * 1000 < STEP_UP_MAX_AGE_MS;
    if (fresh) return;
    const hasTotp = await deps.mfa.hasActiveTotp(auth.userId, auth.tenantId);
    const required = hasTotp || (deps.mfaRequiredForAdmins && auth.role === 'admin');
    if (!required) return;
    const message = hasTotp
      ? `This action needs a recent step-up: ${STEP_UP_HOW}.`
      : `This action needs a step-up with TOTP, which is required for admins: ${ENROLL_HOW}.`;
    await deps.audit.recordAs(actorOf(req), {
      action: 'access.step_up_required',
      resourceType: 'route',
      resourceId: `${req.method} ${req.baseUrl}${req.route?.path ?? req.path}`.slice(0, 256),
      result: 'denied',
      severity: 'medium',
      errorMessage:
        auth.stepUpAt !== undefined
          ? 'step-up older than 10 minutes'
          : hasTotp
            ? 'no step-up in this token'
            : 'admin without TOTP (MFA_REQUIRED_FOR_ADMINS)',
    });
    throw new AppError('STEP_UP_REQUIRED', 403, message, { internalReason: 'step-up required' });
  }
  return function requireStepUp(req: Request, _res: Response, next: NextFunction): void {
    check(req).then(() => next(), next);
  };
}
