/**
 * A small SQL migration runner: files `NNN_name.sql` in order, each in its own transaction,
 * recorded with a SHA-256 checksum in `schema_migrations`, under an advisory lock so
 * instances starting together cannot race; refuses to run when an applied file changed.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../lib/logger';
import { connectClient, DEFAULT_CONNECT_TIMEOUT_MS, onConnectionLoss } from './pool';
import { withTransaction } from './transaction';

/** What to do when the migrating login may not create or grant the application role. */
function roleHint(message: string): string {
  if (!/must have admin option on role|permission denied to create role|must have CREATEROLE/i.test(message)) return '';
  return ' (the login running migrations creates the role fleet_app and grants it to itself: that needs a superuser, or CREATEROLE and the ADMIN option on fleet_app; once, as a superuser: CREATE ROLE fleet_app NOLOGIN NOBYPASSRLS; GRANT fleet_app TO <this login> WITH ADMIN OPTION; see docs/OPERATIONS.md)';
}

export const MIGRATIONS_DIR = path.resolve(__dirname, '../../../migrations');
/** Arbitrary constant: the advisory lock key of the migration runner ("fleetmig"). */
const LOCK_KEY = '7308325827335106407';
const FILE_RE = /^(\d{3})_[a-z0-9_]+\.sql$/;

export interface MigrationFile {
  id: string;
  file: string;
  sql: string;
  checksum: string;
}

class MigrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MigrationError';
  }
}

export function readMigrations(dir: string = MIGRATIONS_DIR): MigrationFile[] {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  const seen = new Set<string>();
  return files.map((file) => {
    const m = FILE_RE.exec(file);
    if (!m) throw new MigrationError(`migration file name ${file} must look like 001_name.sql`);
    if (seen.has(m[1] as string)) throw new MigrationError(`two migrations share the number ${m[1]}`);
    seen.add(m[1] as string);
    const sql = fs.readFileSync(path.join(dir, file), 'utf8');
    return { id: file.replace(/\.sql$/, ''), file, sql, checksum: createHash('sha256').update(sql).digest('hex') };
  });
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: number;
}

/** Applies pending migrations using a dedicated connection as the schema owner. */
export async function runMigrations(
  connectionString: string,
  opts: {
    dir?: string;
    logger?: Logger;
    ssl?: pg.ClientConfig['ssl'];
    /** How long to wait for the connection to be ready (a server that never answers must not hang us). */
    connectTimeoutMs?: number;
  } = {},
): Promise<MigrateResult> {
  const migrations = readMigrations(opts.dir);
  const client = new pg.Client({
    connectionString,
    ssl: opts.ssl,
    application_name: 'fleet-security-migrate',
    connectionTimeoutMillis: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
  });
  onConnectionLoss(client, opts.logger, 'migrate');
  await connectClient(client);
  try {
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        id text PRIMARY KEY,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      const { rows } = await client.query<{ id: string; checksum: string }>(
        'SELECT id, checksum FROM schema_migrations',
      );
      const applied = new Map(rows.map((r) => [r.id, r.checksum]));
      for (const m of migrations) {
        const sum = applied.get(m.id);
        if (sum !== undefined && sum !== m.checksum) {
          throw new MigrationError(
            `migration ${m.file} was changed after it was applied (checksum mismatch); never edit an applied migration, add a new one`,
          );
        }
      }
      const known = new Set(migrations.map((m) => m.id));
      for (const id of applied.keys()) {
        if (!known.has(id))
          opts.logger?.warn('database has a migration this build does not know (a newer version ran?)', { id });
      }
      const done: string[] = [];
      for (const m of migrations) {
        if (applied.has(m.id)) continue;
        await withTransaction(client, async (c) => {
          await c.query(m.sql);
          await c.query('INSERT INTO schema_migrations (id, checksum) VALUES ($1, $2)', [m.id, m.checksum]);
        }).catch((err: Error) => {
          throw new MigrationError(`migration ${m.file} failed: ${err.message}${roleHint(err.message)}`);
        });
        opts.logger?.info('migration applied', { id: m.id });
        done.push(m.id);
      }
      return { applied: done, alreadyApplied: migrations.length - done.length };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => undefined);
    }
  } finally {
    await client.end();
  }
}
