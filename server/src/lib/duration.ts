/** Parses `900`, `900s`, `15m`, `24h`, `7d`, `250ms` into milliseconds; null when malformed. */
export function parseDurationMs(input: string): number | null {
  const m = /^\s*(\d{1,9})\s*(ms|s|m|h|d)?\s*$/i.exec(input);
  if (!m) return null;
  const n = Number(m[1]);
  const unit = (m[2] ?? 's').toLowerCase();
  const mult = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : unit === 'h' ? 3_600_000 : 86_400_000;
  return n * mult;
}
