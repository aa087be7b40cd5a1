/**
 * Errors of the encryption module. Like panva/jose, each failure has its own class with a
 * stable `code`, and every decryption failure carries the same fixed message so callers (and
 * anyone watching them) learn nothing about *why* a ciphertext was refused. The reason is kept
 * on a separate property for logs and operator tools; never send it to a client.
 */

export type DecryptionFailureReason = 'malformed' | 'unknown-key-version' | 'authentication-failed' | 'invalid-utf8';

/** Any decryption failure: altered ciphertext, IV, tag, key version or AAD, or a malformed envelope. */
export class DecryptionError extends Error {
  static readonly code = 'ERR_DECRYPTION_FAILED';
  readonly code = DecryptionError.code;
  /** For logs and operator tools only. */
  readonly reason: DecryptionFailureReason;
  constructor(reason: DecryptionFailureReason = 'authentication-failed') {
    super('decryption operation failed');
    this.name = 'DecryptionError';
    this.reason = reason;
    Object.defineProperty(this, 'reason', { enumerable: false });
  }
}

/** No master key can be obtained: the key source is unreachable and no cached or fallback key may be used. */
export class KeyUnavailableError extends Error {
  static readonly code = 'ERR_KEY_UNAVAILABLE';
  readonly code = KeyUnavailableError.code;
  constructor(reason: string, options?: { cause?: unknown }) {
    super(`master key unavailable: ${reason}`, options);
    this.name = 'KeyUnavailableError';
  }
}

/** The key source answered that this version does not exist (or is disabled). */
export class UnknownKeyVersionError extends Error {
  static readonly code = 'ERR_UNKNOWN_KEY_VERSION';
  readonly code = UnknownKeyVersionError.code;
  constructor(readonly version: string) {
    super('unknown or disabled master key version');
    this.name = 'UnknownKeyVersionError';
  }
}

/** The key source cannot create versions (environment or static keys): rotate by configuration. */
export class RotationNotSupportedError extends Error {
  static readonly code = 'ERR_ROTATION_NOT_SUPPORTED';
  readonly code = RotationNotSupportedError.code;
  constructor(message: string) {
    super(message);
    this.name = 'RotationNotSupportedError';
  }
}

/** A password the policy refuses (empty, longer than the limit, not well-formed Unicode). */
export class PasswordPolicyError extends Error {
  static readonly code = 'ERR_PASSWORD_POLICY';
  readonly code = PasswordPolicyError.code;
  constructor(message: string) {
    super(message);
    this.name = 'PasswordPolicyError';
  }
}

/** A short, single-line description of an unknown error for logs and audit rows (never a value). */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const status = (err as { statusCode?: number }).statusCode;
    const code = (err as { code?: unknown }).code;
    const parts = [err.name];
    if (typeof status === 'number') parts.push(`status ${status}`);
    if (typeof code === 'string' && code !== err.name) parts.push(code);
    const msg = err.message.split('\n')[0]?.slice(0, 300) ?? '';
    return `${parts.join(' ')}: ${msg}`;
  }
  return String(err).slice(0, 300);
}
