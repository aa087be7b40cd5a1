/**
 * The HTTP side of Idempotency-Key (contract §6; services/idempotency/service.ts does the work):
 * a route adds `checkKey` after its authentication and answers through
 * `respond(req, res, route, work)`. Without the header `work(undefined)` runs as before.
 */
import type { NextFunction, Request, Response } from 'express';
import type { Queryable } from '../db/pool';
import { validationFailed } from '../lib/errors';
import { keyProblem, REPLAYED_HEADER, type IdempotencyService, type Outcome } from '../services/idempotency/service';
import { actorOf } from './actor';

export interface IdempotentRoutes {
  /** Middleware: refuses a malformed Idempotency-Key with 400 VALIDATION_FAILED and keeps a valid one for respond(). */
  checkKey(req: Request, res: Response, next: NextFunction): void;
  /** Runs `work` (once per key) and answers with its outcome, or with the kept one. */
  respond(
    req: Request,
    res: Response,
    route: string,
    work: (q: Queryable | undefined) => Promise<Outcome>,
  ): Promise<void>;
}

export function idempotentRoutes(service: IdempotencyService): IdempotentRoutes {
  const keys = new WeakMap<Request, string>();
  return {
    checkKey: function checkIdempotencyKey(req, _res, next) {
      // Node joins repeated unknown headers with ", ": a repeated key contains a space and is refused.
      const raw = req.headers['idempotency-key'];
      const problem = keyProblem(raw);
      if (problem) {
        next(
          validationFailed(
            [{ path: 'headers.idempotency-key', message: problem, code: 'invalid_idempotency_key' }],
            'The Idempotency-Key header is not valid.',
          ),
        );
        return;
      }
      if (typeof raw === 'string') keys.set(req, raw);
      next();
    },

    async respond(req, res, route, work) {
      const key = keys.get(req);
      if (key === undefined) {
        const out = await work(undefined);
        res.status(out.status).json(out.body);
        return;
      }
      const result = await service.run({ actor: actorOf(req), route, key, body: req.body }, work);
      if (result.replayed) res.setHeader(REPLAYED_HEADER, 'true');
      res.status(result.status).json(result.body);
    },
  };
}
