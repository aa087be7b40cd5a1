/**
 * Typed application errors. One error handler (middleware/error-handler.ts) maps every
 * AppError to the contract's error shape; anything else becomes a 500 with no detail.
 */
export type ErrorCode =
  | 'VALIDATION_FAILED'
  | 'MALFORMED_JSON'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'CSRF_FAILED'
  | 'STEP_UP_REQUIRED'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'RATE_LIMITED'
  | 'INTERNAL_ERROR'
  | 'SERVICE_UNAVAILABLE'
  // Contract §6: the same Idempotency-Key with a different request body.
  | 'IDEMPOTENCY_KEY_REUSED';

export interface ErrorDetail {
  path?: string;
  message: string;
  code?: string;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ErrorDetail[] | undefined;
  /** Extra response headers (e.g. Retry-After, WWW-Authenticate). */
  readonly headers: Record<string, string>;
  /** The reason for logs and audit rows; never sent to the client. */
  readonly internalReason: string | undefined;

  constructor(
    code: ErrorCode,
    status: number,
    message: string,
    opts: { details?: ErrorDetail[]; headers?: Record<string, string>; internalReason?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = status;
    this.details = opts.details;
    this.headers = opts.headers ?? {};
    this.internalReason = opts.internalReason;
  }
}

export const validationFailed = (details: ErrorDetail[], message = 'The request is not valid.'): AppError =>
  new AppError('VALIDATION_FAILED', 400, message, { details });

export const malformedJson = (): AppError => new AppError('MALFORMED_JSON', 400, 'The request body is not valid JSON.');

/** One wording for every authentication failure; the reason goes to logs and audit only. */
export const unauthenticated = (internalReason?: string): AppError =>
  new AppError('UNAUTHENTICATED', 401, 'Authentication required or invalid.', {
    headers: { 'WWW-Authenticate': 'Bearer realm="fleet-security", error="invalid_token"' },
    internalReason,
  });

export const forbidden = (internalReason?: string): AppError =>
  new AppError('FORBIDDEN', 403, 'You do not have permission to perform this action.', { internalReason });

export const csrfFailed = (): AppError => new AppError('CSRF_FAILED', 403, 'Missing or invalid CSRF token.');

export const notFound = (what = 'Resource'): AppError => new AppError('NOT_FOUND', 404, `${what} not found.`);

export const conflict = (message: string): AppError => new AppError('CONFLICT', 409, message);

export const payloadTooLarge = (limit: string): AppError =>
  new AppError('PAYLOAD_TOO_LARGE', 413, `The request body exceeds the ${limit} limit.`);

export const unsupportedMediaType = (): AppError =>
  new AppError('UNSUPPORTED_MEDIA_TYPE', 415, 'Request bodies must be sent as application/json.');

export const rateLimited = (retryAfterSeconds: number, message = 'Too many requests; try again later.'): AppError =>
  new AppError('RATE_LIMITED', 429, message, {
    headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))) },
  });

export const serviceUnavailable = (
  message = 'A dependency is unavailable; try again later.',
  internalReason?: string,
): AppError => new AppError('SERVICE_UNAVAILABLE', 503, message, { internalReason });

export const internalError = (): AppError => new AppError('INTERNAL_ERROR', 500, 'An internal error occurred.');

export const isAppError = (e: unknown): e is AppError => e instanceof AppError;
