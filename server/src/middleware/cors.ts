import cors from 'cors';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { forbidden, notFound } from '../lib/errors';

/** CORS allow-list. A preflight from an origin not on the list is refused (403); other requests get no CORS headers. */
export function corsPolicy(origins: readonly string[]): RequestHandler[] {
  const allowed = new Set(origins);
  const c = cors({
    origin: (origin, cb) => cb(null, origin !== undefined && allowed.has(origin)),
    credentials: true,
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: ['Content-Type', 'Authorization', 'X-CSRF-Token', 'X-Request-Id', 'Idempotency-Key'],
    exposedHeaders: ['X-Request-Id', 'Retry-After', 'RateLimit', 'RateLimit-Policy', 'Idempotent-Replayed'],
    maxAge: 600,
  });
  return [
    function corsAllowList(req: Request, res: Response, next: NextFunction): void {
      const origin = req.headers.origin;
      // No Origin header: not a cross-origin browser request, nothing to add (most API traffic).
      if (origin === undefined) {
        // OPTIONS without Origin is not a preflight; like any method a route lacks, it is a
        // JSON 404 (not the router's automatic plain-text Allow answer).
        next(req.method === 'OPTIONS' ? notFound('Route') : undefined);
        return;
      }
      if (req.method === 'OPTIONS' && !allowed.has(origin)) {
        next(forbidden('origin not allowed by CORS_ORIGINS'));
        return;
      }
      c(req, res, next);
    },
  ];
}
