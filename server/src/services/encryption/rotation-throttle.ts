/**
 * Master-key rotation throttle (CONTRACT §9): at most one rotation attempt per interval
 * (default one a minute) and never two at once. Within this process, attempts that reached the
 * vault are timed on the injected clock; across instances, the last successful rotation in the
 * platform tenant's audit trail (database time) also counts. Two instances racing in the same
 * instant can each rotate once: the bound is one per instance per interval.
 */
import type { Pool } from '../../db/pool';
import { withTenant } from '../../db/transaction';
import type { Clock } from '../../lib/clock';
import { selectLastSuccessAgoMs } from '../audit/repository';

export type RotationGate = { ok: true; release(attempted: boolean): void } | { ok: false; retryAfterSec: number };

export interface RotationThrottle {
  acquire(): Promise<RotationGate>;
}

export function createRotationThrottle(deps: {
  pool: Pool;
  clock: Clock;
  platformTenant: string;
  intervalMs?: number;
}): RotationThrottle {
  const intervalMs = deps.intervalMs ?? 60_000;
  let busy = false;
  let lastAttemptAt: number | null = null;
  const wait = (elapsedMs: number) => Math.max(1, Math.ceil((intervalMs - elapsedMs) / 1000));
  return {
    async acquire() {
      if (busy) return { ok: false, retryAfterSec: Math.ceil(intervalMs / 1000) };
      const now = deps.clock.now();
      if (lastAttemptAt !== null && now - lastAttemptAt < intervalMs)
        return { ok: false, retryAfterSec: wait(now - lastAttemptAt) };
      busy = true;
      try {
        const ago = await withTenant(deps.pool, deps.platformTenant, (c) =>
          selectLastSuccessAgoMs(c, deps.platformTenant, 'key.master.rotated'),
        );
        if (ago !== null && ago < intervalMs) {
          busy = false;
          return { ok: false, retryAfterSec: wait(ago) };
        }
      } catch (err) {
        busy = false;
        throw err;
      }
      return {
        ok: true,
        release(attempted) {
          busy = false;
          if (attempted) lastAttemptAt = deps.clock.now();
        },
      };
    },
  };
}
