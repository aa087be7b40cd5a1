import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../../src/config';
import { createPool, poolOptionsFromConfig, type Pool } from '../../../src/db/pool';
import { createLogger, type Logger } from '../../../src/lib/logger';
import { captureTransport } from '../../helpers/app';
import { testDbUrl, testEnv } from '../../helpers/env';

/** A logger whose JSON lines (after redaction) land in `lines`. */
export function memoryLogger(level = 'debug'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger({ level, console: false, transports: [captureTransport(lines)] }), lines };
}

/** A pool exactly like the app's (role fleet_app, row-level security applies). */
export function appPool(logger: Logger): Pool {
  const loaded = loadConfig(testEnv());
  if (!loaded.config) throw new Error('test config invalid');
  return createPool(poolOptionsFromConfig(loaded.config, testDbUrl()), logger);
}

export function key32(): Buffer {
  return randomBytes(32);
}

/** Every spelling of a key that must never appear in a response or a log. */
export function spellings(key: Buffer): string[] {
  return [key.toString('base64'), key.toString('base64url'), key.toString('hex'), key.toString('hex').toUpperCase()];
}
