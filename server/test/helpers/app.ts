import { Writable } from 'node:stream';
import pg from 'pg';
import winston from 'winston';
import { createApp, type App } from '../../src/app';
import { buildServices, type Composition, type CoreDeps } from '../../src/compose';
import { loadConfig, type Config } from '../../src/config';
import { createPool, poolOptionsFromConfig } from '../../src/db/pool';
import { systemClock, type Clock } from '../../src/lib/clock';
import { createLogger } from '../../src/lib/logger';
import { testDbUrl, testEnv } from './env';
import { checkResponsesOf } from './openapi-hook';

export interface TestApp {
  app: App;
  composition: Composition;
  config: Config;
  clock: Clock;
  /** Every log line (JSON) written by the app, after redaction. */
  logs: string[];
  close(): Promise<void>;
}

export function captureTransport(lines: string[]): winston.transport {
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  return new winston.transports.Stream({ stream, level: 'silly' });
}

export interface TestAppOptions {
  env?: Record<string, string | undefined>;
  clock?: Clock;
  /** Log level for the captured logs (default info, so redaction can be checked). */
  logLevel?: string;
  start?: boolean;
  accessLog?: boolean;
  /** Key Vault credential/SDK options (a local vault in tests). */
  keyVault?: CoreDeps['keyVault'];
}

/** The real app on the real test database, wired exactly as index.ts wires it. */
export async function buildTestApp(opts: TestAppOptions = {}): Promise<TestApp> {
  const loaded = loadConfig(testEnv(opts.env));
  if (!loaded.config) throw new Error(`test config invalid: ${JSON.stringify(loaded.errors)}`);
  const config = loaded.config;
  const logs: string[] = [];
  const logger = createLogger({ level: opts.logLevel ?? 'info', console: false, transports: [captureTransport(logs)] });
  const pool = createPool(poolOptionsFromConfig(config, config.database.url as string), logger);
  const clock = opts.clock ?? systemClock;
  const composition = await buildServices({ config, logger, pool, clock, keyVault: opts.keyVault });
  if (opts.start) await composition.start();
  const app = createApp(composition, { accessLog: opts.accessLog });
  // Every response the tests receive from this app is checked against the OpenAPI document.
  checkResponsesOf(app);
  return {
    app,
    composition,
    config,
    clock,
    logs,
    async close() {
      await composition.stop();
      await pool.end();
    },
  };
}

/** A superuser/owner pool (no application role, no RLS) for asserting what was written. */
export function ownerPool(): pg.Pool {
  return new pg.Pool({ connectionString: testDbUrl(), max: 4 });
}
