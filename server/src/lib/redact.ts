/**
 * Redaction of secrets before anything reaches a log transport or an audit row.
 * Keys that look secret are replaced wholesale; string values that look like bearer
 * tokens, JWTs or connection-string passwords are masked wherever they appear.
 */
export const REDACTED = '[REDACTED]';

const SECRET_KEY =
  /(pass(word|wd|phrase)?|secret|token|authorization|cookie|api[-_]?key|private[-_]?key|credential|signature|^key$|[-_]key$|^sig$|set-cookie|idtoken|refresh)/i;

const JWT_LIKE = /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g;
const BEARER = /\b(Bearer|Basic|Splunk)\s+[A-Za-z0-9._~+/=-]{8,}/gi;
// Bounded repetitions: unbounded ones made this quadratic (seconds for 100 kB of 'a://b:').
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]{0,31}:\/\/[^:/\s@]{0,256}:)[^@\s]{1,256}@/gi;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/**
 * `password=…`, `DB_PASSWORD=…`, `csrf_token=…`, `api_key=…` and the like inside free text
 * (query strings, messages, environment dumps). Only `name=value`: "password: too short" is
 * ordinary prose and stays as it is. Bounded repetitions only: linear on any input.
 */
const KEY_VALUE =
  /(pass(?:word|wd|phrase)?|pwd|secret|token|api[-_]?key|access[-_]?key)=("[^"\n]{0,256}"|'[^'\n]{0,256}'|[^\s&;,"']{1,512})/gi;
const KEY_VALUE_HINT = /pass|pwd|secret|token|key/i;

const WHITESPACE = /\s/;

export function redactString(value: string): string {
  if (value.length < 8) return value;
  const hint = KEY_VALUE_HINT.test(value);
  // Fast path: every pattern needs 'eyJ' (JWT), '://' (URL password), whitespace (scheme +
  // token) or a secret-sounding word (key=value).
  if (!hint && value.indexOf('eyJ') === -1 && value.indexOf('://') === -1 && !WHITESPACE.test(value)) return value;
  const out = value
    .replace(JWT_LIKE, REDACTED)
    .replace(BEARER, `$1 ${REDACTED}`)
    .replace(URL_PASSWORD, `$1${REDACTED}@`);
  return hint ? out.replace(KEY_VALUE, `$1=${REDACTED}`) : out;
}

/** Returns a deep copy with secret-looking keys and token-looking strings redacted. */
export function redact(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 8) return '[TRUNCATED]';
  if (seen.has(value)) return '[CIRCULAR]';
  seen.add(value);
  if (Buffer.isBuffer(value)) return REDACTED;
  if (value instanceof Error) {
    return { name: value.name, message: redactString(value.message), code: (value as { code?: unknown }).code };
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1, seen));
  if (value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] =
      isSecretKey(k) && v !== null && v !== undefined && typeof v !== 'boolean' && typeof v !== 'number'
        ? REDACTED
        : redact(v, depth + 1, seen);
  }
  return out;
}
