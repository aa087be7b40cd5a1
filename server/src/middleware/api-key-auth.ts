/**
 * requireAuthOrApiKey: routes a service may call (CONTRACT §11) accept either a user's Bearer
 * access token (requireAuth) or `Authorization: Bearer fsk_…`, a service API key. A key
 * authenticates as itself: req.auth carries `apiKeyId` and `scopes` (permissions come from the
 * scopes through the one matrix in rbac.ts), its tenant is its creator's, each use is audited
 * with the key as actor before the response leaves (key.api.used, or the handler's own row that
 * names the key: see api-key-use.ts), and a per-key rate limit applies. Every failure is the
 * generic 401; the reason goes to auth.apikey.rejected.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Store } from 'express-rate-limit';
import { bearerCredential } from '../lib/bearer';
import { unauthenticated } from '../lib/errors';
import type { AuditService } from '../services/audit/service';
import { UNKNOWN_TENANT } from '../services/audit/catalog';
import type { ApiKeyRow } from '../services/auth/api-key-repository';
import type { ApiKeyService } from '../services/auth/api-keys';
import { trackKeyUse } from './api-key-use';
import { createRateLimiter } from './rate-limit';
import { authenticateAs } from './actor';
import { series } from './series';

const API_KEY_SHAPE = /^fsk_\S{1,200}$/;

/** Whether the request presents an API key (rather than an access token). */
export function presentsApiKey(req: Request): boolean {
  const h = req.headers.authorization;
  return typeof h === 'string' && h.length < 300 && (bearerCredential(h)?.startsWith('fsk_') ?? false);
}

export interface ApiKeyAuthDeps {
  apiKeys: ApiKeyService;
  audit: AuditService;
  requireAuth: RequestHandler[];
  rateLimit: { windowMs: number; userMax: number };
  makeRateLimitStore?: (prefix: string) => Store;
}

export function createApiKeyAuth(deps: ApiKeyAuthDeps): {
  requireApiKey: RequestHandler;
  requireAuthOrApiKey: RequestHandler[];
} {
  const keyLimiter = createRateLimiter({
    windowMs: deps.rateLimit.windowMs,
    max: deps.rateLimit.userMax,
    prefix: 'apikey',
    key: (req) => req.auth?.apiKeyId ?? null,
    makeStore: deps.makeRateLimitStore,
  });

  async function reject(req: Request, reason: string, key: ApiKeyRow | null): Promise<never> {
    await deps.audit.record({
      tenantId: key ? key.tenantId : UNKNOWN_TENANT,
      action: 'auth.apikey.rejected',
      resourceType: 'api_key',
      resourceId: key ? key.id : null,
      apiKeyId: key ? key.id : null,
      result: 'failure',
      severity: 'medium',
      errorMessage: reason,
      ipAddress: req.ctx.ip,
      userAgent: req.ctx.userAgent,
      requestId: req.ctx.requestId,
    });
    throw unauthenticated(reason);
  }

  async function authenticate(req: Request, res: Response): Promise<void> {
    const key = bearerCredential(req.headers.authorization);
    if (key === null || !API_KEY_SHAPE.test(key)) return reject(req, 'malformed API key', null);
    const r = await deps.apiKeys.authenticate(key);
    if (!r.ok) return reject(req, r.reason, r.key);
    const k = r.key;
    const actor = authenticateAs(req, {
      userId: k.id,
      tenantId: k.tenantId,
      email: `api-key:${k.prefix}`,
      role: 'viewer',
      sessionId: k.id,
      displayName: k.name,
      apiKeyId: k.id,
      scopes: Object.freeze([...k.scopes]),
    });
    // Every use is audited with the key as actor, committed before the response is sent (fail
    // closed like every security record); in parallel with the handler (api-key-use.ts).
    const after = { method: req.method, path: (req.originalUrl ?? req.url).split('?')[0]?.slice(0, 200) };
    trackKeyUse(req, res, () =>
      deps.audit.recordAs(actor, {
        action: 'key.api.used',
        resourceType: 'api_key',
        resourceId: k.id,
        severity: 'low',
        after,
      }),
    );
  }

  const requireApiKey = series(function requireApiKey(req: Request, res: Response, next: NextFunction): void {
    authenticate(req, res).then(() => next(), next);
  }, keyLimiter);
  const userChain = deps.requireAuth;
  const userHandler = userChain.length === 1 ? (userChain[0] as RequestHandler) : series(...userChain);
  return {
    requireApiKey,
    requireAuthOrApiKey: [
      function requireAuthOrApiKey(req: Request, res: Response, next: NextFunction) {
        return presentsApiKey(req) ? requireApiKey(req, res, next) : userHandler(req, res, next);
      },
    ],
  };
}
