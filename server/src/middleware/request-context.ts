import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { createAccessLogWriter, type Logger } from '../lib/logger';

const SANE_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Request id (echo a sane incoming X-Request-Id, else a new UUID), client IP, user agent, child logger, access log line. */
export function requestContext(opts: { logger: Logger; accessLog?: boolean }): RequestHandler {
  const { logger } = opts;
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
    if (writeAccess) {
      res.on('finish', () => {
        const ms = Number(process.hrtime.bigint() - req.ctx.startedAt) / 1e6;
        const url = req.originalUrl;
        const q = url.indexOf('?');
        writeAccess({ requestId, method: req.method, path: (q === -1 ? url : url.slice(0, q)).slice(0, 512), status: res.statusCode, durationMs: Math.round(ms * 100) / 100, ip: req.ctx.ip });
      });
    }
    next();
  };
}
