/**
 * The background sealer: appends committed audit rows to their tenant's hash chain
 * (audit_seal() in the database) every `intervalMs`, draining in batches. Several instances
 * are safe: audit_seal() takes a cluster-wide advisory lock and returns -1 to the others.
 * Started by compose start(), stopped by stop(); no timer exists before start().
 */
import type { Pool } from '../../db/pool';
import type { Logger } from '../../lib/logger';
import { periodic } from '../../lib/periodic';
import { sealBatch } from './repository';

export interface AuditSealerOptions {
  pool: Pool;
  logger: Logger;
  /** Pause between runs (default 500 ms): rows are sealed well within a second or two. */
  intervalMs?: number;
  /** Rows per audit_seal() call (default 2000, at most 10000). */
  batchSize?: number;
  /** Calls per run before yielding (default 50): bounds one run's work. */
  maxBatchesPerRun?: number;
}

export interface SealerStatus {
  running: boolean;
  lastRunAt: Date | null;
  lastSealed: number;
  totalSealed: number;
  lastError: string | null;
}

export interface AuditSealer {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Seals everything committed so far (waits for another instance's run to finish). Returns rows sealed here. */
  sealNow(): Promise<number>;
  status(): SealerStatus;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function createAuditSealer(opts: AuditSealerOptions): AuditSealer {
  const intervalMs = opts.intervalMs ?? 500;
  const batchSize = opts.batchSize ?? 2000;
  const maxBatches = opts.maxBatchesPerRun ?? 50;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10000)
    throw new Error('audit sealer batchSize must be an integer from 1 to 10000');
  if (!Number.isFinite(intervalMs) || intervalMs < 10) throw new Error('audit sealer intervalMs must be at least 10');

  let inFlight: Promise<number> | null = null;
  const st: SealerStatus = { running: false, lastRunAt: null, lastSealed: 0, totalSealed: 0, lastError: null };

  /** One run: drain up to maxBatches batches. -1 from the database: another instance is sealing. */
  async function runOnce(waitForLock: boolean): Promise<number> {
    let total = 0;
    for (let i = 0; i < maxBatches; i += 1) {
      const n = await sealBatch(opts.pool, batchSize);
      if (n === -1) {
        if (!waitForLock) break;
        await sleep(20);
        continue;
      }
      total += n;
      if (n < batchSize) break;
    }
    st.lastRunAt = new Date();
    st.lastSealed = total;
    st.totalSealed += total;
    return total;
  }

  function run(waitForLock: boolean): Promise<number> {
    const p = (inFlight ?? Promise.resolve(0)).catch(() => 0).then(() => runOnce(waitForLock));
    inFlight = p;
    return p.finally(() => {
      if (inFlight === p) inFlight = null;
    });
  }

  const loop = periodic(
    async () => {
      await run(false);
      st.lastError = null;
    },
    {
      intervalMs,
      onError: (err) => {
        const e = err as Error;
        if (st.lastError !== e.message)
          opts.logger.error('audit sealer run failed', {
            err: { message: e.message, code: (e as { code?: string }).code },
          });
        st.lastError = e.message;
      },
    },
  );

  return {
    async start() {
      if (st.running) return;
      st.running = true;
      loop.start();
    },
    async stop() {
      st.running = false;
      await loop.stop();
      if (inFlight) await inFlight.catch(() => 0);
    },
    sealNow() {
      return run(true);
    },
    status() {
      return { ...st };
    },
  };
}
