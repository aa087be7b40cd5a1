import type { NextFunction, Request, RequestHandler, Response } from 'express';

type Handler = RequestHandler | RequestHandler[];

/**
 * Runs middleware one after the other inside a single router layer, with Express 5's
 * semantics for each step: `next(err)` (or a throw, or a rejected promise) stops the chain
 * and goes to the error handlers; `next()` moves on. Saves the router's per-layer walk
 * (path match, parameter processing) for the layers every request passes through.
 * `next('route')` and `next('router')` are not supported inside a series.
 */
export function series(...handlers: Handler[]): RequestHandler {
  const chain = handlers.flat();
  if (chain.length === 1) return chain[0] as RequestHandler;
  return function seriesMiddleware(req: Request, res: Response, next: NextFunction): void {
    let i = 0;
    let done = false;
    const fail = (err: unknown): void => {
      if (done) return;
      done = true;
      next(err);
    };
    const step = (err?: unknown): void => {
      if (done) return;
      if (err !== undefined && err !== null) {
        fail(err);
        return;
      }
      const h = chain[i++];
      if (h === undefined) {
        done = true;
        next();
        return;
      }
      try {
        const r = h(req, res, step) as unknown;
        if (r !== undefined && r !== null && typeof (r as Promise<unknown>).then === 'function') {
          (r as Promise<unknown>).then(undefined, (e: unknown) => fail(e ?? new Error('Rejected promise')));
        }
      } catch (e) {
        fail(e);
      }
    };
    step();
  };
}
