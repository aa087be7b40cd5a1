import type { NextFunction, Request, RequestHandler, Response } from 'express';
import {
  rateLimit,
  ipKeyGenerator,
  type Store,
  type Options,
  type IncrementResponse,
  type ClientRateLimitInfo,
} from 'express-rate-limit';
import { rateLimited, serviceUnavailable } from '../lib/errors';

export interface LimiterOptions {
  windowMs: number;
  max: number;
  /** Key for a request; null/undefined skips the limiter for it. Default: client IP (IPv6 by /56). */
  key?: (req: Request) => string | null | undefined;
  /** Store prefix, so several limiters can share one store (Redis). */
  prefix: string;
  /** A new store per limiter (express-rate-limit refuses a shared instance); in-process memory when absent. */
  makeStore?: (prefix: string) => Store;
  message?: string;
}

/**
 * Wraps a store so a store failure fails closed as 503 (never lets traffic through
 * unlimited, never a 500 with internals).
 */
class FailClosedStore implements Store {
  prefix?: string;
  localKeys?: boolean;
  constructor(private readonly inner: Store) {
    this.prefix = inner.prefix;
    this.localKeys = inner.localKeys;
  }
  init(options: Options): void {
    this.inner.init?.(options);
  }
  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    return this.inner.get?.(key);
  }
  async increment(key: string): Promise<IncrementResponse> {
    try {
      return await this.inner.increment(key);
    } catch (err) {
      throw serviceUnavailable(
        'Rate limiting is temporarily unavailable; try again later.',
        `rate-limit store: ${(err as Error).message}`,
      );
    }
  }
  async decrement(key: string): Promise<void> {
    await Promise.resolve(this.inner.decrement(key)).catch(() => undefined);
  }
  async resetKey(key: string): Promise<void> {
    await this.inner.resetKey(key);
  }
  async resetAll(): Promise<void> {
    await this.inner.resetAll?.();
  }
  shutdown(): Promise<void> | void {
    return this.inner.shutdown?.();
  }
}

/** The client key: IP (IPv6 grouped by /56), from the request context when present. */
function ipKey(req: Request): string {
  const ip = req.ctx?.ip ?? req.ip ?? 'unknown';
  // An IPv4 address is its own key; only IPv6 addresses are grouped (by /56).
  return ip.includes(':') ? ipKeyGenerator(ip, 56) : ip;
}

/**
 * The in-process limiter (no REDIS_URL): fixed windows aligned to the clock, one counter per
 * key, synchronous, no per-request allocation beyond the first hit of a key in a window. The
 * whole table is dropped when the window rolls over, so it never holds more than one window
 * of keys. Headers follow IETF draft-7 (RateLimit, RateLimit-Policy), like the Redis path.
 */
function memoryLimiter(opts: LimiterOptions, key: (req: Request) => string | null | undefined): RequestHandler {
  const { windowMs, max } = opts;
  const policy = `${max};w=${Math.ceil(windowMs / 1000)}`;
  let windowStart = 0;
  let counts = new Map<string, number>();
  return function rateLimitMiddleware(req: Request, res: Response, next: NextFunction): void {
    const k = key(req);
    if (k === null || k === undefined) {
      next();
      return;
    }
    const now = Date.now();
    if (now - windowStart >= windowMs) {
      windowStart = now - (now % windowMs);
      counts = new Map();
    }
    const used = (counts.get(k) ?? 0) + 1;
    counts.set(k, used);
    const reset = Math.max(1, Math.ceil((windowStart + windowMs - now) / 1000));
    if (!res.headersSent) {
      res.setHeader('RateLimit-Policy', policy);
      res.setHeader('RateLimit', `limit=${max}, remaining=${Math.max(0, max - used)}, reset=${reset}`);
    }
    if (used > max) {
      next(rateLimited(reset, opts.message));
      return;
    }
    next();
  };
}

export function createRateLimiter(opts: LimiterOptions): RequestHandler {
  const key = opts.key ?? ipKey;
  if (!opts.makeStore) return memoryLimiter(opts, key);
  // Shared store (Redis): express-rate-limit with rate-limit-redis, failing closed.
  const limiter = rateLimit({
    windowMs: opts.windowMs,
    limit: opts.max,
    // draft-7 headers: draft-8 adds a SHA-256 partition key per response.
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    identifier: opts.prefix,
    store: new FailClosedStore(opts.makeStore(`${opts.prefix}:`)),
    passOnStoreError: false,
    skip: (req) => {
      const k = key(req);
      return k === null || k === undefined;
    },
    keyGenerator: (req) => `${opts.prefix}:${key(req) as string}`,
    handler: (req: Request, _res: Response, next: NextFunction) => {
      const reset = (req as Request & { rateLimit?: { resetTime?: Date } }).rateLimit?.resetTime?.getTime();
      const seconds = reset ? Math.max(1, Math.ceil((reset - Date.now()) / 1000)) : Math.ceil(opts.windowMs / 1000);
      next(rateLimited(seconds, opts.message));
    },
    // Validation warnings of express-rate-limit go to its own console; ours are checked at start-up.
    validate: {
      trustProxy: false,
      xForwardedForHeader: false,
      ip: false,
      default: true,
      keyGeneratorIpFallback: false,
    },
  });
  return function rateLimitMiddleware(req: Request, res: Response, next: NextFunction): void {
    Promise.resolve(limiter(req, res, next)).catch(next);
  };
}
