/**
 * The boot sequence of the CLIs that act through the services (user:add, user:deactivate,
 * keys:rewrap): cli/boot.ts, then the services wired as the server wires them. Apart from
 * boot.ts so the commands that need no services do not load the whole wiring.
 */
import os from 'node:os';
import { buildServices, type Composition } from '../compose';
import type { Config } from '../config';
import { createPool, poolOptionsFromConfig } from '../db/pool';
import { prepareDatabase } from '../db/startup';
import { systemClock } from '../lib/clock';
import { cliConfig, cliLogger, withDatabase } from './boot';

/**
 * The whole configuration, the database with pending migrations applied (outside production,
 * as the owner) and the server's runtime-login checks (`prepare`, default on), and the
 * services wired as the server wires them.
 */
export async function withCliServices<T>(
  fn: (c: Composition) => Promise<T>,
  opts: { prepare?: boolean; logLevel?: (config: Config) => string } = {},
): Promise<T> {
  const config = cliConfig();
  const logger = cliLogger(config, { level: opts.logLevel?.(config) ?? 'warn', logDir: true });
  return withDatabase(config, logger, async (db) => {
    if (opts.prepare !== false) await prepareDatabase(config, db, logger, { quiet: true });
    const pool = createPool(poolOptionsFromConfig(config, db.url), logger);
    try {
      return await fn(await buildServices({ config, logger, pool, clock: systemClock }));
    } finally {
      await pool.end();
    }
  });
}

/** The operating-system account running the command (recorded in audit rows). */
export function operatorName(): string | null {
  try {
    return os.userInfo().username;
  } catch {
    return null;
  }
}
