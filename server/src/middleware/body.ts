import { isUtf8 } from 'node:buffer';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { unsupportedMediaType, validationFailed, type ErrorDetail } from '../lib/errors';

const JSON_TYPE = /^application\/(?:[a-z0-9.+-]+\+)?json\s*(?:;|$)/i;

function hasBody(req: Request): boolean {
  const len = req.headers['content-length'];
  if (len !== undefined) return !/^0+$/.test(len);
  return req.headers['transfer-encoding'] !== undefined;
}

/** A refused body, typed like body-parser's errors so the error handler maps both alike. */
class BodyError extends Error {
  readonly expose = true;
  constructor(
    message: string,
    readonly type: string,
    readonly status = 400,
    readonly limit?: number,
  ) {
    super(message);
  }
}

const notUtf8 = (): BodyError => new BodyError('The request body is not valid UTF-8.', 'entity.verify.failed');
const gone = (): BodyError => new BodyError('request aborted', 'request.aborted');

/** A key as it appears in an error path: long keys are cut (an error never echoes a 90 kB key). */
function keyInPath(k: string): string {
  const safe = k.isWellFormed() ? k : k.toWellFormed();
  return safe.length > 64 ? `${safe.slice(0, 64)}…` : safe;
}

/**
 * Finds values PostgreSQL cannot store or that would be silently altered: NUL characters and
 * lone surrogates in strings and keys, and numbers JSON.parse turned into ±Infinity (1e400),
 * which would be stored as null.
 */
function findUnsafeStrings(value: unknown, path: string, out: ErrorDetail[], depth = 0): void {
  if (out.length >= 10) return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value))
      out.push({ path, message: 'must be a finite number (out of range)', code: 'number_out_of_range' });
    return;
  }
  if (typeof value === 'string') {
    if (value.includes('\u0000')) out.push({ path, message: 'must not contain NUL characters', code: 'nul_character' });
    else if (!value.isWellFormed())
      out.push({ path, message: 'must be well-formed Unicode (lone surrogate)', code: 'invalid_unicode' });
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
    const p = path ? `${path}.${keyInPath(k)}` : keyInPath(k);
    if (k.includes('\u0000') || !k.isWellFormed())
      out.push({ path: p, message: 'key must be well-formed text without NUL', code: 'invalid_key' });
    findUnsafeStrings(v, p, out, depth + 1);
  }
}

/** The error types body-parser sets; anything else it passes on (a zlib failure) is a bad body too. */
const BODY_ERROR_TYPES = new Set([
  'entity.parse.failed',
  'entity.verify.failed',
  'entity.too.large',
  'encoding.unsupported',
  'charset.unsupported',
  'request.aborted',
  'request.size.invalid',
  'stream.encoding.set',
  'parameters.too.many',
]);

function bodyError(err: unknown): unknown {
  const type = (err as { type?: unknown } | null)?.type;
  if (typeof type === 'string' && BODY_ERROR_TYPES.has(type)) return err;
  return new BodyError('The request body could not be decoded.', 'entity.decode.failed');
}

/** A declared Content-Length over the limit: answered at once, without reading the body. */
function declaredTooLarge(req: Request, limitBytes: number): boolean {
  const len = req.headers['content-length'];
  return len !== undefined && DIGITS.test(len) && (len.length > 15 || Number(len) > limitBytes);
}

const DIGITS = /^\d+$/;
const UTF8_CHARSET = /;\s*charset\s*=\s*"?utf-8"?\s*(?:;|$)/i;

/**
 * The common case read directly: a Content-Length within the limit, no Content-Encoding or
 * Transfer-Encoding, no charset other than UTF-8. Anything else (compressed, chunked, too
 * large, another charset) goes to body-parser, which answers those cases.
 */
function plainBodyLength(req: Request, limitBytes: number): number | null {
  const h = req.headers;
  if (h['transfer-encoding'] !== undefined) return null;
  const enc = h['content-encoding'];
  if (enc !== undefined && enc.trim().toLowerCase() !== 'identity') return null;
  const type = String(h['content-type'] ?? '');
  if (type.includes(';') && /;\s*charset\s*=/i.test(type) && !UTF8_CHARSET.test(type)) return null;
  const len = h['content-length'];
  if (len === undefined || !DIGITS.test(len) || len.length > 15) return null;
  const n = Number(len);
  return n <= limitBytes ? n : null;
}

/**
 * Reads a body of a known length (Node's parser delivers exactly Content-Length bytes) and
 * parses it as body-parser's strict JSON mode would: valid UTF-8, an object or array at the
 * top level; the same error types, so the error handler answers identically.
 */
function readPlainJson(req: Request, length: number, done: (err: unknown, body?: unknown) => void): void {
  const chunks: Buffer[] = [];
  let received = 0;
  let finished = false;
  const finish = (err: unknown, body?: unknown): void => {
    if (finished) return;
    finished = true;
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onGone);
    req.off('aborted', onGone);
    req.off('close', onGone);
    done(err, body);
  };
  function onData(chunk: Buffer): void {
    received += chunk.length;
    if (received > length) finish(new BodyError('request size did not match content length', 'request.size.invalid'));
    else chunks.push(chunk);
  }
  function onEnd(): void {
    if (received !== length) {
      finish(new BodyError('request size did not match content length', 'request.size.invalid'));
      return;
    }
    const buf = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, received);
    if (!isUtf8(buf)) {
      finish(notUtf8());
      return;
    }
    // A leading byte order mark is dropped, as body-parser does.
    const text = buf.toString('utf8', buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0);
    // strict: the first non-blank character opens an object or an array (body-parser's rule).
    let i = 0;
    while (
      i < text.length &&
      (text.charCodeAt(i) === 0x20 ||
        text.charCodeAt(i) === 0x09 ||
        text.charCodeAt(i) === 0x0a ||
        text.charCodeAt(i) === 0x0d)
    )
      i += 1;
    const first = text[i];
    if (first !== '{' && first !== '[') {
      finish(new BodyError('Unexpected token in JSON body', 'entity.parse.failed'));
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      finish(new BodyError('Unexpected token in JSON body', 'entity.parse.failed'));
      return;
    }
    finish(null, body);
  }
  // An error, an abort, or 'close' before 'end': the client went away mid-body.
  function onGone(): void {
    finish(gone());
  }
  // The client may already be gone (an earlier layer was waiting on a shared store).
  if (req.destroyed) {
    finish(gone());
    return;
  }
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onGone);
  req.on('aborted', onGone);
  req.on('close', onGone);
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
      if (!isUtf8(buf)) throw notUtf8();
    },
  });
  function checkQuery(req: Request): ErrorDetail[] {
    const problems: ErrorDetail[] = [];
    const q = req.url.indexOf('?');
    if (q === -1) return problems;
    // The query parser decodes leniently (%zz, %FF or an encoded surrogate pass as text);
    // every name and value must be valid percent-encoded UTF-8, as path parameters must.
    for (const part of req.url.slice(q + 1).split(/[&=]/)) {
      if (!part.includes('%')) continue;
      try {
        decodeURIComponent(part);
      } catch {
        problems.push({
          path: 'query',
          message: 'malformed percent-encoding (must be UTF-8)',
          code: 'invalid_encoding',
        });
        return problems;
      }
    }
    findUnsafeStrings(req.query, 'query', problems);
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
      const contentType = String(req.headers['content-type'] ?? '');
      if (!JSON_TYPE.test(contentType) || (/;\s*charset\s*=/i.test(contentType) && !UTF8_CHARSET.test(contentType))) {
        // Not JSON, or JSON in a charset other than UTF-8 (utf-16 and latin1 alike).
        next(unsupportedMediaType());
        return;
      }
      if (declaredTooLarge(req, limitBytes)) {
        // The body is never read, so the connection cannot be reused: close it after the 413
        // instead of waiting for (up to) the whole declared body to arrive.
        res.setHeader('Connection', 'close');
        next(new BodyError('request entity too large', 'entity.too.large', 413, limitBytes));
        return;
      }
      const parsed = (err?: unknown): void => {
        if (err) {
          next(bodyError(err));
          return;
        }
        if (req.body !== undefined && req.body !== null && typeof req.body === 'object') {
          const problems: ErrorDetail[] = [];
          findUnsafeStrings(req.body, 'body', problems);
          if (problems.length > 0) {
            next(validationFailed(problems));
            return;
          }
        }
        next();
      };
      const length = plainBodyLength(req, limitBytes);
      if (length === null) {
        parser(req, res, parsed);
        return;
      }
      readPlainJson(req, length, (err, body) => {
        if (!err) req.body = body;
        parsed(err);
      });
    },
  ];
}
