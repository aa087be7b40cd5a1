import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { createAccessLogWriter, type AccessLogWriter, type Logger } from '../lib/logger';
import type { RequestContext as Ctx } from '../types/express';

const SANE_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Any character outside ASCII. */
const NON_ASCII = /[\u0080-\uffff]/;

/** Request id (echo a sane incoming X-Request-Id, else a new UUID), client IP, user agent, child logger, access log line. */
export interface RequestContextOptions {
  logger: Logger;
  /** Access log line per request (default true: a writer of its own), or the writer to use. */
  accessLog?: boolean | AccessLogWriter | null;
  /** Headers set on every response (precomputed security headers). */
  headers?: ReadonlyArray<readonly [string, string]>;
  /** Called once per finished response with its duration (metrics). */
  onFinish?: (req: Request, res: Response, seconds: number) => void;
  /**
   * The app's TRUST_PROXY setting. When false the client is the socket's peer and Express's
   * proxy-address walk is skipped; otherwise (or when not given) req.ip applies the trust rules.
   */
  trustProxy?: boolean | number | string;
}

/**
 * The per-request context. A class rather than an object literal with a getter: every
 * request gets the same hidden class and the child logger getter lives on the prototype.
 */
class RequestContext implements Ctx {
  private child: Logger | undefined;
  constructor(
    readonly requestId: string,
    readonly ip: string | null,
    readonly userAgent: string | null,
    readonly startedAt: bigint,
    private readonly root: Logger,
  ) {}
  /** The child logger is made on first use: most requests never log beyond the access line. */
  get log(): Logger {
    this.child ??= this.root.child({ requestId: this.requestId });
    return this.child;
  }
}

/**
 * One layer for what every request needs: request id, client IP, user agent, lazy child
 * logger, response headers, and a single 'finish' listener for the access line and metrics.
 */
export function requestContext(opts: RequestContextOptions): RequestHandler {
  const { logger, onFinish } = opts;
  const headers = opts.headers ?? [];
  const writeAccess =
    typeof opts.accessLog === 'function'
      ? opts.accessLog
      : opts.accessLog === false || opts.accessLog === null
        ? null
        : createAccessLogWriter(logger);
  const untrusted = opts.trustProxy === false;
  const clientIp: (req: Request) => string | null = untrusted
    ? (req) => req.socket.remoteAddress ?? null
    : (req) => req.ip ?? null;
  // Behind a load balancer without TRUST_PROXY every client has the balancer's address: one
  // rate-limit and lockout bucket for everybody. Said once per process, at the first such request.
  let forwardedWarned = false;
  /**
   * Node reads header bytes as latin1: a User-Agent sent as UTF-8 (non-ASCII product names)
   * would be stored garbled in audit rows. Bytes that form valid UTF-8 are read as UTF-8;
   * anything else stays as Node read it. ASCII (nearly every request) is returned unchanged.
   */
  function userAgentText(ua: string): string {
    if (!NON_ASCII.test(ua)) return ua;
    const bytes = Buffer.from(ua, 'latin1');
    return isUtf8(bytes) ? bytes.toString('utf8') : ua;
  }
  return function requestContextMiddleware(req: Request, res: Response, next: NextFunction): void {
    const incoming = req.headers['x-request-id'];
    const requestId = typeof incoming === 'string' && SANE_ID.test(incoming) ? incoming : randomUUID();
    const ua = req.headers['user-agent'];
    if (untrusted && !forwardedWarned && req.headers['x-forwarded-for'] !== undefined) {
      forwardedWarned = true;
      logger.warn(
        'requests arrive with X-Forwarded-For but TRUST_PROXY is not set: every client behind the proxy shares its address for rate limits and the login lockout; set TRUST_PROXY to the number of proxy hops or their addresses',
        { peer: req.socket.remoteAddress ?? null },
      );
    }
    const ctx = new RequestContext(
      requestId,
      clientIp(req),
      typeof ua === 'string' ? userAgentText(ua).slice(0, 1024) : null,
      process.hrtime.bigint(),
      logger,
    );
    req.ctx = ctx;
    res.setHeader('X-Request-Id', requestId);
    for (const [n, v] of headers) res.setHeader(n, v);
    if (writeAccess || onFinish) {
      res.on('finish', () => {
        const ms = Number(process.hrtime.bigint() - ctx.startedAt) / 1e6;
        onFinish?.(req, res, ms / 1000);
        if (!writeAccess) return;
        const url = req.originalUrl;
        const q = url.indexOf('?');
        writeAccess({
          requestId,
          method: req.method,
          path: (q === -1 ? url : url.slice(0, q)).slice(0, 512),
          status: res.statusCode,
          durationMs: Math.round(ms * 100) / 100,
          ip: ctx.ip,
        });
      });
    }
    next();
  };
}
