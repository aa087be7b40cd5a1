/**
 * Typed errors. Services throw DomainErrors (a code, no HTTP); the HTTP layer throws AppErrors
 * (code, status, headers). One error handler (middleware/error-handler.ts) maps both to the
 * contract's error shape, built by errorEnvelope(); anything else becomes a 500 with no detail.
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

/**
 * The one table from error code to HTTP status (contract §3, §6, §11). The error handler
 * answers every DomainError with it; nothing else decides a domain error's status.
 */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  VALIDATION_FAILED: 400,
  MALFORMED_JSON: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  CSRF_FAILED: 403,
  STEP_UP_REQUIRED: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  IDEMPOTENCY_KEY_REUSED: 422,
  RATE_LIMITED: 429,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
};

export interface ErrorDetail {
  path?: string;
  message: string;
  code?: string;
}

/**
 * A failure of the domain (services and the checks in front of them). It carries no HTTP
 * detail: the error handler maps its `code` to a status (HTTP_STATUS, the one table) and
 * `retryAfterSeconds` to a Retry-After header.
 */
export class DomainError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetail[] | undefined;
  /** The reason for logs and audit rows; never sent to the client. */
  readonly internalReason: string | undefined;
  /** When the caller may try again, in whole seconds (sent as Retry-After). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { details?: ErrorDetail[]; internalReason?: string; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = opts.details;
    this.internalReason = opts.internalReason;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }

  /** The status the error handler answers with (HTTP_STATUS), for callers that report it. */
  get status(): number {
    return HTTP_STATUS[this.code];
  }
}

type DomainErrorOptions = ConstructorParameters<typeof DomainError>[2];

/** The input is not acceptable (400 VALIDATION_FAILED). */
export class ValidationError extends DomainError {
  constructor(details: ErrorDetail[], message = 'The request is not valid.', opts: DomainErrorOptions = {}) {
    super('VALIDATION_FAILED', message, { ...opts, details });
  }
}

/** One wording for every authentication failure; the reason goes to logs and audit only (401). */
export class AuthenticationError extends DomainError {
  constructor(internalReason?: string) {
    super('UNAUTHENTICATED', 'Authentication required or invalid.', { internalReason });
  }
}

/** The thing asked for does not exist, or is not the caller's to see (404). */
export class NotFoundError extends DomainError {
  constructor(what = 'Resource') {
    super('NOT_FOUND', `${what} not found.`);
  }
}

/** The request conflicts with the current state (409). */
export class ConflictError extends DomainError {
  constructor(message: string, opts: DomainErrorOptions = {}) {
    super('CONFLICT', message, opts);
  }
}

/** The same Idempotency-Key came with a different request body (contract §6, 422). */
export class IdempotencyKeyReusedError extends DomainError {
  constructor(message: string) {
    super('IDEMPOTENCY_KEY_REUSED', message);
  }
}

/** Too many attempts; try again after `retryAfterSeconds` (429). */
export class RateLimitedError extends DomainError {
  constructor(message: string, retryAfterSeconds: number, internalReason?: string) {
    super('RATE_LIMITED', message, { retryAfterSeconds, internalReason });
  }
}

/** A dependency is down, not configured or full (503). */
export class UnavailableError extends DomainError {
  constructor(message: string, opts: DomainErrorOptions = {}) {
    super('SERVICE_UNAVAILABLE', message, opts);
  }
}

/**
 * An error of the HTTP layer itself (body parsing, CSRF, permissions, step-up), with its
 * status and headers. Services throw DomainErrors instead.
 */
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

export const validationFailed = (details: ErrorDetail[], message = 'The request is not valid.'): DomainError =>
  new ValidationError(details, message);

export const malformedJson = (): AppError => new AppError('MALFORMED_JSON', 400, 'The request body is not valid JSON.');

/** One wording for every authentication failure; the reason goes to logs and audit only. */
export const unauthenticated = (internalReason?: string): DomainError => new AuthenticationError(internalReason);

export const forbidden = (internalReason?: string): AppError =>
  new AppError('FORBIDDEN', 403, 'You do not have permission to perform this action.', { internalReason });

export const csrfFailed = (): AppError => new AppError('CSRF_FAILED', 403, 'Missing or invalid CSRF token.');

export const notFound = (what = 'Resource'): DomainError => new NotFoundError(what);

export const conflict = (message: string): DomainError => new ConflictError(message);

export const payloadTooLarge = (limit: string): AppError =>
  new AppError('PAYLOAD_TOO_LARGE', 413, `The request body exceeds the ${limit} limit.`);

export const unsupportedMediaType = (): AppError =>
  new AppError('UNSUPPORTED_MEDIA_TYPE', 415, 'Request bodies must be sent as application/json.');

export const rateLimited = (retryAfterSeconds: number, message = 'Too many requests; try again later.'): DomainError =>
  new RateLimitedError(message, Math.max(1, Math.ceil(retryAfterSeconds)));

export const serviceUnavailable = (
  message = 'A dependency is unavailable; try again later.',
  internalReason?: string,
): DomainError => new UnavailableError(message, { internalReason });

export const internalError = (): AppError => new AppError('INTERNAL_ERROR', 500, 'An internal error occurred.');

export const isAppError = (e: unknown): e is AppError => e instanceof AppError;

/** The error response body of the contract (§3): the one place it is built. */
export interface ErrorBody {
  success: false;
  error: { code: string; message: string; details?: ErrorDetail[] };
  requestId: string;
  timestamp: string;
}

export function errorEnvelope(
  requestId: string,
  error: { code: string; message: string; details?: ErrorDetail[] | undefined },
): ErrorBody {
  const body: ErrorBody = {
    success: false,
    error: { code: error.code, message: error.message },
    requestId,
    timestamp: new Date().toISOString(),
  };
  if (error.details && error.details.length > 0) body.error.details = error.details;
  return body;
}
