import { isUtf8 } from 'node:buffer';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { unsupportedMediaType, validationFailed, type ErrorDetail } from '../lib/errors';

const JSON_TYPE = /^application\/(?:[a-z0-9.+-]+\+)?json\s*(?:;|$)/i;

function hasBody(req: Request): boolean {
  const len = req.headers['content-length'];
  if (len !== undefined) return len !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

class Utf8Error extends Error {
  readonly type = 'entity.verify.failed';
  readonly status = 400;
  readonly expose = true;
}

/** Finds strings PostgreSQL cannot store or that would be silently altered: NUL characters and lone surrogates. */
function findUnsafeStrings(value: unknown, path: string, out: ErrorDetail[], depth = 0): void {
  if (out.length >= 10) return;
  if (typeof value === 'string') {
    if (value.includes('\u0000')) out.push({ path, message: 'must not contain NUL characters', code: 'nul_character' });
    else if (!value.isWellFormed()) out.push({ path, message: 'must be well-formed Unicode (lone surrogate)', code: 'invalid_unicode' });
    return;
  }
  if (value === null || typeof value !== 'object') return;
  if (depth > 32) {
    out.push({ path, message: 'is nested too deeply', code: 'too_deep' });
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => findUnsafeStrings(v, `${path}[${i}]`, out, depth + 1));
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    const p = path ? `${path}.${k}` : k;
    if (k.includes('\u0000') || !k.isWellFormed()) out.push({ path: p, message: 'key must be well-formed text without NUL', code: 'invalid_key' });
    findUnsafeStrings(v, p, out, depth + 1);
  }
}

/**
 * Body handling: requests with a body must be JSON (415 otherwise), capped in size (413),
 * valid UTF-8 and valid JSON (400 MALFORMED_JSON), and free of NUL characters and lone
 * surrogates (400 VALIDATION_FAILED); the query string likewise.
 */
export function jsonBody(limitBytes: number): RequestHandler[] {
  const parser = express.json({
    limit: limitBytes,
    strict: true,
    type: (req) => JSON_TYPE.test(String((req as Request).headers['content-type'] ?? '')),
    verify: (_req, _res, buf) => {
      if (!isUtf8(buf)) throw new Utf8Error('The request body is not valid UTF-8.');
    },
  });
  function checkQuery(req: Request): ErrorDetail[] {
    const problems: ErrorDetail[] = [];
    if (req.url.includes('?')) findUnsafeStrings(req.query, 'query', problems);
    return problems;
  }
  // One layer: requests without a body (most GETs) cost two header reads.
  return [
    function requestBody(req: Request, res: Response, next: NextFunction): void {
      const queryProblems = checkQuery(req);
      if (queryProblems.length > 0) {
        next(validationFailed(queryProblems));
        return;
      }
      if (!hasBody(req)) {
        next();
        return;
      }
      if (!JSON_TYPE.test(String(req.headers['content-type'] ?? ''))) {
        next(unsupportedMediaType());
        return;
      }
      parser(req, res, (err?: unknown) => {
        if (err) {
          next(err);
          return;
        }
        if (req.body !== undefined && req.body !== null && typeof req.body === 'object') {
          const problems: ErrorDetail[] = [];
          findUnsafeStrings(req.body, '', problems);
          if (problems.length > 0) {
            next(validationFailed(problems));
            return;
          }
        }
        next();
      });
    },
  ];
}
