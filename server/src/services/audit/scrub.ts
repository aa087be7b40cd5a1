/**
 * What happens to `before` / `after` (and free-text fields) before they are stored:
 * converted to plain JSON, secret-looking keys replaced, token-looking strings masked,
 * characters PostgreSQL cannot store replaced, and each value capped at 64 kB.
 */
import { redactString } from '../../lib/redact';

export const AUDIT_VALUE_MAX_BYTES = 64 * 1024;
const REDACTED = '[REDACTED]';
const MAX_DEPTH = 24;
const PREVIEW_CHARS = 1024;

/** Key names (compared without case, `-`, `_` or spaces) whose values are never stored. */
const SECRET_KEY =
  /(password|passwd|passphrase|secret|token|authori[sz]ation|cookie|credential|apikey|privatekey|signature|csrf|otp$|^pwd$|^pin$|^pass$|key$)/;

export function isSecretLikeKey(key: string): boolean {
  return SECRET_KEY.test(key.toLowerCase().replace(/[^a-z0-9]/g, ''));
}

/** NUL characters cannot be stored in text or jsonb; lone surrogates are not Unicode. */
export function sanitizeText(s: string): string {
  const wellFormed = s.isWellFormed() ? s : s.toWellFormed();
  return wellFormed.includes('\u0000') ? wellFormed.replaceAll('\u0000', '\uFFFD') : wellFormed;
}

/**
 * Truncates to at most max characters (code points, as PostgreSQL's length() and the
 * request schemas count them), ending in "…" when cut; never splits a surrogate pair.
 */
export function truncateText(s: string, max: number): string {
  if (s.length <= max) return s;
  const chars = Array.from(s);
  if (chars.length <= max) return s;
  return `${chars.slice(0, max - 1).join('')}…`;
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function toJsonValue(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  switch (typeof value) {
    case 'string':
      return redactString(sanitizeText(value));
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'boolean':
      return value;
    case 'bigint':
      return value.toString();
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
    default:
      break;
  }
  if (value === null) return null;
  const obj = value as object;
  if (depth >= MAX_DEPTH) return '[TRUNCATED]';
  if (seen.has(obj)) return '[CIRCULAR]';
  if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? null : obj.toISOString();
  if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer) return '[BINARY]';
  seen.add(obj);
  try {
    if (Array.isArray(obj)) {
      return obj.map((v) => {
        const j = toJsonValue(v, depth + 1, seen);
        return j === undefined ? null : j;
      });
    }
    if (obj instanceof Map) return toJsonValue(Object.fromEntries(obj), depth, seen);
    if (obj instanceof Set) return toJsonValue([...obj], depth, seen);
    if (obj instanceof Error) return { name: sanitizeText(obj.name), message: redactString(sanitizeText(obj.message)) };
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function' && !isPlainObject(obj)) return toJsonValue(toJSON.call(obj), depth + 1, seen);
    // Null prototype: a "__proto__" key is stored as data, never as a prototype.
    const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const [rawKey, v] of Object.entries(obj)) {
      const key = sanitizeText(rawKey);
      if (isSecretLikeKey(key) && v !== null && v !== undefined && typeof v !== 'boolean') {
        out[key] = REDACTED;
        continue;
      }
      const j = toJsonValue(v, depth + 1, seen);
      if (j !== undefined) out[key] = j;
    }
    return out;
  } finally {
    seen.delete(obj);
  }
}

export interface ScrubbedValue {
  /** JSON text to store (null: store SQL NULL). */
  json: string | null;
  /** The stored value, parsed (what hooks and readers see). */
  value: unknown;
  truncated: boolean;
}

/**
 * Scrubs a before/after value and caps it at AUDIT_VALUE_MAX_BYTES of JSON. A value over
 * the cap is replaced by `{ _truncated: true, originalBytes, preview }`.
 */
export function scrubAuditValue(value: unknown, maxBytes: number = AUDIT_VALUE_MAX_BYTES): ScrubbedValue {
  if (value === undefined || value === null) return { json: null, value: null, truncated: false };
  const clean = toJsonValue(value, 0, new WeakSet());
  if (clean === undefined || clean === null) return { json: null, value: null, truncated: false };
  const json = JSON.stringify(clean);
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes <= maxBytes) return { json, value: clean, truncated: false };
  const marker = { _truncated: true, originalBytes: bytes, preview: truncateText(json, PREVIEW_CHARS) };
  return { json: JSON.stringify(marker), value: marker, truncated: true };
}

/** Byte size of a value as JSON (what the 64 kB cap measures). */
export function jsonByteLength(value: unknown): number {
  const s = JSON.stringify(value);
  return s === undefined ? 0 : Buffer.byteLength(s, 'utf8');
}
