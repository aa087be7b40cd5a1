/**
 * Which database the operations scripts (scripts/*.sh) talk to, resolved exactly as the
 * server does, but without loading the rest of the configuration (a backup job needs
 * nothing but the database and its backup key):
 *
 *   1. DATABASE_URL (postgres:// or postgresql://), query parameters sslmode, sslrootcert, host
 *   2. DATABASE_HOST + DATABASE_PORT (5432) + DATABASE_NAME + DATABASE_USER + DATABASE_PASSWORD
 *   3. outside production, the embedded development cluster that `npm start` runs: port from
 *      its postmaster.pid (under FLEET_DATA_DIR/.data/pg, or the temp-folder fallback used
 *      when that folder is not reachable by the postgres user), password from
 *      .data/dev-secrets.json. It must be running; this never starts or initialises it.
 *
 * DATABASE_SSL (disable, require, verify-full) maps to libpq's sslmode with the server's
 * default: verify-full in production for a non-loopback host, else disable; an sslmode in
 * DATABASE_URL applies when DATABASE_SSL is not set.
 *
 * The scripts receive the result as libpq environment variables (PGHOST, PGPORT, …) so the
 * password never appears on a command line (`ps` shows arguments to every local user).
 */
import fs from 'node:fs';
import path from 'node:path';
import { isLoopbackHost } from '../config';
import { clusterDir } from '../db/embedded';
import { DEV_SECRETS_FILE } from '../dev-secrets';
import { EMBEDDED_DB_NAME, runningEmbeddedPort } from '../runtime';

export type DbSource = 'DATABASE_URL' | 'DATABASE_HOST' | 'embedded';
const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;

export interface DbTarget {
  source: DbSource;
  host: string;
  port: number;
  database: string;
  user: string;
  password: string | null;
  sslmode: string | null;
  sslrootcert: string | null;
}

export class DbTargetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DbTargetError';
  }
}

type Env = Record<string, string | undefined>;

function get(env: Env, k: string): string | undefined {
  const v = env[k];
  return v === undefined || v.trim() === '' ? undefined : v;
}

function parsePort(raw: string | undefined, variable: string): number {
  if (raw === undefined || raw === '') return 5432;
  if (!/^\d{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 65535) throw new DbTargetError(`${variable}: the port must be a number between 1 and 65535`);
  return Number(raw);
}

function defaultSslMode(env: Env, host: string, fromUrl: string | null): string | null {
  const explicit = get(env, 'DATABASE_SSL');
  if (explicit) {
    if (explicit !== 'disable' && explicit !== 'require' && explicit !== 'verify-full') throw new DbTargetError('DATABASE_SSL: must be disable, require or verify-full');
    return explicit;
  }
  if (fromUrl) return fromUrl;
  const prod = (get(env, 'NODE_ENV') ?? 'development') === 'production';
  // A socket directory (host starting with /) is local.
  return prod && !host.startsWith('/') && !isLoopbackHost(host) ? 'verify-full' : 'disable';
}

function fromUrl(env: Env, raw: string): DbTarget {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new DbTargetError('DATABASE_URL: is not a URL (postgres://user:password@host:5432/dbname)');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new DbTargetError('DATABASE_URL: must start with postgres:// or postgresql://');
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!database) throw new DbTargetError('DATABASE_URL: names no database (add /dbname)');
  const queryHost = u.searchParams.get('host');
  const host = queryHost ?? u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new DbTargetError('DATABASE_URL: has no host');
  const urlSsl = u.searchParams.get('sslmode');
  if (urlSsl !== null && !(SSL_MODES as readonly string[]).includes(urlSsl)) throw new DbTargetError(`DATABASE_URL: sslmode must be one of ${SSL_MODES.join(', ')}`);
  return {
    source: 'DATABASE_URL',
    host,
    port: parsePort(u.port, 'DATABASE_URL'),
    database,
    user: u.username ? decodeURIComponent(u.username) : 'postgres',
    password: u.password ? decodeURIComponent(u.password) : null,
    sslmode: defaultSslMode(env, host, urlSsl),
    sslrootcert: u.searchParams.get('sslrootcert'),
  };
}

function fromParts(env: Env): DbTarget {
  const host = get(env, 'DATABASE_HOST') as string;
  const database = get(env, 'DATABASE_NAME');
  const user = get(env, 'DATABASE_USER');
  if (!database) throw new DbTargetError('DATABASE_NAME: is required when DATABASE_HOST is set');
  if (!user) throw new DbTargetError('DATABASE_USER: is required when DATABASE_HOST is set');
  return {
    source: 'DATABASE_HOST',
    host: host.replace(/^\[(.*)\]$/, '$1'),
    port: parsePort(get(env, 'DATABASE_PORT'), 'DATABASE_PORT'),
    database,
    user,
    password: get(env, 'DATABASE_PASSWORD') ?? null,
    sslmode: defaultSslMode(env, host, null),
    sslrootcert: null,
  };
}

function fromEmbedded(env: Env, cwd: string): DbTarget {
  const dataDir = path.resolve(cwd, get(env, 'FLEET_DATA_DIR') ?? '.data');
  const secretsFile = path.join(dataDir, DEV_SECRETS_FILE);
  let password: string | undefined;
  try {
    password = (JSON.parse(fs.readFileSync(secretsFile, 'utf8')) as { EMBEDDED_PG_PASSWORD?: string }).EMBEDDED_PG_PASSWORD;
  } catch {
    password = undefined;
  }
  if (!password) {
    throw new DbTargetError(`no database configured: set DATABASE_URL (or DATABASE_HOST and friends); the embedded development database is not set up (${secretsFile} is missing): run \`npm start\` once`);
  }
  const port = runningEmbeddedPort(clusterDir(path.join(dataDir, 'pg')));
  if (!port) throw new DbTargetError('no database configured: set DATABASE_URL, or start the embedded development database with `npm start` (it is not running)');
  return { source: 'embedded', host: '127.0.0.1', port, database: EMBEDDED_DB_NAME, user: 'postgres', password, sslmode: 'disable', sslrootcert: null };
}

export function resolveDbTarget(env: Env, opts: { cwd: string }): DbTarget {
  const url = get(env, 'DATABASE_URL');
  if (url) return fromUrl(env, url);
  if (get(env, 'DATABASE_HOST')) return fromParts(env);
  if ((get(env, 'NODE_ENV') ?? 'development') === 'production') {
    throw new DbTargetError('DATABASE_URL: is required in production (or DATABASE_HOST, DATABASE_NAME, DATABASE_USER, DATABASE_PASSWORD)');
  }
  return fromEmbedded(env, opts.cwd);
}

/** libpq environment variables for the target (PGPASSWORD only when it has one). */
export function toPgEnv(t: DbTarget): Record<string, string> {
  const out: Record<string, string> = { PGHOST: t.host, PGPORT: String(t.port), PGDATABASE: t.database, PGUSER: t.user };
  if (t.password !== null) out.PGPASSWORD = t.password;
  if (t.sslmode) out.PGSSLMODE = t.sslmode;
  if (t.sslrootcert) out.PGSSLROOTCERT = t.sslrootcert;
  return out;
}

function urlHost(h: string): string {
  return h.includes(':') ? `[${h}]` : h;
}

/** The full connection URL (includes the password: for programs, not for logs). */
export function toUrl(t: DbTarget): string {
  const auth = t.password !== null ? `${encodeURIComponent(t.user)}:${encodeURIComponent(t.password)}` : encodeURIComponent(t.user);
  const params = new URLSearchParams();
  if (t.sslmode) params.set('sslmode', t.sslmode);
  if (t.sslrootcert) params.set('sslrootcert', t.sslrootcert);
  if (t.host.startsWith('/')) params.set('host', t.host);
  const host = t.host.startsWith('/') ? 'localhost' : urlHost(t.host);
  const q = params.toString();
  return `postgres://${auth}@${host}:${t.port}/${encodeURIComponent(t.database)}${q ? `?${q}` : ''}`;
}

/** A description safe to print and log: no password. */
export function describe(t: DbTarget): string {
  return `${t.user}@${t.host.startsWith('/') ? t.host : urlHost(t.host)}:${t.port}/${t.database} (${t.source === 'embedded' ? 'embedded development database' : t.source})`;
}
