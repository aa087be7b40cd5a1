/**
 * Builds every service once from ready infrastructure. Used by index.ts (the composition
 * root) and by the tests, so both run the same wiring.
 */
import type { Store } from 'express-rate-limit';
import type { Config } from './config';
import type { Pool } from './db/pool';
import type { Clock } from './lib/clock';
import type { Logger } from './lib/logger';
import type { ReadinessCheck } from './routes/health';
import { databaseCheck } from './routes/health';
import { createAuditService, type AuditService } from './services/audit/service';

export interface CoreDeps {
  config: Config;
  logger: Logger;
  pool: Pool;
  clock: Clock;
  /** Store factory for rate limits (Redis when REDIS_URL is set); memory when absent. */
  makeRateLimitStore?: (prefix: string) => Store;
}

export interface Services {
  audit: AuditService;
}

export interface Composition extends CoreDeps {
  services: Services;
  readinessChecks: ReadinessCheck[];
  /** Starts background work (workers, timers). Not called by tests that do not need it. */
  start(): Promise<void>;
  /** Stops background work; the caller closes the pool afterwards. */
  stop(): Promise<void>;
}

export async function buildServices(core: CoreDeps): Promise<Composition> {
  const audit = createAuditService({ pool: core.pool, logger: core.logger });
  const readinessChecks: ReadinessCheck[] = [databaseCheck(core.pool)];
  const starters: Array<() => Promise<void>> = [];
  const stoppers: Array<() => Promise<void>> = [];
  return {
    ...core,
    services: { audit },
    readinessChecks,
    async start() {
      for (const s of starters) await s();
    },
    async stop() {
      for (const s of stoppers.reverse()) await s().catch((err: Error) => core.logger.warn('stop failed', { err: err.message }));
    },
  };
}
