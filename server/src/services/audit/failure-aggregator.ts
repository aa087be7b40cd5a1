/**
 * Aggregation of repeated unauthenticated failures (junk login tokens, forged access tokens,
 * unknown refresh tokens). Each is still audited, but repeated identical failures — same
 * tenant, action, reason and source IP — within one window (default 60 s) become two rows, not
 * one per request:
 * - the first failure of a window is written at once, exactly as before (the request waits for
 *   it; if it cannot be written the request fails);
 * - later identical failures inside the window are only counted in memory;
 * - when the window ends (timer, the next identical failure after it, or shutdown) one
 *   follow-up row records the count: `after: { aggregated: true, count, firstAt, lastAt,
 *   windowSeconds, resourceIds }` (resourceIds: up to 10 distinct ones seen, e.g. e-mails).
 * So junk traffic from one source grows the table by at most two rows per window and key.
 * Bounded memory: at most maxKeys open windows; beyond that a failure is written directly.
 * A crash loses at most the counts of open windows, never a window's first row.
 * Only failures that carry no verified identity come here (security decisions about real
 * users, counted login failures and lockouts are written one row each, in their transaction).
 */
import type { Clock } from '../../lib/clock';
import type { Logger } from '../../lib/logger';
import { periodic } from '../../lib/periodic';
import type { AuditService } from './service';
import type { AuditEvent } from './types';

export interface FailureAggregatorOptions {
  audit: AuditService;
  clock: Clock;
  logger: Logger;
  windowMs?: number;
  maxKeys?: number;
}

export interface FailureAggregator {
  /** Audits the failure (first of its window) or counts it (later ones). */
  record(event: AuditEvent): Promise<void>;
  /** Writes the follow-up rows of windows that ended (all windows with `all`). */
  flush(opts?: { all?: boolean }): Promise<number>;
  start(): void;
  stop(): Promise<void>;
  /** Open windows (for tests and metrics). */
  size(): number;
}

interface Window {
  first: AuditEvent;
  startedAt: number;
  lastAt: number;
  /** Failures after the first, not written yet. */
  count: number;
  resourceIds: Set<string>;
}

const MAX_RESOURCE_IDS = 10;

export function createFailureAggregator(opts: FailureAggregatorOptions): FailureAggregator {
  const windowMs = opts.windowMs ?? 60_000;
  const maxKeys = opts.maxKeys ?? 10_000;
  const windows = new Map<string, Window>();

  const keyOf = (e: AuditEvent) => JSON.stringify([e.tenantId, e.action, e.errorMessage ?? null, e.ipAddress ?? null]);

  async function writeFollowUp(w: Window): Promise<void> {
    if (w.count === 0) return;
    const e = w.first;
    await opts.audit.record({
      tenantId: e.tenantId,
      userId: e.userId ?? null,
      action: e.action,
      resourceType: e.resourceType,
      resourceId: w.resourceIds.size === 1 ? [...w.resourceIds][0] : null,
      result: e.result ?? 'failure',
      severity: e.severity,
      errorMessage: e.errorMessage
        ? `${e.errorMessage} (repeated ${w.count} more times within ${Math.round(windowMs / 1000)} s)`.slice(0, 2000)
        : null,
      ipAddress: e.ipAddress ?? null,
      userAgent: e.userAgent ?? null,
      requestId: null,
      after: {
        aggregated: true,
        count: w.count,
        firstAt: new Date(w.startedAt).toISOString(),
        lastAt: new Date(w.lastAt).toISOString(),
        windowSeconds: Math.round(windowMs / 1000),
        resourceIds: [...w.resourceIds],
      },
    });
  }

  async function flush(flushOpts: { all?: boolean } = {}): Promise<number> {
    const now = opts.clock.now();
    const due: Window[] = [];
    for (const [k, w] of windows) {
      if (flushOpts.all || now - w.startedAt >= windowMs) {
        windows.delete(k);
        due.push(w);
      }
    }
    let written = 0;
    for (const w of due) {
      if (w.count === 0) continue;
      try {
        await writeFollowUp(w);
        written += 1;
      } catch (err) {
        opts.logger.error('aggregated audit row could not be written', {
          action: w.first.action,
          count: w.count,
          reason: (err as Error).message,
        });
      }
    }
    return written;
  }

  const loop = periodic(() => flush(), {
    intervalMs: Math.max(1000, Math.floor(windowMs / 2)),
    onError: (err) =>
      opts.logger.error('aggregated audit rows could not be flushed', { reason: (err as Error).message }),
  });

  return {
    async record(event) {
      const now = opts.clock.now();
      const key = keyOf(event);
      const open = windows.get(key);
      if (open && now - open.startedAt < windowMs) {
        open.count += 1;
        open.lastAt = now;
        if (event.resourceId && open.resourceIds.size < MAX_RESOURCE_IDS) open.resourceIds.add(event.resourceId);
        return;
      }
      if (open) {
        windows.delete(key);
        await writeFollowUp(open);
      }
      await opts.audit.record(event);
      if (windows.size < maxKeys) {
        windows.set(key, {
          first: event,
          startedAt: now,
          lastAt: now,
          count: 0,
          resourceIds: new Set(event.resourceId ? [event.resourceId] : []),
        });
      }
    },
    flush,
    start() {
      loop.start();
    },
    async stop() {
      await loop.stop();
      await flush({ all: true });
    },
    size: () => windows.size,
  };
}
