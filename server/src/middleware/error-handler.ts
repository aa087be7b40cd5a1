import type { ErrorRequestHandler, NextFunction, Request, Response } from 'express';
import { ZodError } from 'zod';
import { isDatabaseUnavailable } from '../db/pool';
import {
  AppError,
  DomainError,
  errorEnvelope,
  internalError,
  malformedJson,
  notFound,
  payloadTooLarge,
  unsupportedMediaType,
  validationFailed,
  csrfFailed,
  HTTP_STATUS,
  type ErrorBody,
  type ErrorCode,
  type ErrorDetail,
} from '../lib/errors';

export { HTTP_STATUS, type ErrorBody };

/** Headers a code always carries (RFC 6750 §3 for 401). */
const CODE_HEADERS: Partial<Record<ErrorCode, Record<string, string>>> = {
  UNAUTHENTICATED: { 'WWW-Authenticate': 'Bearer realm="fleet-security", error="invalid_token"' },
};

/** A domain error as the HTTP layer answers it: status from HTTP_STATUS, Retry-After from retryAfterSeconds. */
function fromDomainError(err: DomainError): AppError {
  const headers: Record<string, string> = { ...CODE_HEADERS[err.code] };
  if (err.retryAfterSeconds !== undefined) headers['Retry-After'] = String(err.retryAfterSeconds);
  return new AppError(err.code, HTTP_STATUS[err.code], err.message, {
    details: err.details,
    headers,
    internalReason: err.internalReason,
    cause: err.cause,
  });
}

export function zodDetails(err: ZodError): ErrorDetail[] {
  return err.issues.slice(0, 50).map((i) => ({
    path: i.path.map(String).join('.') || '(root)',
    message: i.message,
    code: i.code,
  }));
}

function formatLimit(bytes: number | undefined): string {
  return bytes ? `${Math.round(bytes / 1024)} kB` : 'size';
}

/** Maps anything thrown to an AppError; null means "unknown" (500). */
export function toAppError(err: unknown): AppError | null {
  if (err instanceof AppError) return err;
  if (err instanceof DomainError) return fromDomainError(err);
  if (err instanceof ZodError) return fromDomainError(validationFailed(zodDetails(err)));
  const e = err as { type?: string; status?: number; statusCode?: number; code?: string; limit?: number };
  switch (e?.type) {
    case 'entity.parse.failed':
      return malformedJson();
    case 'entity.verify.failed':
      return new AppError('MALFORMED_JSON', 400, 'The request body is not valid UTF-8.');
    case 'entity.decode.failed':
      return new AppError('MALFORMED_JSON', 400, 'The request body could not be decoded (Content-Encoding).');
    case 'entity.too.large':
      return payloadTooLarge(formatLimit(e.limit));
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return unsupportedMediaType();
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return new AppError('VALIDATION_FAILED', 400, 'The request body could not be read.');
    case 'parameters.too.many':
      return payloadTooLarge('parameter');
    default:
      break;
  }
  if (e?.code === 'EBADCSRFTOKEN') return csrfFailed();
  if (isDatabaseUnavailable(err)) {
    const reason = `database unavailable: ${String((err as Error).message ?? '').slice(0, 200)}`;
    return new AppError('SERVICE_UNAVAILABLE', 503, 'The service is temporarily unavailable; try again later.', {
      internalReason: reason,
      headers: { 'Retry-After': '5' },
    });
  }
  // URIError from malformed percent-encoding in a path parameter.
  if (err instanceof URIError)
    return fromDomainError(
      validationFailed([
        { path: 'params', message: 'malformed percent-encoding (must be UTF-8)', code: 'invalid_encoding' },
      ]),
    );
  return null;
}

export function errorBody(req: Request, err: AppError): ErrorBody {
  return errorEnvelope(req.ctx?.requestId ?? 'unknown', err);
}

function sendError(req: Request, res: Response, err: AppError): void {
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res.status(err.status).json(errorBody(req, err));
}

export function notFoundHandler(_req: Request, _res: Response, next: NextFunction): void {
  next(notFound('Route'));
}

/** The one error handler: the contract's error shape, never a stack trace, SQL text or secret. */
export function errorHandler(): ErrorRequestHandler {
  return function handleError(err: unknown, req: Request, res: Response, next: NextFunction): void {
    if (res.headersSent) {
      next(err);
      return;
    }
    const log = req.ctx?.log;
    let appErr = toAppError(err);
    if (!appErr) {
      log?.error('unhandled error', {
        err: { name: (err as Error)?.name, message: (err as Error)?.message, stack: (err as Error)?.stack },
      });
      appErr = internalError();
    } else if (appErr.status === 503) {
      // A dependency is down or not configured: the operator's concern, said once per request.
      log?.warn('request refused: dependency unavailable', {
        code: appErr.code,
        reason: appErr.internalReason ?? appErr.message,
      });
    } else if (appErr.status >= 500) {
      log?.error('request failed', {
        code: appErr.code,
        reason: appErr.internalReason,
        cause: (appErr.cause as Error | undefined)?.message,
      });
    } else if (appErr.internalReason) {
      log?.warn('request refused', { code: appErr.code, reason: appErr.internalReason });
    }
    sendError(req, res, appErr);
  };
}
