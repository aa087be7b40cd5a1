/** The SIEM forwarder's state for GET /siem/status, readiness and health checks. */
import { withSiemWorker } from '../../db/transaction';
import type { SiemContext } from './context';
import * as repo from './repository';
import type { SiemService } from './service';

export type SiemStatus = Pick<SiemService, 'healthCheck' | 'getQueueStatus'>;

export function createSiemStatus(ctx: SiemContext): SiemStatus {
  const { pool, connector, enabled, provider, maxQueue, state } = ctx;
  const self: SiemStatus = {
    async healthCheck() {
      if (!connector)
        return { provider: null, reachable: false, healthy: false, error: 'SIEM_PROVIDER is not configured' };
      let reachable = true;
      let error: string | null = null;
      try {
        await connector.healthCheck();
      } catch (err) {
        reachable = false;
        error = (err as Error).message;
      }
      const status = await self.getQueueStatus(null);
      return { provider, reachable, healthy: reachable && status.healthy, error: error ?? status.lastError };
    },
    async getQueueStatus(tenantId) {
      // The worker rows and the global bound span tenants (the tenant's own counts filter by tenant).
      const { row, total } = await withSiemWorker(pool, async (c) => {
        const r = await repo.queueStatus(c, tenantId ?? null);
        return { row: r, total: tenantId ? await repo.countOutboxCapped(c, maxQueue) : r.queued };
      });
      state.depthEstimate = Math.min(total, maxQueue);
      const errorIsCurrent =
        row.last_error !== null &&
        row.last_error_at !== null &&
        (row.last_flush_at === null || row.last_error_at >= row.last_flush_at);
      const lastError = !enabled
        ? 'SIEM_PROVIDER is not configured'
        : errorIsCurrent
          ? row.last_error
          : total >= maxQueue
            ? 'queue full'
            : null;
      return {
        queuedEvents: row.queued,
        deadLetter: row.dead,
        lastFlushAt: row.last_flush_at ? row.last_flush_at.toISOString() : null,
        lastError,
        healthy: enabled && lastError === null,
      };
    },
  };
  return self;
}
