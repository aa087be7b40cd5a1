import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { unauthenticated } from '../lib/errors';
import type { SessionService } from '../services/auth/sessions';
import type { TokenService } from '../services/auth/tokens';
import { createRateLimiter } from './rate-limit';
import type { Store } from 'express-rate-limit';

export interface AuthMiddlewareDeps {
  tokens: TokenService;
  sessions: SessionService;
  rateLimit: { windowMs: number; userMax: number };
  makeRateLimitStore?: (prefix: string) => Store;
}

const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/;

/**
 * requireAuth: a valid Bearer access token AND a live session (not revoked, not idle or past
 * its absolute timeout, user active). The role comes from the database on every request,
 * so demotion, deactivation and logout apply on the very next request. Then a per-user
 * rate limit. Every failure is the same 401; the reason goes to the log.
 */
export function createRequireAuth(deps: AuthMiddlewareDeps): RequestHandler[] {
  const userLimiter = createRateLimiter({
    windowMs: deps.rateLimit.windowMs,
    max: deps.rateLimit.userMax,
    prefix: 'user',
    key: (req) => (req.auth ? `${req.auth.tenantId}:${req.auth.userId}` : null),
    makeStore: deps.makeRateLimitStore,
  });
  async function authenticate(req: Request): Promise<void> {
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? BEARER.exec(header) : null;
    if (!m) throw unauthenticated(header ? 'malformed Authorization header' : 'no Authorization header');
    const v = deps.tokens.verify(m[1] as string);
    if (!v.claims) throw unauthenticated(v.reason);
    const s = await deps.sessions.authenticate(v.claims);
    if (!s.auth) throw unauthenticated(s.reason);
    req.auth = s.auth;
  }
  return [
    function requireAuth(req: Request, _res: Response, next: NextFunction): void {
      authenticate(req).then(() => next(), next);
    },
    userLimiter,
  ];
}
