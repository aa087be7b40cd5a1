/**
 * The operator CLIs' boot sequence, in one place: configuration exactly as start-up loads it
 * (or only its database settings), a logger that leaves the command's own output readable,
 * the database `npm start` uses (the embedded cluster, reused when it already runs, or an
 * external one) and a pool on it; cli/services.ts adds the server's service wiring. Everything
 * opened is closed again in reverse order, whatever the command does.
 */
import type { Config, ConfigScope } from '../config';
import { createPool, poolOptionsFromConfig, type Pool, type PoolOptions } from '../db/pool';
import { createLogger, type Logger } from '../lib/logger';
import { loadRuntimeConfig, openDatabase, requireConfig, type DatabaseHandle } from '../runtime';

/** The configuration, or exit with `exitCode` after printing every problem (warnings printed too). */
export function cliConfig(opts: { scope?: ConfigScope; exitCode?: number } = {}): Config {
  return requireConfig(
    loadRuntimeConfig(undefined, opts.scope ? { scope: opts.scope } : undefined),
    undefined,
    opts.exitCode,
  );
}

/** Operators read the command's own output: the service logs only warnings and errors, unless debugging. */
export const quietUnlessDebug = (config: Config): string => (config.log.level === 'debug' ? 'debug' : 'warn');

/** The CLI's logger: `level` (default quietUnlessDebug), and the configured log directory when `logDir`. */
export function cliLogger(config: Config, opts: { level?: string; logDir?: boolean } = {}): Logger {
  const level = opts.level ?? quietUnlessDebug(config);
  return createLogger(opts.logDir ? { level, dir: config.log.dir ?? undefined } : { level });
}

/** Opens the database for fn and closes it afterwards. */
export async function withDatabase<T>(
  config: Config,
  logger: Logger,
  fn: (db: DatabaseHandle) => Promise<T>,
): Promise<T> {
  const db = await openDatabase(config, logger);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

/** The database and a pool on its runtime login (or the options `pool` gives) for fn; both closed afterwards. */
export async function withDatabasePool<T>(
  config: Config,
  logger: Logger,
  fn: (pool: Pool, db: DatabaseHandle) => Promise<T>,
  pool: (db: DatabaseHandle) => PoolOptions = (db) => poolOptionsFromConfig(config, db.url),
): Promise<T> {
  return withDatabase(config, logger, async (db) => {
    const p = createPool(pool(db), logger);
    try {
      return await fn(p, db);
    } finally {
      await p.end();
    }
  });
}
