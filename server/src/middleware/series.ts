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
    new SeriesRun(chain, req, res, next).step();
  };
}

/**
 * One request's walk through a series. A class with one bound step function rather than
 * closures made per request (the dev/test runner names every named closure it creates).
 */
class SeriesRun {
  private i = 0;
  private done = false;
  readonly step: (err?: unknown) => void;
  constructor(
    private readonly chain: RequestHandler[],
    private readonly req: Request,
    private readonly res: Response,
    private readonly next: NextFunction,
  ) {
    this.step = this.advance.bind(this);
  }

  private fail(err: unknown): void {
    if (this.done) return;
    this.done = true;
    this.next(err);
  }

  private advance(err?: unknown): void {
    if (this.done) return;
    if (err !== undefined && err !== null) {
      this.fail(err);
      return;
    }
    const h = this.chain[this.i++];
    if (h === undefined) {
      this.done = true;
      this.next();
      return;
    }
    try {
      const r = h(this.req, this.res, this.step) as unknown;
      if (r !== undefined && r !== null && typeof (r as Promise<unknown>).then === 'function') {
        (r as Promise<unknown>).then(undefined, (e: unknown) => this.fail(e ?? new Error('Rejected promise')));
      }
    } catch (e) {
      this.fail(e);
    }
  }
}
