import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { bearerCredential } from '../lib/bearer';
import { unauthenticated } from '../lib/errors';
import type { FailureAggregator } from '../services/audit/failure-aggregator';
import type { AuditService } from '../services/audit/service';
import { UNKNOWN_TENANT } from '../services/audit/catalog';
import type { SessionService } from '../services/auth/sessions';
import type { AccessClaims, TokenService } from '../services/auth/tokens';
import { createRateLimiter } from './rate-limit';
import { authenticateAs } from './actor';
import { series } from './series';
import type { Store } from 'express-rate-limit';

export interface AuthMiddlewareDeps {
  tokens: TokenService;
  sessions: SessionService;
  /** Writes auth.token.rejected / session.expired rows; without it rejections are only logged. */
  audit?: AuditService;
  /** Aggregates repeated forged/malformed-token rejections (no verified claims) from one source. */
  failures?: FailureAggregator;
  rateLimit: { windowMs: number; userMax: number };
  makeRateLimitStore?: (prefix: string) => Store;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * requireAuth: a valid Bearer access token AND a live session (not revoked, not idle or past
 * its absolute timeout, user active). The role comes from the database on every request,
 * so demotion, deactivation and logout apply on the very next request. Then a per-user
 * rate limit. Every failure is the same 401; the reason goes to the log, and to the audit
 * trail when it signals misuse:
 * - forged or malformed tokens (bad signature, algorithm, key id, claims) → auth.token.rejected
 *   under the tenant '_unknown' (nothing in such a token can be trusted);
 * - a genuine token of a revoked session, a deactivated user or an unknown session →
 *   auth.token.rejected under the token's tenant and user;
 * - a session timing out → session.expired, once (the session is then marked revoked);
 * - an access token past its `exp`, or a session that already expired → log only
 *   (normal client behaviour: refresh or log in again).
 */
export function createRequireAuth(deps: AuthMiddlewareDeps): RequestHandler[] {
  const userLimiter = createRateLimiter({
    windowMs: deps.rateLimit.windowMs,
    max: deps.rateLimit.userMax,
    prefix: 'user',
    key: (req) => (req.auth ? `${req.auth.tenantId}:${req.auth.userId}` : null),
    makeStore: deps.makeRateLimitStore,
  });

  async function rejectToken(req: Request, reason: string, claims: AccessClaims | null): Promise<never> {
    if (deps.audit) {
      const sink = claims === null && deps.failures ? deps.failures : deps.audit;
      await sink.record({
        tenantId: claims ? claims.tid : UNKNOWN_TENANT,
        userId: claims ? claims.sub : null,
        action: 'auth.token.rejected',
        resourceType: 'access_token',
        resourceId: claims ? claims.sid : null,
        result: 'failure',
        severity: 'medium',
        errorMessage: reason.slice(0, 500),
        ipAddress: req.ctx.ip,
        userAgent: req.ctx.userAgent,
        requestId: req.ctx.requestId,
      });
    }
    throw unauthenticated(reason);
  }

  async function authenticate(req: Request): Promise<void> {
    const header = req.headers.authorization;
    const token = bearerCredential(header);
    if (token === null || !JWT_SHAPE.test(token))
      throw unauthenticated(header ? 'malformed Authorization header' : 'no Authorization header');
    const v = deps.tokens.verify(token);
    if (!v.claims) {
      if (v.expired) throw unauthenticated(v.reason);
      return rejectToken(req, v.reason, null);
    }
    const s = await deps.sessions.authenticate(v.claims);
    if (s.auth) {
      // A step-up token (POST /mfa/step-up) carries when the step-up happened.
      authenticateAs(req, v.claims.authTime !== undefined ? { ...s.auth, stepUpAt: v.claims.authTime } : s.auth);
      return;
    }
    switch (s.kind) {
      case 'expired':
        throw unauthenticated(s.reason);
      case 'idle':
      case 'absolute':
        if (deps.audit) {
          await deps.sessions.expire({
            sessionId: v.claims.sid,
            tenantId: v.claims.tid,
            userId: v.claims.sub,
            kind: s.kind,
            ip: req.ctx.ip,
            userAgent: req.ctx.userAgent,
            requestId: req.ctx.requestId,
          });
        }
        throw unauthenticated(s.reason);
      default:
        return rejectToken(req, s.reason, v.claims);
    }
  }
  // One router layer for the session check and the per-user limit (see series()).
  return [
    series(function requireAuth(req: Request, _res: Response, next: NextFunction): void {
      authenticate(req).then(() => next(), next);
    }, userLimiter),
  ];
}
