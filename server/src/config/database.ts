/**
 * The database settings by the server's rules: DATABASE_URL (or DATABASE_HOST and its parts),
 * DATABASE_SSL, MIGRATION_DATABASE_URL. The server (loadConfig) and the operations scripts
 * (ops/db-target.ts) both use these rules and the table's postgresUrl parser: one implementation.
 */
import { isLoopbackHost } from './checks';
import type { PostgresUrl } from './parsers';
import { readSettings, splitIssues, type Reading } from './read';
import type { SettingName } from './settings';
import type { ConfigIssue, DatabaseSsl, Env } from './types';

export interface DatabaseSettings {
  /** The runtime login's URL without TLS query parameters; null: none configured (embedded database outside production). */
  url: string | null;
  host: string | null;
  ssl: DatabaseSsl;
  caFile: string | null;
  /**
   * The schema owner's URL (MIGRATION_DATABASE_URL), used only by `npm run migrate` and the
   * operator commands that need the owner. Outside production it defaults to the runtime URL
   * (one login for everything in development); in production it is only ever set explicitly.
   */
  ownerUrl: string | null;
  ownerSsl: DatabaseSsl;
  ownerCaFile: string | null;
  /** true when MIGRATION_DATABASE_URL was given (two logins). */
  separateOwner: boolean;
}

/** The settings these rules read (a typed subset of the table). */
export const CONNECTION_SETTINGS: readonly SettingName[] = [
  'NODE_ENV',
  'DATABASE_URL',
  'DATABASE_HOST',
  'DATABASE_PORT',
  'DATABASE_NAME',
  'DATABASE_USER',
  'DATABASE_PASSWORD',
  'DATABASE_SSL',
  'MIGRATION_DATABASE_URL',
];

/** The runtime login from DATABASE_URL, or assembled from DATABASE_HOST and its parts. */
function runtimeLogin(r: Reading): { url: string | null; host: string | null; parsed: PostgresUrl | null } {
  const v = r.values;
  if (r.given('DATABASE_URL')) {
    const u = v.DATABASE_URL ?? null;
    return { url: u?.url ?? null, host: u?.host ?? null, parsed: u };
  }
  if (r.given('DATABASE_HOST')) {
    const h = r.raw('DATABASE_HOST') as string;
    const { DATABASE_NAME: name, DATABASE_USER: user, DATABASE_PASSWORD: pw } = v;
    if (!name) r.err('DATABASE_NAME', 'REQUIRED', 'is required when DATABASE_HOST is set');
    if (!user) r.err('DATABASE_USER', 'REQUIRED', 'is required when DATABASE_HOST is set');
    if (r.ctx.prod && !pw && !isLoopbackHost(h)) r.err('DATABASE_PASSWORD', 'REQUIRED', 'is required in production');
    if (!name || !user) return { url: null, host: null, parsed: null };
    const auth = pw ? `${encodeURIComponent(user)}:${encodeURIComponent(pw)}` : encodeURIComponent(user);
    const host = h.includes(':') && !h.startsWith('[') ? `[${h}]` : h;
    return { url: `postgres://${auth}@${host}:${v.DATABASE_PORT}/${encodeURIComponent(name)}`, host: h, parsed: null };
  }
  if (r.ctx.prod)
    r.err(
      'DATABASE_URL',
      'REQUIRED',
      'is required in production (or DATABASE_HOST, DATABASE_NAME, DATABASE_USER, DATABASE_PASSWORD); the embedded database is for development only',
    );
  return { url: null, host: null, parsed: null };
}

/** The TLS mode for a login: DATABASE_SSL, else the URL's sslmode, else verify-full in production for a remote host. */
function tlsMode(r: Reading, variable: string, host: string | null, fromUrl: string | null): DatabaseSsl {
  const prod = r.ctx.prod;
  const rawSsl = r.raw('DATABASE_SSL');
  let ssl: DatabaseSsl = prod && host && !isLoopbackHost(host) ? 'verify-full' : 'disable';
  if (rawSsl) {
    if (r.values.DATABASE_SSL) ssl = r.values.DATABASE_SSL;
    if (fromUrl !== null && fromUrl !== rawSsl)
      r.err(
        'DATABASE_SSL',
        'CONFLICT',
        `is ${rawSsl} but ${variable} says sslmode=${fromUrl}; set one, or make them agree`,
      );
  } else if (fromUrl === 'disable' || fromUrl === 'require' || fromUrl === 'verify-full') {
    ssl = fromUrl;
  }
  if (prod && host && !isLoopbackHost(host) && ssl === 'disable')
    r.err(
      'DATABASE_SSL',
      'INSECURE',
      `must be require or verify-full in production for a non-loopback database host${variable === 'DATABASE_URL' ? '' : ` (${variable})`}`,
    );
  return ssl;
}

/** Applies the database rules to settings read by readSettings. */
export function databaseRules(r: Reading): DatabaseSettings {
  const prod = r.ctx.prod;
  const runtime = runtimeLogin(r);
  const ssl = tlsMode(r, 'DATABASE_URL', runtime.host, runtime.parsed?.sslmode ?? null);
  if (prod && runtime.host && isLoopbackHost(runtime.host))
    r.warn('DATABASE_URL', 'NOTICE', 'points at a loopback host in production; make sure this is intended');

  let ownerUrl: string | null = prod ? null : runtime.url;
  let ownerSsl: DatabaseSsl = ssl;
  let ownerCaFile: string | null = runtime.parsed?.caFile ?? null;
  const owner = r.values.MIGRATION_DATABASE_URL;
  if (r.given('MIGRATION_DATABASE_URL')) {
    ownerUrl = owner?.url ?? null;
    ownerCaFile = owner?.caFile ?? null;
    ownerSsl = tlsMode(r, 'MIGRATION_DATABASE_URL', owner?.host ?? null, owner?.sslmode ?? null);
    if (owner && runtime.url && owner.user === new URL(runtime.url).username) {
      const message = SAME_LOGIN_MESSAGE;
      if (prod) r.err('MIGRATION_DATABASE_URL', 'CONFLICT', message);
      // Outside production the same URL twice is the one-login setup, not a mistake.
      else if (owner.url !== runtime.url) r.warn('MIGRATION_DATABASE_URL', 'CONFLICT', message);
    }
  }
  return {
    url: runtime.url,
    host: runtime.host,
    ssl,
    caFile: runtime.parsed?.caFile ?? null,
    ownerUrl,
    ownerSsl,
    ownerCaFile,
    // The same URL twice is one login (development): nothing separate to enforce.
    separateOwner: r.given('MIGRATION_DATABASE_URL') && ownerUrl !== runtime.url,
  };
}

/** MIGRATION_DATABASE_URL's issue when it logs in as DATABASE_URL's user. */
export const SAME_LOGIN_MESSAGE =
  'logs in as the same user as DATABASE_URL; the runtime login must be a separate, least-privileged one (npm run db:app-login)';

/**
 * The database settings alone, without the rest of the configuration (the operations scripts:
 * a backup job needs nothing but the database).
 */
export function parseDatabaseSettings(env: Env): DatabaseSettings & { errors: ConfigIssue[]; warnings: ConfigIssue[] } {
  const r = readSettings(env, { names: CONNECTION_SETTINGS });
  const settings = databaseRules(r);
  // NODE_ENV only selects the rules here (an unknown value reads as development); loadConfig reports it.
  return { ...settings, ...splitIssues(r.issues.filter((i) => i.variable !== 'NODE_ENV')) };
}
