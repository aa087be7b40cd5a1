/**
 * The per-use audit of a service API key (CONTRACT §11: every use is audited with the key id as
 * actor), written once per request and always committed before the response leaves.
 *
 * - By default the `key.api.used` row is written as soon as the key is accepted, in parallel
 *   with the handler, and the response waits for its commit (res.end is held until then).
 * - A route whose handler itself records an audit row attributed to the key (POST /audit/log:
 *   `api_key_id` = the key, `user_id` NULL) mounts `handlerAuditsKeyUse` before the guard and
 *   calls `keyUseAudited(req)` once that row is committed. The separate row is then redundant
 *   and is not written. Any response without such a row (validation errors, a missing scope,
 *   429, an idempotent replay, a row written inside a transaction that may still roll back, a
 *   500) writes `key.api.used` before it is sent, exactly as the default does.
 * - If the use cannot be recorded, the prepared response is replaced by the error answer (fail
 *   closed): 503 with Retry-After when the database is unavailable, else 500.
 * - A connection closed before any response still gets its row (nothing to hold back then).
 * The routes that accept keys answer with one res.end (res.json/send); none streams with
 * res.write, which would send headers before the hold.
 */
import type { NextFunction, Request, Response } from 'express';
import { internalError } from '../lib/errors';
import { errorBody, toAppError } from './error-handler';

interface KeyUse {
  /** The key.api.used insert, once started. */
  write: Promise<unknown> | null;
  /** The handler's own committed row names the key: no separate row. */
  covered: boolean;
}

const handlerAudits = new WeakSet<Request>();
const uses = new WeakMap<Request, KeyUse>();

/** Route middleware, before the API-key guard: this route's handler records a row attributed to the key. */
export function handlerAuditsKeyUse(req: Request, _res: Response, next: NextFunction): void {
  handlerAudits.add(req);
  next();
}

/**
 * Called by such a handler after its key-attributed audit row is committed (not for a row
 * written through a caller's transaction that has not committed yet). Returns whether the
 * request's use is now covered (false when the key.api.used row was already started).
 */
export function keyUseAudited(req: Request): boolean {
  const u = uses.get(req);
  if (!u || u.write) return false;
  u.covered = true;
  return true;
}

/** Whether the request's key use is (or is being) recorded: for tests and assertions. */
export function keyUseState(req: Request): 'none' | 'row' | 'covered' | 'pending' {
  const u = uses.get(req);
  if (!u) return 'none';
  return u.covered ? 'covered' : u.write ? 'row' : 'pending';
}

type EndArgs = Parameters<Response['end']>;

/**
 * Starts tracking the key use of an accepted request. `write` records key.api.used (committed
 * when it resolves). Installs the hold on res.end described above.
 */
export function trackKeyUse(req: Request, res: Response, write: () => Promise<unknown>): void {
  const u: KeyUse = { write: null, covered: false };
  uses.set(req, u);
  const start = (): Promise<unknown> => {
    if (!u.write) {
      u.write = write();
      u.write.catch(() => undefined); // awaited by end(); never an unhandled rejection
    }
    return u.write;
  };
  if (!handlerAudits.has(req)) start();

  const end = res.end;
  let held = false;
  res.end = function endAfterKeyUse(this: Response, ...args: EndArgs): Response {
    if (u.covered) return end.apply(this, args) as Response;
    if (held) return res; // a second end() while the first waits: the first one's answer goes out
    held = true;
    start().then(
      () => end.apply(res, args),
      (err: unknown) => {
        req.ctx?.log?.error('API key use could not be audited; response withheld', {
          err: { message: (err as Error)?.message, code: (err as { code?: string })?.code },
        });
        if (res.headersSent) {
          res.destroy();
          return;
        }
        for (const h of ['Content-Length', 'Content-Type', 'ETag', 'Content-Encoding']) res.removeHeader(h);
        // As the error handler answers it: 503 + Retry-After when the database is unavailable, else 500.
        const known = toAppError(err);
        const e = known && known.status >= 500 ? known : internalError();
        for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v);
        const body = JSON.stringify(errorBody(req, e));
        res.statusCode = e.status;
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        res.setHeader('Content-Length', Buffer.byteLength(body));
        end.apply(res, [body] as unknown as EndArgs);
      },
    );
    return res;
  } as Response['end'];

  res.once('close', () => {
    // The connection went away before a response was prepared: record the use anyway.
    if (!u.covered && !held && !u.write)
      start().catch((err: unknown) =>
        req.ctx?.log?.error('API key use could not be audited', { err: { message: (err as Error)?.message } }),
      );
  });
}
