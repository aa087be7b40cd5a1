/**
 * Worker scheduling of the SIEM forwarder: a tick every SIEM_FLUSH_INTERVAL_MS (sooner when
 * a full batch waits), which trims the outbox to its bound and delivers batches back to back;
 * start() and stop() (which waits for the running tick and gives the claims back).
 */
import { withSiemWorker } from '../../db/transaction';
import { periodic } from '../../lib/periodic';
import type { SiemContext } from './context';
import type { SiemDelivery } from './delivery';
import * as repo from './repository';

/**
 * Audit rows are queued by a database trigger, so this instance does not see them arrive: it
 * checks this often whether a full batch waits (and flushes at once), between intervals.
 */
const FILL_CHECK_MS = 1000;
/** Batches one tick may deliver back to back before yielding to the next interval. */
const MAX_BATCHES_PER_TICK = 50;

export interface SiemScheduler {
  /** `n` events were enqueued by this instance: flush soon when a batch is full. */
  nudge(n: number): void;
  /** Writes siem_settings.forwarding (the audit_logs trigger queues high/critical rows while on). start() calls it. */
  syncSettings(): Promise<void>;
  /** Moves events beyond SIEM_MAX_QUEUE to the dead letter (every worker tick does it). Returns their ids. */
  trimQueue(): Promise<string[]>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createSiemScheduler(ctx: SiemContext, delivery: SiemDelivery): SiemScheduler {
  const { pool, config, clock, metrics, connector, enabled, batchSize, maxQueue, instanceId, log, state, now } = ctx;
  const { flushOnce } = delivery;

  let enqueuedSinceTick = 0;
  let started = false;
  let stopping = false;

  function nudge(n: number): void {
    enqueuedSinceTick += n;
    if (started && !stopping && enqueuedSinceTick >= batchSize) worker.wake(5);
  }

  async function trimQueue(): Promise<string[]> {
    const moved = await withSiemWorker(pool, (c) => repo.trimQueue(c, maxQueue, now()));
    if (moved.length > 0) {
      metrics.deadLettered.inc({ reason: 'queue_full' }, moved.length);
      log.warn('SIEM queue over its bound: oldest non-critical events moved to the dead letter', {
        count: moved.length,
        maxQueue,
      });
    }
    return moved;
  }

  async function tick(): Promise<void> {
    if (stopping) return;
    enqueuedSinceTick = 0;
    await trimQueue();
    for (let i = 0; i < MAX_BATCHES_PER_TICK && !stopping; i++) {
      const r = await flushOnce();
      if (r.claimed < batchSize || r.delivered === 0) break;
    }
    state.depthEstimate = await withSiemWorker(pool, (c) => repo.countOutboxCapped(c, maxQueue));
    metrics.queueDepth.set(state.depthEstimate);
  }

  /** A full batch waits, or a claim of a dead instance ran out: flush now. */
  async function checkFill(): Promise<void> {
    if (worker.busy || stopping) return;
    const n = await withSiemWorker(pool, (c) => repo.countFreshCapped(c, batchSize));
    if (n >= batchSize || (await withSiemWorker(pool, (c) => repo.hasExpiredClaims(c, now())))) worker.wake(0);
  }

  const worker = periodic(tick, {
    intervalMs: config.siem.flushIntervalMs,
    firstDelayMs: 0,
    onError: (err) => log.warn('SIEM worker tick failed', { err: (err as Error).message }),
  });
  const fillCheck = periodic(checkFill, {
    intervalMs: FILL_CHECK_MS,
    onError: (err) => log.debug('SIEM fill check failed', { err: (err as Error).message }),
  });

  async function syncSettings(): Promise<void> {
    await repo.setForwarding(pool, enabled);
  }

  return {
    nudge,
    syncSettings,
    trimQueue,
    async start() {
      await syncSettings();
      if (!enabled || started) return;
      started = true;
      stopping = false;
      state.depthEstimate = await withSiemWorker(pool, (c) => repo.countOutboxCapped(c, maxQueue)).catch(() => 0);
      await repo.deleteStaleWorkers(pool, new Date(clock.now() - 7 * 86_400_000)).catch(() => undefined);
      worker.start();
      if (config.siem.flushIntervalMs > FILL_CHECK_MS) fillCheck.start();
      log.info('SIEM forwarder started', {
        batchSize,
        flushIntervalMs: config.siem.flushIntervalMs,
        maxQueue,
        instanceId,
      });
    },
    async stop() {
      stopping = true;
      await fillCheck.stop();
      await worker.stop();
      if (started) {
        await withSiemWorker(pool, (c) => repo.releaseClaims(c, instanceId))
          .then((n) => {
            if (n > 0) log.info('SIEM claims released for other instances', { count: n });
          })
          .catch((err: Error) => log.warn('could not release SIEM claims', { err: err.message }));
      }
      started = false;
      await connector?.close().catch(() => undefined);
    },
  };
}
