import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { createAccessLogWriter, type Logger } from '../lib/logger';

const SANE_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Request id (echo a sane incoming X-Request-Id, else a new UUID), client IP, user agent, child logger, access log line. */
export interface RequestContextOptions {
  logger: Logger;
  /** Access log line per request (default true). */
  accessLog?: boolean;
  /** Headers set on every response (precomputed security headers). */
  headers?: ReadonlyArray<readonly [string, string]>;
  /** Called once per finished response with its duration (metrics). */
  onFinish?: (req: Request, res: Response, seconds: number) => void;
}

/**
 * One layer for what every request needs: request id, client IP, user agent, lazy child
 * logger, response headers, and a single 'finish' listener for the access line and metrics.
 */
export function requestContext(opts: RequestContextOptions): RequestHandler {
  const { logger, onFinish } = opts;
  const headers = opts.headers ?? [];
  const writeAccess = opts.accessLog !== false ? createAccessLogWriter(logger) : null;
  return function requestContextMiddleware(req: Request, res: Response, next: NextFunction): void {
    const incoming = req.headers['x-request-id'];
    const requestId = typeof incoming === 'string' && SANE_ID.test(incoming) ? incoming : randomUUID();
    const ua = req.headers['user-agent'];
    let child: Logger | undefined;
    req.ctx = {
      requestId,
      ip: req.ip ?? null,
      userAgent: typeof ua === 'string' ? ua.slice(0, 1024) : null,
      // The child logger is made on first use: most requests never log beyond the access line.
      get log(): Logger {
        child ??= logger.child({ requestId });
        return child;
      },
      startedAt: process.hrtime.bigint(),
    };
    res.setHeader('X-Request-Id', requestId);
    for (const [n, v] of headers) res.setHeader(n, v);
    if (writeAccess || onFinish) {
      res.on('finish', () => {
        const ms = Number(process.hrtime.bigint() - req.ctx.startedAt) / 1e6;
        onFinish?.(req, res, ms / 1000);
        if (!writeAccess) return;
        const url = req.originalUrl;
        const q = url.indexOf('?');
        writeAccess({ requestId, method: req.method, path: (q === -1 ? url : url.slice(0, q)).slice(0, 512), status: res.statusCode, durationMs: Math.round(ms * 100) / 100, ip: req.ctx.ip });
      });
    }
    next();
  };
}
