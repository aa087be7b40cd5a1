/**
 * Which database the operations scripts (scripts/*.sh) talk to, resolved by the server's own
 * rules (parseDatabaseSettings, config/database.ts, through the settings table's postgresUrl
 * parser: one implementation, the same refusals — only
 * sslmode disable/require/verify-full and sslrootcert as URL parameters, no host= or other
 * parameters, production TLS for non-loopback hosts), without loading the rest of the
 * configuration (a backup job needs nothing but the database and its backup key):
 *
 *   1. MIGRATION_DATABASE_URL, the schema owner: the scripts (backup, restore, evidence,
 *      session revocation) are owner operations (CONTRACT §7);
 *   2. else DATABASE_URL, or DATABASE_HOST + DATABASE_PORT (5432) + DATABASE_NAME +
 *      DATABASE_USER + DATABASE_PASSWORD (one login for everything);
 *   3. outside production, the embedded development cluster that `npm start` runs: port from
 *      its postmaster.pid (under FLEET_DATA_DIR/.data/pg, or the temp-folder fallback used
 *      when that folder is not reachable by the postgres user), password from
 *      .data/dev-secrets.json. It must be running; this never starts or initialises it.
 *
 * DATABASE_SSL (disable, require, verify-full) maps to libpq's sslmode with the server's
 * default: verify-full in production for a non-loopback host, else disable; an sslmode in the
 * URL applies when DATABASE_SSL is not set.
 *
 * The scripts receive the result as libpq environment variables (PGHOST, PGPORT, …) so the
 * password never appears on a command line (`ps` shows arguments to every local user).
 */
import fs from 'node:fs';
import path from 'node:path';
import { envText, parseDatabaseSettings, SAME_LOGIN_MESSAGE } from '../config';
import { clusterDir } from '../db/embedded';
import { DEV_SECRETS_FILE } from '../dev-secrets';
import { EMBEDDED_DB_NAME, runningEmbeddedPort } from '../runtime';

export type DbSource = 'MIGRATION_DATABASE_URL' | 'DATABASE_URL' | 'DATABASE_HOST' | 'embedded';

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

const get = envText;

/** The configured target, checked exactly as the server checks it. */
function fromSettings(env: Env): DbTarget {
  const owner = get(env, 'MIGRATION_DATABASE_URL');
  const configured = Boolean(get(env, 'DATABASE_URL') || get(env, 'DATABASE_HOST'));
  // An owner-only environment (a backup job) needs no runtime login: the owner stands in for it.
  const standIn = Boolean(owner && !configured);
  const s = parseDatabaseSettings(standIn ? { ...env, DATABASE_URL: owner } : env);
  // The stand-in is the owner itself: that it "logs in as DATABASE_URL's user" is no mistake here.
  const first = s.errors.find(
    (e) => !(standIn && e.variable === 'MIGRATION_DATABASE_URL' && e.message === SAME_LOGIN_MESSAGE),
  );
  if (first) throw new DbTargetError(`${first.variable}: ${first.message}`);
  const url = owner ? s.ownerUrl : s.url;
  if (!url)
    throw new DbTargetError(
      'DATABASE_URL: is required (or DATABASE_HOST, DATABASE_NAME, DATABASE_USER, DATABASE_PASSWORD)',
    );
  const u = new URL(url);
  return {
    source: owner ? 'MIGRATION_DATABASE_URL' : get(env, 'DATABASE_URL') ? 'DATABASE_URL' : 'DATABASE_HOST',
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port ? Number(u.port) : 5432,
    database: decodeURIComponent(u.pathname.replace(/^\//, '')),
    user: u.username ? decodeURIComponent(u.username) : 'postgres',
    password: u.password ? decodeURIComponent(u.password) : null,
    sslmode: owner ? s.ownerSsl : s.ssl,
    sslrootcert: owner ? s.ownerCaFile : s.caFile,
  };
}

function fromEmbedded(env: Env, cwd: string): DbTarget {
  const dataDir = path.resolve(cwd, get(env, 'FLEET_DATA_DIR') ?? '.data');
  const secretsFile = path.join(dataDir, DEV_SECRETS_FILE);
  let password: string | undefined;
  try {
    password = (JSON.parse(fs.readFileSync(secretsFile, 'utf8')) as { EMBEDDED_PG_PASSWORD?: string })
      .EMBEDDED_PG_PASSWORD;
  } catch {
    password = undefined;
  }
  if (!password) {
    throw new DbTargetError(
      `no database configured: set DATABASE_URL (or DATABASE_HOST and friends); the embedded development database is not set up (${secretsFile} is missing): run \`npm start\` once`,
    );
  }
  const port = runningEmbeddedPort(clusterDir(path.join(dataDir, 'pg')));
  if (!port)
    throw new DbTargetError(
      'no database configured: set DATABASE_URL, or start the embedded development database with `npm start` (it is not running)',
    );
  return {
    source: 'embedded',
    host: '127.0.0.1',
    port,
    database: EMBEDDED_DB_NAME,
    user: 'postgres',
    password,
    sslmode: 'disable',
    sslrootcert: null,
  };
}

export function resolveDbTarget(env: Env, opts: { cwd: string }): DbTarget {
  if (get(env, 'MIGRATION_DATABASE_URL') || get(env, 'DATABASE_URL') || get(env, 'DATABASE_HOST'))
    return fromSettings(env);
  if ((get(env, 'NODE_ENV') ?? 'development') === 'production') {
    throw new DbTargetError(
      'DATABASE_URL: is required in production (or DATABASE_HOST, DATABASE_NAME, DATABASE_USER, DATABASE_PASSWORD)',
    );
  }
  return fromEmbedded(env, opts.cwd);
}

/** libpq environment variables for the target (PGPASSWORD only when it has one). */
export function toPgEnv(t: DbTarget): Record<string, string> {
  const out: Record<string, string> = {
    PGHOST: t.host,
    PGPORT: String(t.port),
    PGDATABASE: t.database,
    PGUSER: t.user,
  };
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
  const auth =
    t.password !== null
      ? `${encodeURIComponent(t.user)}:${encodeURIComponent(t.password)}`
      : encodeURIComponent(t.user);
  const params = new URLSearchParams();
  if (t.sslmode) params.set('sslmode', t.sslmode);
  if (t.sslrootcert) params.set('sslrootcert', t.sslrootcert);
  const host = urlHost(t.host);
  const q = params.toString();
  return `postgres://${auth}@${host}:${t.port}/${encodeURIComponent(t.database)}${q ? `?${q}` : ''}`;
}

/** A description safe to print and log: no password. */
export function describe(t: DbTarget): string {
  return `${t.user}@${urlHost(t.host)}:${t.port}/${t.database} (${t.source === 'embedded' ? 'embedded development database' : t.source})`;
}
