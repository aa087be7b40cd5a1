/** Capped exponential backoff with full jitter: the n-th retry waits uniform(0, min(cap, 2^n s)). */
const BACKOFF_BASE_MS = 1000;
export const BACKOFF_CAP_MS = 5 * 60 * 1000;

export function backoffCeilingMs(attempt: number): number {
  const n = Math.max(1, Math.min(attempt, 30));
  return Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** n);
}

/**
 * Delay before retry number `attempt` (1 = first retry). A receiver's Retry-After is honoured
 * as a lower bound (still capped).
 */
export function backoffDelayMs(attempt: number, random: () => number = Math.random, retryAfterMs?: number): number {
  const jittered = Math.floor(random() * backoffCeilingMs(attempt));
  const floor = retryAfterMs !== undefined && Number.isFinite(retryAfterMs) ? Math.max(0, retryAfterMs) : 0;
  return Math.min(BACKOFF_CAP_MS, Math.max(jittered, floor));
}

/** Parses Retry-After (delta seconds or an HTTP date) into milliseconds; undefined when absent or invalid. */
export function parseRetryAfter(value: unknown, now: number): number | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Math.min(Number(v) * 1000, BACKOFF_CAP_MS);
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.min(Math.max(0, t - now), BACKOFF_CAP_MS);
}
