/**
 * Shared start-up steps for the server and the CLIs: configuration (with development
 * secrets outside production) and the database (external, or the embedded cluster — reused
 * when `npm start` already runs it, started otherwise).
 */
import fs from 'node:fs';
import path from 'node:path';
import { formatIssues, loadConfig, processEnv, type Config, type ConfigScope, type LoadResult } from './config';
import { clusterDir, startEmbeddedPostgres, type EmbeddedDatabase } from './db/embedded';
import pg from 'pg';
import { createRuntimeLogin, EMBEDDED_RUNTIME_LOGIN } from './db/logins';
import { connectClient, DEFAULT_CONNECT_TIMEOUT_MS } from './db/pool';
import { DataDirError, loadOrCreateDevSecrets } from './dev-secrets';
import type { Logger } from './lib/logger';

export const EMBEDDED_DB_NAME = 'fleet_security';
const EMBEDDED_DEFAULT_PORT = 54329;

export interface LoadedConfig extends LoadResult {
  devSecretsFile: string | null;
  devSecretsCreated: boolean;
}

/** Loads configuration exactly as start-up does (check-env uses this too). */
export function loadRuntimeConfig(
  env: Record<string, string | undefined> = processEnv(),
  opts: { scope?: ConfigScope } = {},
): LoadedConfig {
  const isProd = (env.NODE_ENV ?? 'development') === 'production';
  let devSecrets: Record<string, string> | undefined;
  let devSecretsFile: string | null = null;
  let devSecretsCreated = false;
  if (!isProd) {
    const pre = loadConfig(env);
    const dataDir = pre.config?.dataDir ?? path.resolve(env.FLEET_DATA_DIR?.trim() || '.data');
    try {
      const r = loadOrCreateDevSecrets(dataDir);
      devSecrets = r.secrets;
      devSecretsFile = r.file;
      devSecretsCreated = r.created;
    } catch (err) {
      if (!(err instanceof DataDirError)) throw err;
      // Other settings are checked once the data directory works (without the development
      // secrets, every secret would be reported missing).
      return {
        config: null,
        errors: [{ variable: 'FLEET_DATA_DIR', message: err.message }],
        warnings: [],
        devSecretsFile: null,
        devSecretsCreated: false,
      };
    }
  }
  return { ...loadConfig(env, { devSecrets, scope: opts.scope }), devSecretsFile, devSecretsCreated };
}

/** Prints issues; exits the process with `exitCode` (default 1) on errors. */
export function requireConfig(
  loaded: LoadResult,
  print: (s: string) => void = (s) => process.stderr.write(s + '\n'),
  exitCode = 1,
): Config {
  if (loaded.errors.length > 0 || loaded.warnings.length > 0) print(formatIssues(loaded));
  if (!loaded.config) {
    print(
      `\nConfiguration invalid: ${loaded.errors.length} error(s). Fix them and start again (npm run check-env validates without starting).`,
    );
    process.exit(exitCode);
  }
  return loaded.config;
}

export interface DatabaseHandle {
  /** The runtime login (DATABASE_URL; with the embedded cluster, its fleet_runtime login). */
  url: string;
  /**
   * The schema owner (MIGRATION_DATABASE_URL; outside production DATABASE_URL when only one
   * is given; with the embedded cluster, its superuser). null in production without
   * MIGRATION_DATABASE_URL: the process has no owner login at all.
   */
  ownerUrl: string | null;
  embedded: EmbeddedDatabase | null;
  /** Stops the embedded cluster if this process started it. */
  close(): Promise<void>;
}

/** Port of the embedded cluster in `dir` when its postmaster is alive, else null. */
export function runningEmbeddedPort(dir: string): number | null {
  try {
    const lines = fs.readFileSync(path.join(dir, 'postmaster.pid'), 'utf8').split('\n');
    const pid = Number(lines[0]);
    const port = Number(lines[3]);
    if (!pid || !port) return null;
    process.kill(pid, 0);
    return port;
  } catch {
    return null;
  }
}

/** Thrown by openDatabase({ refuseRunning }) when another process runs the embedded cluster. */
export class EmbeddedInUseError extends Error {}

/** Where a running server records its pid and URL (beside the embedded cluster). */
export function serverPidFile(config: Config): string {
  return path.join(config.dataDir, 'server.pid');
}

function describeOwner(config: Config): string {
  try {
    const o = JSON.parse(fs.readFileSync(serverPidFile(config), 'utf8')) as { pid?: unknown; url?: unknown };
    if (typeof o.pid === 'number' && typeof o.url === 'string') {
      process.kill(o.pid, 0);
      return `another npm start (pid ${o.pid}, serving ${o.url})`;
    }
  } catch {
    // no record, or its process is gone: a CLI or a crashed server holds the cluster
  }
  return 'another process';
}

/**
 * The server passes refuseRunning: a second `npm start` on the same data directory would
 * share the first one's embedded cluster and break when the first stops it. The CLIs attach
 * to a running cluster (they run beside `npm start`).
 */
export async function openDatabase(
  config: Config,
  logger: Logger,
  opts: { refuseRunning?: boolean } = {},
): Promise<DatabaseHandle> {
  if (config.database.url)
    return {
      url: config.database.url,
      ownerUrl: config.database.ownerUrl,
      embedded: null,
      close: async () => undefined,
    };
  if (config.isProduction || !config.database.embeddedPassword)
    throw new Error('no database configured (DATABASE_URL)');
  const password = config.database.embeddedPassword;
  const requested = path.join(config.dataDir, 'pg');
  const dir = clusterDir(requested, logger);
  const port = runningEmbeddedPort(dir);
  if (port && opts.refuseRunning) {
    throw new EmbeddedInUseError(
      `the embedded PostgreSQL in ${dir} is already running (127.0.0.1:${port}), started by ${describeOwner(config)}. ` +
        'Stop that server first (Ctrl+C in its terminal, or kill its pid), or give this one its own data directory and port: ' +
        'FLEET_DATA_DIR=.data-2 PORT=3001 npm start',
    );
  }
  let ownerUrl: string;
  let embedded: EmbeddedDatabase | null = null;
  if (port) {
    logger.info('using the embedded PostgreSQL already running', { port });
    ownerUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${EMBEDDED_DB_NAME}`;
  } else {
    embedded = await startEmbeddedPostgres({
      dataDir: dir,
      password,
      database: EMBEDDED_DB_NAME,
      port: EMBEDDED_DEFAULT_PORT,
      logger,
    });
    logger.info('embedded PostgreSQL started', { port: embedded.port, dataDir: embedded.dataDir });
    ownerUrl = embedded.url;
  }
  const url = config.database.embeddedAppPassword
    ? await ensureEmbeddedRuntimeLogin(ownerUrl, config.database.embeddedAppPassword)
    : ownerUrl;
  const e = embedded;
  return { url, ownerUrl, embedded: e, close: async () => (e ? e.stop() : undefined) };
}

/**
 * The embedded cluster's two logins: its superuser owns the schema, and `fleet_runtime`
 * (password from the development secrets) is a member of fleet_app only; the API runs as it,
 * exactly as it would against a production database. fleet_app is created here when the
 * cluster was never migrated (migration 001 tolerates an existing role).
 */
async function ensureEmbeddedRuntimeLogin(ownerUrl: string, appPassword: string): Promise<string> {
  const client = new pg.Client({
    connectionString: ownerUrl,
    application_name: 'fleet-security-logins',
    connectionTimeoutMillis: DEFAULT_CONNECT_TIMEOUT_MS,
  });
  client.on('error', () => undefined);
  await connectClient(client);
  try {
    await client.query(`DO $$
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleet_app') THEN
          CREATE ROLE fleet_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
        END IF;
      END $$`);
    await createRuntimeLogin(client, EMBEDDED_RUNTIME_LOGIN, appPassword);
  } finally {
    await client.end();
  }
  const u = new URL(ownerUrl);
  u.username = EMBEDDED_RUNTIME_LOGIN;
  u.password = encodeURIComponent(appPassword);
  return u.toString();
}
