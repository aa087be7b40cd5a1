import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { z } from 'zod';
import { validationFailed } from '../lib/errors';
import { zodDetails } from './error-handler';

export interface RequestSchemas {
  body?: z.ZodType;
  query?: z.ZodType;
  params?: z.ZodType;
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Parsed, schema-checked input (set by validate()). */
      valid?: { body?: unknown; query?: unknown; params?: unknown };
    }
  }
}

/** No keys at all: for a route's body or query string that takes none. */
export const EMPTY = z.strictObject({});

/**
 * Validates body/query/params with zod schemas (use z.strictObject so unknown keys are
 * rejected). A request without a body is validated as `{}` so optional-only bodies work.
 * Without a query schema the route takes no query parameters, and any is refused.
 */
export function validate(schemas: RequestSchemas): RequestHandler {
  const all: RequestSchemas = { query: EMPTY, ...schemas };
  return function validateRequest(req: Request, _res: Response, next: NextFunction): void {
    const valid: NonNullable<Request['valid']> = {};
    const details = [];
    for (const part of ['body', 'query', 'params'] as const) {
      const schema = all[part];
      if (!schema) continue;
      // No query string at all: nothing for the no-parameters schema to refuse.
      if (part === 'query' && schema === EMPTY && req.url.indexOf('?') === -1) continue;
      const input = part === 'body' ? (req.body ?? {}) : req[part];
      const r = schema.safeParse(input);
      if (r.success) valid[part] = r.data;
      else
        details.push(
          ...zodDetails(r.error).map((d) => ({ ...d, path: `${part}${d.path === '(root)' ? '' : `.${d.path}`}` })),
        );
    }
    if (details.length > 0) {
      next(validationFailed(details));
      return;
    }
    req.valid = valid;
    next();
  };
}

/** Typed access to what validate() produced. */
export function validBody<T>(req: Request): T {
  return req.valid?.body as T;
}
export function validQuery<T>(req: Request): T {
  return req.valid?.query as T;
}
export function validParams<T>(req: Request): T {
  return req.valid?.params as T;
}

/** For routes without other input: query parameters are refused (400), as unknown body keys are. */
export const rejectQuery: RequestHandler = validate({});
