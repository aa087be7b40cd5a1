/** Builds the real app (or just its services) on an isolated database for SIEM/archive tests. */
import type { Pool } from 'pg';
import { loadConfig, type Config } from '../../../src/config';
import { createPool, poolOptionsFromConfig } from '../../../src/db/pool';
import { ManualClock, type Clock } from '../../../src/lib/clock';
import { createLogger, type Logger } from '../../../src/lib/logger';
import { createAuditService, type AuditService } from '../../../src/services/audit/service';
import {
  buildSecurityMonitoring,
  type SecurityMonitoring,
  type SecurityMonitoringDeps,
} from '../../../src/services/siem';
import { buildTestApp, captureTransport, type TestApp } from '../../helpers/app';
import { testEnv } from '../../helpers/env';
import type { IsolatedDatabase } from './db';

export async function buildSiemTestApp(
  db: IsolatedDatabase,
  env: Record<string, string | undefined>,
  opts: { clock?: Clock; start?: boolean } = {},
): Promise<TestApp> {
  return buildTestApp({
    env: { DATABASE_URL: db.appUrl, MIGRATION_DATABASE_URL: db.url, ...env },
    clock: opts.clock,
    start: opts.start,
    logLevel: 'warn',
  });
}

export interface Stack {
  config: Config;
  pool: Pool;
  audit: AuditService;
  monitoring: SecurityMonitoring;
  clock: ManualClock;
  logger: Logger;
  logs: string[];
  close(): Promise<void>;
}

/**
 * The services without HTTP: a pool (application role), an audit service and the monitoring
 * module, with a manual clock and any overrides (connector, timeouts, lease). A second stack
 * on the same database plays a second instance.
 */
export async function buildStack(
  db: IsolatedDatabase,
  env: Record<string, string | undefined>,
  overrides: Partial<SecurityMonitoringDeps> = {},
  clock = new ManualClock(),
): Promise<Stack> {
  const loaded = loadConfig(testEnv({ DATABASE_URL: db.appUrl, MIGRATION_DATABASE_URL: db.url, ...env }));
  if (!loaded.config) throw new Error(`test config invalid: ${JSON.stringify(loaded.errors)}`);
  const config = loaded.config;
  const logs: string[] = [];
  const logger = createLogger({ level: 'info', console: false, transports: [captureTransport(logs)] });
  const pool = createPool(poolOptionsFromConfig(config, db.appUrl), logger);
  const audit = createAuditService({ pool, logger });
  const monitoring = buildSecurityMonitoring({ config, pool, logger, clock, audit, ...overrides });
  return {
    config,
    pool,
    audit,
    monitoring,
    clock,
    logger,
    logs,
    async close() {
      await monitoring.stop();
      await pool.end();
    },
  };
}

/** Polls until fn returns a truthy value (no timing assertions: only a generous deadline). */
export async function eventually<T>(
  fn: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  what: string,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
