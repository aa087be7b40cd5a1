/**
 * Shared set-up for the operator CLIs: configuration exactly as start-up loads it, the
 * database `npm start` uses (the embedded cluster, reused when it already runs, or an
 * external one), pending migrations (outside production, as the owner), the server's
 * runtime-login checks, and the same service wiring as the server.
 */
import os from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { buildServices, type Composition } from '../compose';
import type { Config } from '../config';
import { createPool, poolOptionsFromConfig } from '../db/pool';
import { prepareDatabase } from '../db/startup';
import { systemClock } from '../lib/clock';
import { createLogger } from '../lib/logger';
import { loadRuntimeConfig, openDatabase, requireConfig } from '../runtime';

export async function withCliServices<T>(fn: (c: Composition) => Promise<T>): Promise<T> {
  const config: Config = requireConfig(loadRuntimeConfig());
  // Operators read the command's own output; the service logs only warnings and errors here.
  const logger = createLogger({ level: 'warn', dir: config.log.dir ?? undefined });
  const db = await openDatabase(config, logger);
  try {
    await prepareDatabase(config, db, logger, { quiet: true });
    const pool = createPool(poolOptionsFromConfig(config, db.url), logger);
    try {
      const composition = await buildServices({ config, logger, pool, clock: systemClock });
      return await fn(composition);
    } finally {
      await pool.end();
    }
  } finally {
    await db.close();
  }
}

/** The operating-system account running the command (recorded in audit rows). */
export function operatorName(): string | null {
  try {
    return os.userInfo().username;
  } catch {
    return null;
  }
}

/**
 * node:util parseArgs for the operator CLIs: strict, no positional arguments, and an option
 * given twice is an error (parseArgs alone keeps the last value silently, so
 * `--tenant a --tenant b` would quietly act on b). Throws on bad arguments.
 */
export function parseOptions<const O extends NonNullable<ParseArgsConfig['options']>>(
  options: O,
  args: string[] = process.argv.slice(2),
) {
  const parsed = parseArgs({ options, args, strict: true, allowPositionals: false, tokens: true });
  const seen = new Set<string>();
  for (const t of parsed.tokens) {
    if (t.kind !== 'option') continue;
    if (seen.has(t.name)) throw new Error(`${t.rawName} given more than once`);
    seen.add(t.name);
  }
  return parsed.values;
}

/** Prints a message and exits with status 2 (usage error). */
export function usageError(usage: string, message: string): never {
  process.stderr.write(`${message}\n\n${usage}\n`);
  process.exit(2);
}

/** Runs main, turning failures into a one-line message and exit status 1. */
export function runCli(name: string, main: () => Promise<void>): void {
  main().catch((err: Error) => {
    process.stderr.write(`${name}: ${err.message}\n`);
    process.exit(1);
  });
}
