/**
 * The environment schema and the typed, frozen configuration.
 * This is the only module that reads process.env. Every problem is collected and reported
 * at once, each naming its variable and what to do; secret values are never echoed.
 */
import { createHash, createHmac } from 'node:crypto';
import fs from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import { parseDurationMs } from './lib/duration';
import { CheckpointKeyError, parseEd25519PrivateKey } from './services/audit/signed-note';
import { NoteError, parseVerifierKey } from './services/audit/note-verify';
import { IDENTITY_SETTINGS, loadIdentitySettings, type IdentitySettings } from './config-identity';

export type NodeEnv = 'development' | 'test' | 'production';
export type DatabaseSsl = 'disable' | 'require' | 'verify-full';
export type SiemProvider = 'splunk' | 'datadog' | 'elastic' | 'webhook' | 'syslog' | 'sentinel';

export interface ConfigIssue {
  variable: string;
  message: string;
}

export interface Config {
  /** 'database': only the database, log and NODE_ENV settings were checked (see loadConfig). */
  scope: ConfigScope;
  env: NodeEnv;
  isProduction: boolean;
  port: number;
  host: string;
  /** Where development secrets, the embedded database and the dev issuer key live. */
  dataDir: string;
  bodyLimitBytes: number;
  /** SIGTERM: how long to keep serving (readiness 503, Connection: close) before closing the listener. */
  shutdownDrainDelayMs: number;
  database: {
    /** null: start the embedded PostgreSQL (development/test only). */
    url: string | null;
    host: string | null;
    ssl: DatabaseSsl;
    /** CA bundle for verify-full (sslrootcert in DATABASE_URL); null: the system's CAs. */
    caFile: string | null;
    poolSize: number;
    poolTimeoutMs: number;
    statementTimeoutMs: number;
    idleTimeoutMs: number;
    /** Role the application switches to on every connection (row-level security applies to it). */
    /** Role the connections assume; null when DATABASE_APP_ROLE=none (the login is already least-privileged). */
    appRole: string | null;
    applicationName: string;
    /** Superuser password of the embedded cluster (development secrets); null with an external database. */
    embeddedPassword: string | null;
    /** Password of the embedded cluster's runtime login (development secrets); null with an external database. */
    embeddedAppPassword: string | null;
    /** The schema owner's login (MIGRATION_DATABASE_URL; outside production DATABASE_URL when only one is given). */
    ownerUrl: string | null;
    ownerSsl: DatabaseSsl;
    ownerCaFile: string | null;
    /** MIGRATION_DATABASE_URL was given: DATABASE_URL is a separate runtime login. */
    separateOwner: boolean;
  };
  jwt: {
    secret: string;
    previousSecrets: readonly string[];
    /**
     * When each previous secret stops verifying (ms since the epoch; same order as
     * previousSecrets), from `secret@2026-12-31T00:00:00Z`; null: no expiry given (warned about).
     */
    previousSecretsNotAfter: readonly (number | null)[];
    expiresInSec: number;
    issuer: string;
    audience: string;
  };
  session: { idleTimeoutSec: number; absoluteTimeoutSec: number };
  idp: {
    /** Issuer base URL (https://tenant.auth0.com/), or null when the development issuer is used. */
    issuerUrl: string | null;
    clientId: string | null;
    /** Development only: the built-in issuer signs ID tokens with a key under dataDir. */
    devIssuer: boolean;
    clockToleranceSec: number;
    /** Deadline for each discovery / JWKS request to the identity provider (IDP_TIMEOUT_MS, default 5000). */
    timeoutMs: number;
    /** How long the issuer's key set is fresh before it is refreshed in the background (IDP_JWKS_CACHE_TTL, default 10m). */
    jwksCacheTtlMs: number;
  };
  keys: {
    keyVaultUrl: string | null;
    masterKeyName: string;
    fallbackKey: Buffer | null;
    /** Set when fallbackKey is the generated development key: the file it lives in. */
    fallbackKeyFile?: string | null;
    previousKeys: Readonly<Record<string, Buffer>>;
    cacheTtlSec: number;
  };
  bcryptCost: number;
  siem: {
    provider: SiemProvider | null;
    endpointUrl: string | null;
    apiKey: string | null;
    batchSize: number;
    flushIntervalMs: number;
    maxQueue: number;
    tlsCaFile: string | null;
    /** SIEM_EVENT_SCHEMA: what the platform destination receives (native, ocsf, ecs). */
    eventSchema: 'native' | 'ocsf' | 'ecs';
    /** SIEM_ALLOW_PRIVATE_DESTINATIONS: tenant streams may reach loopback/private addresses. */
    allowPrivateDestinations: boolean;
    /** SIEM_SPLUNK_ACK: Splunk events count as delivered only once HEC acknowledges indexing. */
    splunkAck: boolean;
    /** SIEM_SPLUNK_ACK_TIMEOUT_MS: unacknowledged events are resent after this long. */
    splunkAckTimeoutMs: number;
    /** SIEM_PROVIDER=sentinel: the DCR, its stream and the Entra ID application (null: DefaultAzureCredential). */
    sentinel: {
      dcrId: string | null;
      streamName: string | null;
      tenantId: string | null;
      clientId: string | null;
      clientSecret: string | null;
      authorityHost: string | null;
    };
  };
  /** Signed checkpoints of the audit Merkle trees (docs/AUDIT.md). */
  auditLog: {
    /** AUDIT_LOG_NAME: the middle of every checkpoint origin fleet-security-api/<name>/<tenant>. */
    name: string;
    checkpointIntervalMs: number;
    /** AZURE_KEYVAULT_CHECKPOINT_KEY_NAME: a Key Vault secret holding the PKCS#8 key (base64), or null. */
    checkpointKeyVaultName: string | null;
    /** AUDIT_CHECKPOINT_SIGNING_KEY: PKCS#8 base64 (or PEM); null when absent. */
    checkpointSigningKey: string | null;
    /** AUDIT_CHECKPOINT_TRUSTED_KEYS: verifier keys of earlier signing keys (after a rotation). */
    trustedKeys: readonly string[];
  };
  archive: {
    connectionString: string | null;
    accountUrl: string | null;
    container: string;
    immutabilityDays: number | null;
    intervalMs: number;
  };
  cors: { origins: readonly string[] };
  trustProxy: boolean | number | string;
  rateLimit: { windowMs: number; max: number; userMax: number };
  /**
   * Login lockout (lockout.ts): maxFailures / lockoutWindowMs per client network (IPv4 address,
   * IPv6 /56); emailMaxFailures / emailLockoutWindowMs per e-mail (a slower, separate threshold).
   */
  login: { maxFailures: number; lockoutWindowMs: number; emailMaxFailures: number; emailLockoutWindowMs: number };
  redisUrl: string | null;
  log: { level: string; dir: string | null };
  metricsToken: string | null;
  /**
   * Whether GET /metrics answers loopback callers without METRICS_TOKEN: only outside production
   * with no TRUST_PROXY (behind a proxy on the same host every request is "loopback"), unless
   * METRICS_ALLOW_LOOPBACK=true says the operator wants it anyway.
   */
  metricsAllowLoopback: boolean;
  csrfSecret: string;
  /** CONTRACT §9: admins of this tenant are platform admins (master key, key events). PLATFORM_TENANT, default `_platform`. */
  platformTenant: string;
  /** Access-token signing keys, refresh reuse grace, MFA policy (config-identity.ts). */
  identity: IdentitySettings;
}

export interface LoadResult {
  config: Config | null;
  errors: ConfigIssue[];
  warnings: ConfigIssue[];
}

type Env = Record<string, string | undefined>;

const WEAK_WORDS = [
  'secret',
  'changeme',
  'change_me',
  'change-me',
  'password',
  'passwd',
  'test',
  'default',
  'example',
  'sample',
  'admin',
  'qwerty',
  'letmein',
  'jwt',
  'token',
  'key',
  'your',
  'mysecret',
  'supersecret',
  'fleet',
  'dev',
  'demo',
  'insecure',
];

/** Why a secret is weak, or null when it looks strong. Never includes the value. */
export function weakSecretReason(value: string): string | null {
  if (value.length < 32) return 'is shorter than 32 characters';
  const lower = value.toLowerCase();
  const distinct = new Set(value).size;
  if (distinct < 10) return 'has too little variety (fewer than 10 distinct characters)';
  for (let len = 1; len <= 16; len++) {
    if (value.length % len === 0 && value.slice(0, len).repeat(value.length / len) === value)
      return 'is a repeated pattern';
  }
  let stripped = lower;
  for (const w of WEAK_WORDS) stripped = stripped.split(w).join('');
  stripped = stripped.replace(/[^a-z0-9]/g, '').replace(/(.)\1+/g, '$1');
  if (stripped !== lower.replace(/[^a-z0-9]/g, '').replace(/(.)\1+/g, '$1') && stripped.length < 20) {
    return 'is built from a known weak word (secret, changeme, password, test, default, …)';
  }
  const counts = new Map<string, number>();
  for (const ch of value) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let entropy = 0;
  for (const c of counts.values()) {
    const p = c / value.length;
    entropy -= p * Math.log2(p);
  }
  if (entropy < 3.0) return 'has low entropy';
  // Runs along the alphabet, the digits or a keyboard row, in either direction: when most
  // neighbouring characters are such steps, the value was typed, not generated.
  const rows = ['0123456789', 'abcdefghijklmnopqrstuvwxyz', '1234567890', 'qwertyuiop', 'asdfghjkl', 'zxcvbnm'];
  let steps = 0;
  for (let i = 1; i < lower.length; i++) {
    const a = lower[i - 1] as string;
    const b = lower[i] as string;
    if (rows.some((r) => r.includes(a + b) || r.includes(b + a))) steps += 1;
  }
  if (steps >= (lower.length - 1) * 0.5) return 'is a keyboard or alphabet sequence';
  return null;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);
export function isLoopbackHost(host: string | null | undefined): boolean {
  if (!host) return false;
  const h = host.toLowerCase();
  if (LOOPBACK_HOSTS.has(h) || h.endsWith('.localhost')) return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

function intIn(
  variable: string,
  raw: string | undefined,
  def: number,
  min: number,
  max: number,
  issues: ConfigIssue[],
): number {
  if (raw === undefined || raw.trim() === '') return def;
  if (!/^\d+$/.test(raw.trim())) {
    issues.push({ variable, message: `must be a whole number between ${min} and ${max}` });
    return def;
  }
  const n = Number(raw);
  if (n < min || n > max) issues.push({ variable, message: `must be between ${min} and ${max} (got ${n})` });
  return n;
}

function duration(
  variable: string,
  raw: string | undefined,
  def: string,
  minMs: number,
  maxMs: number,
  issues: ConfigIssue[],
): number {
  const ms = parseDurationMs(raw === undefined || raw.trim() === '' ? def : raw);
  if (ms === null) {
    issues.push({ variable, message: 'must be a duration such as 900, 900s, 15m, 24h or 7d' });
    return parseDurationMs(def) as number;
  }
  if (ms < minMs || ms > maxMs)
    issues.push({ variable, message: `must be between ${minMs / 1000}s and ${maxMs / 1000}s` });
  return ms;
}

/** Every environment variable the service or its scripts read under the prefixes below. */
const KNOWN_SETTINGS = new Set([
  'AUDIT_ARCHIVE_CONTAINER',
  'AUDIT_ARCHIVE_IMMUTABILITY_DAYS',
  'AUDIT_ARCHIVE_INTERVAL',
  'AUDIT_CHECKPOINT_INTERVAL',
  'AUDIT_CHECKPOINT_SIGNING_KEY',
  'AUDIT_CHECKPOINT_TRUSTED_KEYS',
  'AUDIT_LOG_NAME',
  'AZURE_KEYVAULT_CHECKPOINT_KEY_NAME',
  'AUTH0_CLIENT_ID',
  'AUTH0_DOMAIN',
  'AUTH0_ISSUER_BASE_URL',
  'AZURE_KEYVAULT_MASTER_KEY_NAME',
  'AZURE_KEYVAULT_URL',
  'AZURE_STORAGE_ACCOUNT_URL',
  'AZURE_STORAGE_CONNECTION_STRING',
  'BCRYPT_COST',
  'CORS_ORIGINS',
  'CSRF_SECRET',
  'DATABASE_APP_ROLE',
  'DATABASE_HOST',
  'DATABASE_NAME',
  'DATABASE_PASSWORD',
  'DATABASE_PORT',
  'DATABASE_SSL',
  'DATABASE_URL',
  'DATABASE_USER',
  'DB_POOL_SIZE',
  'DB_POOL_TIMEOUT',
  'DB_STATEMENT_TIMEOUT',
  'FLEET_DATA_DIR',
  'FLEET_DEV_ISSUER',
  'FLEET_ENCRYPTION_KEY',
  'FLEET_ENCRYPTION_PREVIOUS_KEYS',
  'IDP_JWKS_CACHE_TTL',
  'IDP_TIMEOUT_MS',
  'JWT_EXPIRES_IN',
  'JWT_PREVIOUS_SECRETS',
  'JWT_SECRET',
  'KEY_CACHE_TTL_SECONDS',
  'LOGIN_EMAIL_LOCKOUT_WINDOW',
  'LOGIN_EMAIL_MAX_FAILURES',
  'LOGIN_LOCKOUT_WINDOW',
  'LOGIN_MAX_FAILURES',
  'METRICS_ALLOW_LOOPBACK',
  'METRICS_TOKEN',
  'MIGRATION_DATABASE_URL',
  'PLATFORM_TENANT',
  'RATE_LIMIT_MAX',
  'RATE_LIMIT_USER_MAX',
  'RATE_LIMIT_WINDOW_MS',
  'SESSION_ABSOLUTE_TIMEOUT',
  'SESSION_IDLE_TIMEOUT',
  'SIEM_API_KEY',
  'SIEM_BATCH_SIZE',
  'SIEM_ENDPOINT_URL',
  'SIEM_FLUSH_INTERVAL_MS',
  'SIEM_MAX_QUEUE',
  'SIEM_PROVIDER',
  'SIEM_TLS_CA_FILE',
  'SHUTDOWN_DRAIN_DELAY_MS',
  'SIEM_EVENT_SCHEMA',
  'SIEM_ALLOW_PRIVATE_DESTINATIONS',
  'SIEM_SPLUNK_ACK',
  'SIEM_SPLUNK_ACK_TIMEOUT_MS',
  'SIEM_DCR_ID',
  'SIEM_STREAM_NAME',
  'SIEM_AZURE_TENANT_ID',
  'SIEM_AZURE_CLIENT_ID',
  'SIEM_AZURE_CLIENT_SECRET',
  'SIEM_AZURE_AUTHORITY_HOST',
  ...IDENTITY_SETTINGS,
]);
/**
 * Prefixes that belong to this service. Not AZURE_ as a whole (the Azure SDK's credential
 * reads AZURE_CLIENT_ID and friends), not FLEET_ as a whole (the scripts' own variables).
 */
const OWN_PREFIXES =
  /^(JWT_|DATABASE_|DB_|AUTH0_|SIEM_|AZURE_KEYVAULT_|AZURE_STORAGE_|AUDIT_ARCHIVE_|AUDIT_CHECKPOINT_|AUDIT_LOG_|RATE_LIMIT_|LOGIN_|SESSION_|KEY_CACHE_|CSRF_|CORS_|IDP_|METRICS_|BCRYPT_|FLEET_ENCRYPTION_|FLEET_DEV_|FLEET_DATA_|MFA_|REFRESH_REUSE_)/;

/** The known setting at edit distance 1 or 2, if any. */
function closestSetting(name: string): string | null {
  let best: string | null = null;
  let bestD = 3;
  for (const k of KNOWN_SETTINGS) {
    if (Math.abs(k.length - name.length) >= bestD) continue;
    const d = editDistance(k, name, bestD);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

function editDistance(a: string, b: string, cap: number): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(
        (prev[j] as number) + 1,
        (cur[j - 1] as number) + 1,
        (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      cur.push(v);
      rowMin = Math.min(rowMin, v);
    }
    if (rowMin >= cap) return cap;
    prev = cur;
  }
  return prev[b.length] as number;
}

const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** A host name, or an IP address (IPv6 with or without brackets). */
function isHostOrIp(h: string): boolean {
  return isIP(h.replace(/^\[|\]$/g, '')) !== 0 || HOSTNAME_RE.test(h);
}

/** One TRUST_PROXY list entry as Express (proxy-addr) accepts it: a name, an address, or address/prefix or /netmask. */
function isTrustProxyEntry(entry: string): boolean {
  if (['loopback', 'linklocal', 'uniquelocal'].includes(entry)) return true;
  const [addr, range, extra] = entry.split('/');
  if (extra !== undefined || !addr) return false;
  const family = isIP(addr);
  if (family === 0) return false;
  if (range === undefined) return true;
  if (/^\d{1,3}$/.test(range)) return Number(range) <= (family === 4 ? 32 : 128);
  return family === 4 && isIP(range) === 4;
}

/** A directory that exists, or could be created under the nearest existing directory. */
function directoryProblem(dir: string): string | null {
  let p = dir;
  for (;;) {
    try {
      return fs.statSync(p).isDirectory() ? null : `${p} is not a directory`;
    } catch {
      const parent = path.dirname(p);
      if (parent === p) return null;
      p = parent;
    }
  }
}

function isReadableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.R_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function parseUrl(raw: string): URL | null {
  try {
    return new URL(raw);
  } catch {
    return null;
  }
}

/** Decodes strict base64 (standard alphabet, padded) of exactly 32 bytes. */
export function decodeKey32(raw: string): Buffer | null {
  const v = raw.trim();
  if (!/^[A-Za-z0-9+/]{43}=$/.test(v)) return null;
  const buf = Buffer.from(v, 'base64');
  return buf.length === 32 && buf.toString('base64') === v ? buf : null;
}

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
  errors: ConfigIssue[];
  warnings: ConfigIssue[];
}

interface ParsedDbUrl {
  url: string | null;
  host: string | null;
  urlSslMode: string | null;
  caFile: string | null;
}

/** One postgres:// URL checked by the server's rules; query parameters other than sslmode and sslrootcert are refused. */
function parseDbUrl(
  variable: string,
  raw: string,
  prod: boolean,
  err: (v: string, m: string) => void,
  warn: (v: string, m: string) => void,
): ParsedDbUrl {
  const out: ParsedDbUrl = { url: null, host: null, urlSslMode: null, caFile: null };
  const u = parseUrl(raw);
  let password: string | null;
  try {
    password = u ? decodeURIComponent(u.password) : null;
    if (u) decodeURIComponent(u.username);
  } catch {
    // Never echo the value: it holds the password.
    err(variable, 'has a malformed percent-encoding (%XX) in its user or password');
    password = null;
  }
  if (!u || (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:')) {
    err(variable, 'must be a postgres:// or postgresql:// URL (postgres://user:password@host:5432/dbname)');
  } else if (!u.hostname) {
    err(variable, 'has no host');
  } else if (password !== null) {
    out.host = u.hostname;
    if (!u.pathname || u.pathname === '/') err(variable, 'names no database (add /dbname)');
    if (prod && !password && !isLoopbackHost(u.hostname))
      err(variable, 'has no password; production databases require authentication');
    if (
      password &&
      weakSecretReason(password) !== null &&
      ['password', 'postgres', 'secret', 'changeme', 'admin'].includes(password.toLowerCase())
    ) {
      (prod ? err : warn)(variable, 'uses a well-known default password; set a strong one');
    }
    // Query parameters would override what is checked here (the driver lets ?sslmode=disable,
    // ?host=… or ?password=… win over the validated settings): only the two TLS ones the
    // operations scripts also read are accepted, and they are taken out of the URL the
    // driver sees, so the TLS mode always comes from the checked value.
    for (const key of new Set(u.searchParams.keys())) {
      if (key !== 'sslmode' && key !== 'sslrootcert')
        err(
          variable,
          `query parameter "${key}" is not supported (only sslmode and sslrootcert; TLS is set with DATABASE_SSL)`,
        );
      else if (u.searchParams.getAll(key).length > 1) err(variable, `query parameter "${key}" is given more than once`);
    }
    out.urlSslMode = u.searchParams.get('sslmode');
    if (out.urlSslMode !== null && !['disable', 'require', 'verify-full'].includes(out.urlSslMode))
      err(variable, 'sslmode must be disable, require or verify-full');
    const rootCert = u.searchParams.get('sslrootcert');
    if (rootCert !== null) {
      if (!isReadableFile(rootCert)) err(variable, 'sslrootcert names no readable file');
      else out.caFile = rootCert;
    }
    u.searchParams.delete('sslmode');
    u.searchParams.delete('sslrootcert');
    out.url = u.toString();
  }
  return out;
}

/**
 * The database settings, by the server's rules: DATABASE_URL (or DATABASE_HOST and its
 * parts), DATABASE_SSL, MIGRATION_DATABASE_URL. The server and the operations scripts
 * (ops/db-target.ts) both call this; there is no second parser.
 */
export function parseDatabaseSettings(env: Env): DatabaseSettings {
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const err = (variable: string, message: string) => errors.push({ variable, message });
  const warn = (variable: string, message: string) => warnings.push({ variable, message });
  const get = (k: string): string | undefined => {
    const v = env[k];
    return v === undefined || v.trim() === '' ? undefined : v;
  };
  const prod = (get('NODE_ENV') ?? 'development') === 'production';

  let dbUrl: string | null = null;
  let dbHost: string | null = null;
  let urlSslMode: string | null = null;
  let dbCaFile: string | null = null;
  const rawDbUrl = get('DATABASE_URL');
  if (rawDbUrl) {
    const p = parseDbUrl('DATABASE_URL', rawDbUrl, prod, err, warn);
    ({ url: dbUrl, host: dbHost, urlSslMode, caFile: dbCaFile } = p);
  } else if (get('DATABASE_HOST')) {
    const h = get('DATABASE_HOST') as string;
    if (!isHostOrIp(h)) err('DATABASE_HOST', 'must be a host name or an IP address');
    const p = intIn('DATABASE_PORT', get('DATABASE_PORT'), 5432, 1, 65535, errors);
    const name = get('DATABASE_NAME');
    const user = get('DATABASE_USER');
    const pw = get('DATABASE_PASSWORD');
    if (!name) err('DATABASE_NAME', 'is required when DATABASE_HOST is set');
    if (!user) err('DATABASE_USER', 'is required when DATABASE_HOST is set');
    if (prod && !pw && !isLoopbackHost(h)) err('DATABASE_PASSWORD', 'is required in production');
    if (name && user) {
      const auth = pw ? `${encodeURIComponent(user)}:${encodeURIComponent(pw)}` : encodeURIComponent(user);
      dbUrl = `postgres://${auth}@${h.includes(':') && !h.startsWith('[') ? `[${h}]` : h}:${p}/${encodeURIComponent(name)}`;
      dbHost = h;
    }
  } else if (prod) {
    err(
      'DATABASE_URL',
      'is required in production (or DATABASE_HOST, DATABASE_NAME, DATABASE_USER, DATABASE_PASSWORD); the embedded database is for development only',
    );
  }
  const rawSsl = get('DATABASE_SSL');
  if (rawSsl && rawSsl !== 'disable' && rawSsl !== 'require' && rawSsl !== 'verify-full')
    err('DATABASE_SSL', 'must be disable, require or verify-full');
  const sslFor = (variable: string, host: string | null, fromUrl: string | null): DatabaseSsl => {
    let ssl: DatabaseSsl = prod && host && !isLoopbackHost(host) ? 'verify-full' : 'disable';
    if (rawSsl) {
      if (rawSsl === 'disable' || rawSsl === 'require' || rawSsl === 'verify-full') ssl = rawSsl;
      if (fromUrl !== null && fromUrl !== rawSsl)
        err('DATABASE_SSL', `is ${rawSsl} but ${variable} says sslmode=${fromUrl}; set one, or make them agree`);
    } else if (fromUrl === 'disable' || fromUrl === 'require' || fromUrl === 'verify-full') {
      ssl = fromUrl;
    }
    if (prod && host && !isLoopbackHost(host) && ssl === 'disable') {
      err(
        'DATABASE_SSL',
        `must be require or verify-full in production for a non-loopback database host${variable === 'DATABASE_URL' ? '' : ` (${variable})`}`,
      );
    }
    return ssl;
  };
  const ssl = sslFor('DATABASE_URL', dbHost, urlSslMode);
  if (prod && dbHost && isLoopbackHost(dbHost))
    warn('DATABASE_URL', 'points at a loopback host in production; make sure this is intended');

  let ownerUrl: string | null = prod ? null : dbUrl;
  let ownerSsl: DatabaseSsl = ssl;
  let ownerCaFile: string | null = dbCaFile;
  const rawOwner = get('MIGRATION_DATABASE_URL');
  if (rawOwner) {
    const p = parseDbUrl('MIGRATION_DATABASE_URL', rawOwner, prod, err, warn);
    ownerUrl = p.url;
    ownerCaFile = p.caFile;
    ownerSsl = sslFor('MIGRATION_DATABASE_URL', p.host, p.urlSslMode);
    if (p.url && dbUrl && p.url !== dbUrl) {
      const a = new URL(p.url);
      const b = new URL(dbUrl);
      if (a.username === b.username)
        (prod ? err : warn)(
          'MIGRATION_DATABASE_URL',
          'logs in as the same user as DATABASE_URL; the runtime login must be a separate, least-privileged one (npm run db:app-login)',
        );
    }
  }
  // The same URL twice is one login (development): nothing separate to enforce.
  const separateOwner = Boolean(rawOwner) && ownerUrl !== dbUrl;
  return {
    url: dbUrl,
    host: dbHost,
    ssl,
    caFile: dbCaFile,
    ownerUrl,
    ownerSsl,
    ownerCaFile,
    separateOwner,
    errors,
    warnings,
  };
}

/**
 * Turns an environment into a validated, frozen Config. `devSecrets` supplies generated
 * development secrets (see dev-secrets.ts); they never apply in production.
 */
/**
 * What a command needs. 'all': the server and the commands that build its services.
 * 'database': commands that only read or change the database (migrate, audit:verify). They
 * still check the database, log and NODE_ENV settings, and ignore problems in the others, so
 * an operator's environment with only DATABASE_URL (a cron job, a restore drill) is enough.
 */
export type ConfigScope = 'all' | 'database';
const DATABASE_SCOPE_VARIABLES =
  /^(NODE_ENV|DATABASE_[A-Z_]+|MIGRATION_DATABASE_URL|DB_[A-Z_]+|LOG_LEVEL|LOG_DIR|FLEET_DATA_DIR)$/;

export function loadConfig(
  env: Env,
  opts: { devSecrets?: Record<string, string>; cwd?: string; scope?: ConfigScope; now?: number } = {},
): LoadResult {
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const err = (variable: string, message: string) => errors.push({ variable, message });
  const warn = (variable: string, message: string) => warnings.push({ variable, message });
  const get = (k: string): string | undefined => {
    const v = env[k];
    return v === undefined || v.trim() === '' ? undefined : v;
  };

  const rawEnv = get('NODE_ENV') ?? 'development';
  let nodeEnv: NodeEnv = 'development';
  if (rawEnv === 'development' || rawEnv === 'test' || rawEnv === 'production') nodeEnv = rawEnv;
  else err('NODE_ENV', 'must be development, test or production');
  const prod = nodeEnv === 'production';
  const dev = opts.devSecrets && !prod ? opts.devSecrets : {};
  const secretFrom = (k: string): string | undefined => get(k) ?? dev[k];

  const port = intIn('PORT', get('PORT'), 3000, 0, 65535, errors);
  const host = get('HOST') ?? '127.0.0.1';
  if (!isHostOrIp(host)) err('HOST', 'must be an IP address or a host name to listen on (127.0.0.1, 0.0.0.0, ::)');
  const dataDir = path.resolve(opts.cwd ?? process.cwd(), get('FLEET_DATA_DIR') ?? '.data');

  // ---- database (one implementation, shared with the operations scripts: parseDatabaseSettings)
  const dbs = parseDatabaseSettings(env);
  errors.push(...dbs.errors);
  warnings.push(...dbs.warnings);
  const { url: dbUrl, host: dbHost, ssl, caFile: dbCaFile } = dbs;

  const poolSize = intIn('DB_POOL_SIZE', get('DB_POOL_SIZE'), 10, 1, 500, errors);
  const poolTimeoutSec = intIn('DB_POOL_TIMEOUT', get('DB_POOL_TIMEOUT'), 10, 1, 600, errors);
  const statementTimeoutMs = intIn('DB_STATEMENT_TIMEOUT', get('DB_STATEMENT_TIMEOUT'), 5000, 100, 600_000, errors);
  const rawRole = get('DATABASE_APP_ROLE') ?? 'fleet_app';
  if (rawRole !== 'fleet_app' && rawRole !== 'none')
    err(
      'DATABASE_APP_ROLE',
      'must be fleet_app (default: connections assume the least-privileged role the migrations create) or none (the login itself is least-privileged)',
    );
  const appRole = rawRole === 'none' ? null : 'fleet_app';
  if (prod && appRole === null)
    warn(
      'DATABASE_APP_ROLE',
      'is none: make sure DATABASE_URL logs in as a role without BYPASSRLS, superuser or table ownership',
    );

  // ---- JWT / sessions
  const jwtSecret = secretFrom('JWT_SECRET');
  if (!jwtSecret) {
    err(
      'JWT_SECRET',
      prod
        ? 'is required in production: generate one with `openssl rand -base64 48`'
        : 'is required: generate one with `openssl rand -base64 48`',
    );
  } else {
    const why = weakSecretReason(jwtSecret);
    if (why) err('JWT_SECRET', `${why}; generate one with \`openssl rand -base64 48\``);
  }
  const previousSecrets: string[] = [];
  const previousSecretsNotAfter: (number | null)[] = [];
  const nowMs = opts.now ?? Date.now();
  const jwtLifetimeMs = parseDurationMs(get('JWT_EXPIRES_IN') ?? '15m') ?? 900_000;
  (get('JWT_PREVIOUS_SECRETS') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .forEach((entry, i) => {
      // `secret@2026-12-31T00:00:00Z`: the suffix after the last @ is the expiry when it starts
      // with a digit (generated secrets are base64: no @).
      const at = entry.lastIndexOf('@');
      const suffix = at > 0 ? entry.slice(at + 1) : '';
      if (at > 0 && /^\d/.test(suffix)) {
        const ms = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/.test(suffix)
          ? Date.parse(suffix)
          : NaN;
        if (Number.isNaN(ms)) {
          err(
            'JWT_PREVIOUS_SECRETS',
            `entry ${i + 1} has an invalid expiry after "@": use an ISO 8601 time such as 2026-12-31T00:00:00Z`,
          );
          return;
        }
        previousSecrets.push(entry.slice(0, at));
        previousSecretsNotAfter.push(ms);
        if (ms <= nowMs)
          warn(
            'JWT_PREVIOUS_SECRETS',
            `entry ${i + 1} expired at ${new Date(ms).toISOString()} and is refused; remove it`,
          );
        else if (ms - nowMs > jwtLifetimeMs + 86_400_000) {
          warn(
            'JWT_PREVIOUS_SECRETS',
            `entry ${i + 1} stays valid until ${new Date(ms).toISOString()}, longer than the access-token lifetime + 24 h: tokens signed with it expire within JWT_EXPIRES_IN, so retire it sooner`,
          );
        }
      } else {
        previousSecrets.push(entry);
        previousSecretsNotAfter.push(null);
        warn(
          'JWT_PREVIOUS_SECRETS',
          `entry ${i + 1} has no expiry and is accepted forever: write it as secret@<ISO time> (e.g. the rotation time + JWT_EXPIRES_IN + 24 h)`,
        );
      }
    });
  previousSecrets.forEach((s, i) => {
    const why = weakSecretReason(s);
    if (why) err('JWT_PREVIOUS_SECRETS', `entry ${i + 1} ${why}`);
    if (jwtSecret && s === jwtSecret) warn('JWT_PREVIOUS_SECRETS', `entry ${i + 1} equals JWT_SECRET; remove it`);
  });
  const csrfRaw = get('CSRF_SECRET');
  if (csrfRaw) {
    const why = weakSecretReason(csrfRaw);
    if (why)
      err(
        'CSRF_SECRET',
        `${why}; generate one with \`openssl rand -base64 48\` (or leave it unset: it is then derived from JWT_SECRET)`,
      );
  }
  const expiresMs = duration('JWT_EXPIRES_IN', get('JWT_EXPIRES_IN'), '15m', 60_000, 24 * 3_600_000, errors);
  if (expiresMs > 3_600_000)
    warn('JWT_EXPIRES_IN', 'is longer than 1h; short access tokens limit the damage of a leak');
  const idleMs = duration('SESSION_IDLE_TIMEOUT', get('SESSION_IDLE_TIMEOUT'), '30m', 60_000, 30 * 86_400_000, errors);
  const absMs = duration(
    'SESSION_ABSOLUTE_TIMEOUT',
    get('SESSION_ABSOLUTE_TIMEOUT'),
    '24h',
    60_000,
    90 * 86_400_000,
    errors,
  );
  if (absMs < idleMs) err('SESSION_ABSOLUTE_TIMEOUT', 'must not be shorter than SESSION_IDLE_TIMEOUT');
  const identity = loadIdentitySettings({ get, dev, prod, now: Date.now(), err, warn });

  // ---- identity provider
  let issuerUrl: string | null = null;
  const rawIssuer =
    get('AUTH0_ISSUER_BASE_URL') ??
    (get('AUTH0_DOMAIN')
      ? `https://${(get('AUTH0_DOMAIN') as string).replace(/^https?:\/\//, '').replace(/\/+$/, '')}/`
      : undefined);
  const issuerVar = get('AUTH0_ISSUER_BASE_URL') ? 'AUTH0_ISSUER_BASE_URL' : 'AUTH0_DOMAIN';
  // AUTH0_DOMAIN is a domain (optionally written as https://domain/); anything else would be
  // rewritten into a wrong issuer URL (ftp://x became https://ftp//x/).
  const [domainHost, domainPort, domainExtra] = (get('AUTH0_DOMAIN') ?? '')
    .trim()
    .replace(/^https:\/\//, '')
    .replace(/\/+$/, '')
    .split(':');
  if (issuerVar === 'AUTH0_DOMAIN' && get('AUTH0_DOMAIN')) {
    if (
      domainExtra !== undefined ||
      !domainHost ||
      !HOSTNAME_RE.test(domainHost) ||
      (domainPort !== undefined && !/^\d{1,5}$/.test(domainPort))
    ) {
      err(
        'AUTH0_DOMAIN',
        'must be a domain such as your-tenant.eu.auth0.com (or use AUTH0_ISSUER_BASE_URL for a full URL)',
      );
    }
  }
  if (rawIssuer) {
    const u = parseUrl(rawIssuer);
    if (!u || (u.protocol !== 'https:' && u.protocol !== 'http:'))
      err(issuerVar, 'must be an https URL or a domain such as your-tenant.auth0.com');
    else if (u.protocol === 'http:' && (prod || !isLoopbackHost(u.hostname)))
      err(issuerVar, 'must use https (http is accepted only for loopback hosts outside production)');
    else if (u.username || u.password || u.search || u.hash)
      err(issuerVar, 'must not contain credentials, a query or a fragment');
    // The issuer exactly as written (OIDC Discovery §4.3 compares it verbatim): an issuer with
    // no path and no trailing slash (Google, Okta, oidc-provider) stays without one.
    else issuerUrl = u.pathname === '/' && !rawIssuer.trim().endsWith('/') ? u.toString().slice(0, -1) : u.toString();
  }
  const clientId = get('AUTH0_CLIENT_ID') ?? null;
  if (clientId !== null && clientId !== clientId.trim())
    err('AUTH0_CLIENT_ID', "has leading or trailing spaces (it must equal the ID tokens' aud exactly)");
  const issuerBase = get('AUTH0_ISSUER_BASE_URL');
  if (domainHost && issuerBase) {
    const host = parseUrl(issuerBase)?.hostname;
    if (host && host.toLowerCase() !== domainHost.toLowerCase())
      warn('AUTH0_DOMAIN', 'names another host than AUTH0_ISSUER_BASE_URL, which is the one used; remove one of them');
  }
  if (issuerUrl && !clientId)
    err('AUTH0_CLIENT_ID', 'is required with an identity provider (the expected audience of ID tokens)');
  const devIssuerRaw = get('FLEET_DEV_ISSUER');
  if (devIssuerRaw !== undefined && !bool.safeParse(devIssuerRaw).success)
    err('FLEET_DEV_ISSUER', 'must be true or false (or 1/0, yes/no)');
  const devIssuerRequested = devIssuerRaw ? bool.safeParse(devIssuerRaw).data === true : false;
  if (prod && !issuerUrl && !rawIssuer)
    err('AUTH0_DOMAIN', 'is required in production (or AUTH0_ISSUER_BASE_URL), with AUTH0_CLIENT_ID');
  if (prod && devIssuerRequested) err('FLEET_DEV_ISSUER', 'the development issuer cannot be enabled in production');
  const devIssuer = !prod && !issuerUrl && (nodeEnv === 'development' || devIssuerRequested);
  const idpTimeoutMs = intIn('IDP_TIMEOUT_MS', get('IDP_TIMEOUT_MS'), 5000, 100, 60_000, errors);
  const jwksCacheTtlMs = duration('IDP_JWKS_CACHE_TTL', get('IDP_JWKS_CACHE_TTL'), '10m', 1000, 86_400_000, errors);

  // ---- keys
  const kvRaw = get('AZURE_KEYVAULT_URL');
  let keyVaultUrl: string | null = null;
  if (kvRaw) {
    const u = parseUrl(kvRaw);
    if (!u || u.protocol !== 'https:')
      err('AZURE_KEYVAULT_URL', 'must be an https URL such as https://my-vault.vault.azure.net');
    else keyVaultUrl = u.toString().replace(/\/+$/, '');
  }
  const masterKeyName = get('AZURE_KEYVAULT_MASTER_KEY_NAME') ?? 'fleet-master-key';
  if (!/^[0-9a-zA-Z-]{1,127}$/.test(masterKeyName))
    err('AZURE_KEYVAULT_MASTER_KEY_NAME', 'must be 1-127 letters, digits or dashes (a Key Vault secret name)');
  let fallbackKey: Buffer | null = null;
  const rawKey = secretFrom('FLEET_ENCRYPTION_KEY');
  if (rawKey) {
    fallbackKey = decodeKey32(rawKey);
    if (!fallbackKey)
      err(
        'FLEET_ENCRYPTION_KEY',
        'must be base64 of exactly 32 random bytes: generate one with `openssl rand -base64 32`',
      );
    else if (new Set(fallbackKey).size < 8) err('FLEET_ENCRYPTION_KEY', 'has too little variety to be a random key');
  }
  const previousKeys: Record<string, Buffer> = {};
  const previousEntries = (get('FLEET_ENCRYPTION_PREVIOUS_KEYS') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const [i, entry] of previousEntries.entries()) {
    const idx = entry.indexOf(':');
    const version = idx > 0 ? entry.slice(0, idx) : '';
    const key = idx > 0 ? decodeKey32(entry.slice(idx + 1)) : null;
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(version) || !key) {
      err(
        'FLEET_ENCRYPTION_PREVIOUS_KEYS',
        `entry ${i + 1} must be version:base64key (the key 32 bytes); the list is comma-separated`,
      );
      break;
    }
    if (Object.hasOwn(previousKeys, version)) {
      // The later entry would silently replace the earlier key: data under it would be lost.
      err('FLEET_ENCRYPTION_PREVIOUS_KEYS', `entry ${i + 1} repeats version ${version}`);
      break;
    }
    if (new Set(key).size < 8) {
      err('FLEET_ENCRYPTION_PREVIOUS_KEYS', `entry ${i + 1} has too little variety to be a random key`);
      break;
    }
    previousKeys[version] = key;
  }
  if (!keyVaultUrl && !fallbackKey && !rawKey) {
    err(
      'FLEET_ENCRYPTION_KEY',
      'no master key source: set AZURE_KEYVAULT_URL (recommended) or FLEET_ENCRYPTION_KEY (`openssl rand -base64 32`)',
    );
  }
  if (prod && !keyVaultUrl && fallbackKey)
    warn(
      'AZURE_KEYVAULT_URL',
      'is not set: the master key comes from FLEET_ENCRYPTION_KEY; keys belong in a vault in production',
    );
  const cacheTtlSec = intIn('KEY_CACHE_TTL_SECONDS', get('KEY_CACHE_TTL_SECONDS'), 3600, 1, 86_400, errors);
  const bcryptCost = intIn('BCRYPT_COST', get('BCRYPT_COST'), 12, 12, 17, errors);

  // ---- SIEM
  let siemProvider: SiemProvider | null = null;
  const rawProvider = get('SIEM_PROVIDER');
  if (rawProvider) {
    if (['splunk', 'datadog', 'elastic', 'webhook', 'syslog', 'sentinel'].includes(rawProvider))
      siemProvider = rawProvider as SiemProvider;
    else err('SIEM_PROVIDER', 'must be one of splunk, datadog, elastic, webhook, syslog, sentinel');
  } else if (prod) {
    warn('SIEM_PROVIDER', 'is not set: security events are only kept in the database; configure a SIEM for alerting');
  }
  const siemUrlRaw = get('SIEM_ENDPOINT_URL') ?? null;
  let siemUrl: string | null = null;
  if (siemProvider) {
    if (!siemUrlRaw) err('SIEM_ENDPOINT_URL', `is required with SIEM_PROVIDER=${siemProvider}`);
    else {
      const u = parseUrl(siemUrlRaw);
      const okProtocols = siemProvider === 'syslog' ? ['tcp:', 'tls:'] : ['https:', 'http:'];
      if (!u || !okProtocols.includes(u.protocol)) {
        err(
          'SIEM_ENDPOINT_URL',
          siemProvider === 'syslog' ? 'must be tcp://host:port or tls://host:port' : 'must be an https URL',
        );
      } else if (prod && (u.protocol === 'http:' || u.protocol === 'tcp:') && !isLoopbackHost(u.hostname)) {
        err('SIEM_ENDPOINT_URL', 'must use TLS (https:// or tls://) in production');
      } else siemUrl = siemUrlRaw;
    }
    if (['splunk', 'datadog', 'webhook'].includes(siemProvider) && !get('SIEM_API_KEY')) {
      err('SIEM_API_KEY', `is required with SIEM_PROVIDER=${siemProvider}`);
    }
  }
  const siemCaFile = get('SIEM_TLS_CA_FILE') ?? null;
  if (siemCaFile && !isReadableFile(siemCaFile)) err('SIEM_TLS_CA_FILE', 'names no readable file');
  const siemBatch = intIn('SIEM_BATCH_SIZE', get('SIEM_BATCH_SIZE'), 10, 1, 1000, errors);
  const siemFlush = intIn('SIEM_FLUSH_INTERVAL_MS', get('SIEM_FLUSH_INTERVAL_MS'), 30_000, 50, 3_600_000, errors);
  const siemMaxQueue = intIn('SIEM_MAX_QUEUE', get('SIEM_MAX_QUEUE'), 100_000, 100, 10_000_000, errors);
  const siemSchemaRaw = get('SIEM_EVENT_SCHEMA') ?? 'native';
  const siemEventSchema = (['native', 'ocsf', 'ecs'] as const).find((v) => v === siemSchemaRaw) ?? 'native';
  if (siemEventSchema !== siemSchemaRaw) err('SIEM_EVENT_SCHEMA', 'must be one of native, ocsf, ecs');
  else if (siemEventSchema !== 'native' && siemProvider === 'syslog')
    warn('SIEM_EVENT_SCHEMA', 'does not apply to syslog: CEF is sent as is');
  const allowPrivateRaw = get('SIEM_ALLOW_PRIVATE_DESTINATIONS');
  if (allowPrivateRaw !== undefined && !bool.safeParse(allowPrivateRaw).success)
    err('SIEM_ALLOW_PRIVATE_DESTINATIONS', 'must be true or false (or 1/0, yes/no)');
  const allowPrivateDestinations = allowPrivateRaw ? bool.safeParse(allowPrivateRaw).data === true : false;
  const splunkAckRaw = get('SIEM_SPLUNK_ACK');
  if (splunkAckRaw !== undefined && !bool.safeParse(splunkAckRaw).success)
    err('SIEM_SPLUNK_ACK', 'must be true or false (or 1/0, yes/no)');
  const splunkAck = splunkAckRaw ? bool.safeParse(splunkAckRaw).data === true : false;
  if (splunkAck && siemProvider !== 'splunk') warn('SIEM_SPLUNK_ACK', 'only applies with SIEM_PROVIDER=splunk');
  const splunkAckTimeoutMs = intIn(
    'SIEM_SPLUNK_ACK_TIMEOUT_MS',
    get('SIEM_SPLUNK_ACK_TIMEOUT_MS'),
    30_000,
    100,
    600_000,
    errors,
  );
  const sentinel = {
    dcrId: get('SIEM_DCR_ID') ?? null,
    streamName: get('SIEM_STREAM_NAME') ?? null,
    tenantId: get('SIEM_AZURE_TENANT_ID') ?? null,
    clientId: get('SIEM_AZURE_CLIENT_ID') ?? null,
    clientSecret: get('SIEM_AZURE_CLIENT_SECRET') ?? null,
    authorityHost: get('SIEM_AZURE_AUTHORITY_HOST') ?? null,
  };
  if (siemProvider === 'sentinel') {
    if (siemUrl && parseUrl(siemUrl)?.protocol !== 'https:')
      err('SIEM_ENDPOINT_URL', 'must be the https:// data collection endpoint with SIEM_PROVIDER=sentinel');
    if (!sentinel.dcrId)
      err(
        'SIEM_DCR_ID',
        'is required with SIEM_PROVIDER=sentinel (the immutable id of the data collection rule, dcr-…)',
      );
    else if (!/^dcr-[0-9a-f]{32}$/.test(sentinel.dcrId))
      err('SIEM_DCR_ID', 'must be a data collection rule immutable id: dcr- and 32 hex digits');
    if (!sentinel.streamName)
      err('SIEM_STREAM_NAME', 'is required with SIEM_PROVIDER=sentinel (e.g. Custom-FleetSecurityEvents)');
    else if (!/^Custom-[A-Za-z0-9_]{1,100}$/.test(sentinel.streamName))
      err('SIEM_STREAM_NAME', 'must be a custom stream name: Custom- and letters, digits or _');
    const set = [sentinel.tenantId, sentinel.clientId, sentinel.clientSecret].filter(Boolean).length;
    if (set !== 0 && set !== 3)
      err(
        'SIEM_AZURE_CLIENT_SECRET',
        'SIEM_AZURE_TENANT_ID, SIEM_AZURE_CLIENT_ID and SIEM_AZURE_CLIENT_SECRET go together (or none: managed identity)',
      );
    if (sentinel.authorityHost && parseUrl(sentinel.authorityHost)?.protocol !== 'https:')
      err('SIEM_AZURE_AUTHORITY_HOST', 'must be an https:// URL (e.g. https://login.microsoftonline.us)');
  }
  if (allowPrivateDestinations && prod)
    warn(
      'SIEM_ALLOW_PRIVATE_DESTINATIONS',
      'is on in production: tenant audit streams may reach internal addresses (SSRF)',
    );

  // ---- archive
  const storageConn = get('AZURE_STORAGE_CONNECTION_STRING') ?? null;
  const storageUrlRaw = get('AZURE_STORAGE_ACCOUNT_URL') ?? null;
  let storageUrl: string | null = null;
  if (storageUrlRaw) {
    const u = parseUrl(storageUrlRaw);
    if (!u || (u.protocol !== 'https:' && !(u.protocol === 'http:' && !prod && isLoopbackHost(u.hostname)))) {
      err('AZURE_STORAGE_ACCOUNT_URL', 'must be an https URL such as https://account.blob.core.windows.net');
    } else storageUrl = storageUrlRaw;
  }
  if (storageConn && !/AccountName=|UseDevelopmentStorage=true|BlobEndpoint=/i.test(storageConn)) {
    err(
      'AZURE_STORAGE_CONNECTION_STRING',
      'does not look like an Azure Storage connection string (AccountName=…;AccountKey=…)',
    );
  } else if (storageConn) {
    // Key=value pairs; values may contain '=' (base64 keys, SAS tokens). Never echoed.
    const parts = new Map<string, string>();
    for (const pair of storageConn.split(';')) {
      const i = pair.indexOf('=');
      if (i > 0) parts.set(pair.slice(0, i).trim().toLowerCase(), pair.slice(i + 1).trim());
    }
    const dev = parts.get('usedevelopmentstorage')?.toLowerCase() === 'true';
    if (!dev && !parts.get('accountkey') && !parts.get('sharedaccesssignature')) {
      err('AZURE_STORAGE_CONNECTION_STRING', 'has no credential (AccountKey=… or SharedAccessSignature=…)');
    }
    const protocol = parts.get('defaultendpointsprotocol')?.toLowerCase();
    const blobEndpoint = parts.get('blobendpoint');
    const endpoint = blobEndpoint ? parseUrl(blobEndpoint) : null;
    if (blobEndpoint && (!endpoint || (endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:')))
      err('AZURE_STORAGE_CONNECTION_STRING', 'BlobEndpoint must be an https URL');
    if (prod && !dev && (protocol === 'http' || endpoint?.protocol === 'http:')) {
      err(
        'AZURE_STORAGE_CONNECTION_STRING',
        'must use https in production (DefaultEndpointsProtocol=https, BlobEndpoint=https://…): the key or SAS would travel in clear text',
      );
    }
  }
  if (prod && storageConn && /UseDevelopmentStorage=true/i.test(storageConn))
    err('AZURE_STORAGE_CONNECTION_STRING', 'points at the storage emulator in production');
  const container = get('AUDIT_ARCHIVE_CONTAINER') ?? 'audit-archive';
  if (!/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/.test(container))
    err('AUDIT_ARCHIVE_CONTAINER', 'must be a valid container name (3-63 lower-case letters, digits, single dashes)');
  const immutabilityRaw = get('AUDIT_ARCHIVE_IMMUTABILITY_DAYS');
  const immutabilityDays = immutabilityRaw
    ? intIn('AUDIT_ARCHIVE_IMMUTABILITY_DAYS', immutabilityRaw, 0, 1, 36500, errors)
    : null;
  const archiveInterval = duration(
    'AUDIT_ARCHIVE_INTERVAL',
    get('AUDIT_ARCHIVE_INTERVAL'),
    '1h',
    10_000,
    7 * 86_400_000,
    errors,
  );
  if (prod && !storageConn && !storageUrl)
    warn('AZURE_STORAGE_CONNECTION_STRING', 'is not set: no immutable audit archive is written');
  if (prod && (storageConn || storageUrl) && immutabilityDays === null)
    warn(
      'AUDIT_ARCHIVE_IMMUTABILITY_DAYS',
      'is not set: archived blobs are write-once by name only, not under an immutability policy',
    );

  // ---- signed audit checkpoints
  const auditLogName = get('AUDIT_LOG_NAME') ?? 'default';
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(auditLogName))
    err(
      'AUDIT_LOG_NAME',
      'must be 1-64 letters, digits, dots, dashes or underscores (it becomes part of every checkpoint origin)',
    );
  const checkpointInterval = duration(
    'AUDIT_CHECKPOINT_INTERVAL',
    get('AUDIT_CHECKPOINT_INTERVAL'),
    '1m',
    1_000,
    3_600_000,
    errors,
  );
  const checkpointKvName = get('AZURE_KEYVAULT_CHECKPOINT_KEY_NAME') ?? null;
  if (checkpointKvName !== null) {
    if (!/^[0-9a-zA-Z-]{1,127}$/.test(checkpointKvName))
      err('AZURE_KEYVAULT_CHECKPOINT_KEY_NAME', 'must be 1-127 letters, digits or dashes (a Key Vault secret name)');
    if (!kvRaw) err('AZURE_KEYVAULT_CHECKPOINT_KEY_NAME', 'needs AZURE_KEYVAULT_URL (the vault that holds it)');
  }
  const checkpointKeyRaw = secretFrom('AUDIT_CHECKPOINT_SIGNING_KEY') ?? null;
  if (checkpointKeyRaw !== null) {
    try {
      parseEd25519PrivateKey(checkpointKeyRaw);
    } catch (e) {
      err(
        'AUDIT_CHECKPOINT_SIGNING_KEY',
        `${e instanceof CheckpointKeyError ? e.message : 'is not a usable key'}; generate one with \`openssl genpkey -algorithm ed25519 -outform DER | base64 -w0\``,
      );
    }
  }
  const trustedKeys = (get('AUDIT_CHECKPOINT_TRUSTED_KEYS') ?? '').split(/[\s,]+/).filter(Boolean);
  for (const [i, k] of trustedKeys.entries()) {
    try {
      parseVerifierKey(k);
    } catch (e) {
      err(
        'AUDIT_CHECKPOINT_TRUSTED_KEYS',
        `entry ${i + 1} ${e instanceof NoteError ? e.message : 'is not a verifier key'} (expected name+keyid+base64 key, as GET /audit/checkpoint-key prints)`,
      );
      break;
    }
  }
  if (checkpointKvName !== null && get('AUDIT_CHECKPOINT_SIGNING_KEY'))
    warn(
      'AUDIT_CHECKPOINT_SIGNING_KEY',
      'is ignored: the checkpoint key comes from AZURE_KEYVAULT_CHECKPOINT_KEY_NAME',
    );
  if (prod && checkpointKvName === null && checkpointKeyRaw === null)
    warn(
      'AZURE_KEYVAULT_CHECKPOINT_KEY_NAME',
      'is not set (nor AUDIT_CHECKPOINT_SIGNING_KEY): no signed audit checkpoints are published, and a database owner could rewrite audit history undetected',
    );

  // ---- HTTP
  const originsRaw = get('CORS_ORIGINS') ?? get('FRONTEND_URL');
  const origins: string[] = [];
  for (const o of (originsRaw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const u = parseUrl(o);
    const variable = get('CORS_ORIGINS') ? 'CORS_ORIGINS' : 'FRONTEND_URL';
    if (o === '*') err(variable, 'must list explicit origins; * is not allowed with credentials');
    else if (
      !u ||
      (u.protocol !== 'https:' && u.protocol !== 'http:') ||
      u.username ||
      u.password ||
      u.search ||
      u.hash ||
      (u.pathname !== '/' && u.pathname !== '')
    ) {
      // An entry with credentials is not echoed.
      err(
        variable,
        `entry ${u?.username || u?.password ? `${origins.length + 1} (with credentials)` : `"${o}"`} must be an origin such as https://app.example.com (no path, query or credentials)`,
      );
    } else if (prod && u.protocol !== 'https:') err(variable, `entry "${o}" must use https in production`);
    else origins.push(u.origin);
  }
  if (!originsRaw && !prod) origins.push('http://localhost:3000', 'http://localhost:5173');
  if (prod && origins.length === 0 && !originsRaw)
    warn('CORS_ORIGINS', 'is not set: browsers on other origins cannot call the API');
  if (
    originsRaw &&
    origins.length === 0 &&
    errors.every((i) => i.variable !== 'CORS_ORIGINS' && i.variable !== 'FRONTEND_URL')
  ) {
    warn(
      get('CORS_ORIGINS') ? 'CORS_ORIGINS' : 'FRONTEND_URL',
      'lists no origin: browsers on other origins cannot call the API',
    );
  }

  let trustProxy: boolean | number | string = false;
  const tp = get('TRUST_PROXY');
  if (tp) {
    if (/^\d+$/.test(tp)) {
      trustProxy = Number(tp);
      if (trustProxy > 5)
        warn(
          'TRUST_PROXY',
          `trusts ${tp} proxy hops: more hops than there are proxies lets clients choose their IP (X-Forwarded-For); set the real number`,
        );
    } else if (tp === 'true' || tp === 'false') {
      trustProxy = tp === 'true';
      if (trustProxy && prod)
        err(
          'TRUST_PROXY',
          'true trusts every X-Forwarded-For hop (clients choose their IP, the rate limits and the login lockout); in production give the number of proxy hops (1) or their addresses/subnets (10.0.0.0/8)',
        );
      else if (trustProxy)
        warn(
          'TRUST_PROXY',
          'true trusts every X-Forwarded-For hop (clients can spoof their IP); prefer the number of proxies or their addresses',
        );
    } else if (tp.split(',').every((e) => isTrustProxyEntry(e.trim()))) trustProxy = tp;
    else
      err(
        'TRUST_PROXY',
        'must be a hop count, true/false, or a list of addresses/subnets (loopback, linklocal, uniquelocal, 10.0.0.0/8, ::1)',
      );
  }

  const windowMs = intIn('RATE_LIMIT_WINDOW_MS', get('RATE_LIMIT_WINDOW_MS'), 60_000, 1000, 86_400_000, errors);
  const max = intIn('RATE_LIMIT_MAX', get('RATE_LIMIT_MAX'), 300, 1, 1_000_000, errors);
  const userMax = intIn('RATE_LIMIT_USER_MAX', get('RATE_LIMIT_USER_MAX'), 600, 1, 1_000_000, errors);
  const loginMax = intIn('LOGIN_MAX_FAILURES', get('LOGIN_MAX_FAILURES'), 5, 1, 1000, errors);
  const lockoutMs = duration('LOGIN_LOCKOUT_WINDOW', get('LOGIN_LOCKOUT_WINDOW'), '15m', 60_000, 86_400_000, errors);
  const emailLoginMax = intIn('LOGIN_EMAIL_MAX_FAILURES', get('LOGIN_EMAIL_MAX_FAILURES'), 10, 1, 1000, errors);
  const emailLockoutMs = duration(
    'LOGIN_EMAIL_LOCKOUT_WINDOW',
    get('LOGIN_EMAIL_LOCKOUT_WINDOW'),
    '1h',
    60_000,
    7 * 86_400_000,
    errors,
  );

  let redisUrl: string | null = null;
  const rr = get('REDIS_URL');
  if (rr) {
    const u = parseUrl(rr);
    if (!u || (u.protocol !== 'redis:' && u.protocol !== 'rediss:'))
      err('REDIS_URL', 'must be a redis:// or rediss:// URL');
    else {
      redisUrl = rr;
      if (prod && u.protocol === 'redis:' && !isLoopbackHost(u.hostname))
        warn('REDIS_URL', 'is not TLS (rediss://) for a non-loopback host');
    }
  }

  const logLevel = get('LOG_LEVEL') ?? (nodeEnv === 'test' ? 'warn' : 'info');
  if (!['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'].includes(logLevel))
    err('LOG_LEVEL', 'must be error, warn, info, http, verbose, debug or silly');
  const logDir = get('LOG_DIR') ? path.resolve(opts.cwd ?? process.cwd(), get('LOG_DIR') as string) : null;
  const logDirProblem = logDir ? directoryProblem(logDir) : null;
  if (logDirProblem) err('LOG_DIR', `cannot be used: ${logDirProblem}`);

  const metricsToken = get('METRICS_TOKEN') ?? null;
  if (metricsToken && metricsToken.length < 24) err('METRICS_TOKEN', 'must be at least 24 characters');
  const metricsLoopbackRaw = get('METRICS_ALLOW_LOOPBACK');
  if (metricsLoopbackRaw !== undefined && !bool.safeParse(metricsLoopbackRaw).success)
    err('METRICS_ALLOW_LOOPBACK', 'must be true or false (or 1/0, yes/no)');
  const metricsLoopbackExplicit = metricsLoopbackRaw ? bool.safeParse(metricsLoopbackRaw).data === true : false;
  const metricsAllowLoopback = metricsLoopbackExplicit || (!prod && trustProxy === false);
  if (!metricsAllowLoopback && !metricsToken) {
    warn(
      'METRICS_TOKEN',
      `is not set: GET /metrics refuses every caller (${prod ? 'production' : 'TRUST_PROXY is set'}, so loopback callers are not trusted); set METRICS_TOKEN, or METRICS_ALLOW_LOOPBACK=true when no proxy runs on this host`,
    );
  }
  const platformTenant = get('PLATFORM_TENANT') ?? '_platform';
  if (platformTenant !== '_platform' && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(platformTenant)) {
    err(
      'PLATFORM_TENANT',
      'must be _platform (default) or a tenant id: 1-64 letters, digits, dots, dashes or underscores, starting with a letter or digit',
    );
  }
  const bodyLimitBytes = intIn('BODY_LIMIT_BYTES', get('BODY_LIMIT_BYTES'), 100 * 1024, 1024, 10 * 1024 * 1024, errors);
  const shutdownDrainDelayMs = intIn('SHUTDOWN_DRAIN_DELAY_MS', get('SHUTDOWN_DRAIN_DELAY_MS'), 0, 0, 60_000, errors);

  // A setting with a typo is otherwise silently ignored (JWT_SECRETT): names under this
  // service's prefixes that it does not read are reported, with the closest known name.
  for (const name of Object.keys(env)) {
    if (KNOWN_SETTINGS.has(name) || !OWN_PREFIXES.test(name)) continue;
    const near = closestSetting(name);
    warn(name, `is not a setting of this service and is ignored${near ? ` (did you mean ${near}?)` : ''}`);
  }
  if (opts.scope === 'database') {
    const inScope = (i: ConfigIssue): boolean => DATABASE_SCOPE_VARIABLES.test(i.variable);
    errors.splice(0, errors.length, ...errors.filter(inScope));
    warnings.splice(0, warnings.length, ...warnings.filter(inScope));
  }
  if (errors.length > 0) return { config: null, errors, warnings };

  // Only a 'database'-scoped load can get here without a JWT secret; its callers never sign.
  const secret = jwtSecret ?? '';
  const csrfSecret = get('CSRF_SECRET') ?? createHmac('sha256', secret).update('fleet-csrf-v1').digest('base64url');
  const config: Config = {
    scope: opts.scope ?? 'all',
    env: nodeEnv,
    isProduction: prod,
    port,
    host,
    dataDir,
    bodyLimitBytes,
    shutdownDrainDelayMs,
    database: {
      url: dbUrl,
      host: dbHost,
      ssl,
      caFile: dbCaFile,
      poolSize,
      poolTimeoutMs: poolTimeoutSec * 1000,
      statementTimeoutMs,
      idleTimeoutMs: 30_000,
      appRole,
      applicationName: 'fleet-security-api',
      embeddedPassword: dbUrl === null ? (dev.EMBEDDED_PG_PASSWORD ?? null) : null,
      embeddedAppPassword: dbUrl === null ? (dev.EMBEDDED_PG_APP_PASSWORD ?? null) : null,
      ownerUrl: dbs.ownerUrl,
      ownerSsl: dbs.ownerSsl,
      ownerCaFile: dbs.ownerCaFile,
      separateOwner: dbs.separateOwner,
    },
    jwt: {
      secret,
      previousSecrets: Object.freeze(previousSecrets),
      previousSecretsNotAfter: Object.freeze(previousSecretsNotAfter),
      expiresInSec: Math.floor(expiresMs / 1000),
      issuer: 'fleet-security-api',
      audience: 'fleet-security-api',
    },
    session: { idleTimeoutSec: Math.floor(idleMs / 1000), absoluteTimeoutSec: Math.floor(absMs / 1000) },
    idp: { issuerUrl, clientId, devIssuer, clockToleranceSec: 60, timeoutMs: idpTimeoutMs, jwksCacheTtlMs },
    keys: {
      keyVaultUrl,
      masterKeyName,
      fallbackKey,
      fallbackKeyFile:
        fallbackKey && get('FLEET_ENCRYPTION_KEY') === undefined ? path.join(dataDir, 'dev-secrets.json') : null,
      previousKeys: Object.freeze(previousKeys),
      cacheTtlSec,
    },
    bcryptCost,
    siem: {
      provider: siemProvider,
      endpointUrl: siemUrl,
      apiKey: get('SIEM_API_KEY') ?? null,
      batchSize: siemBatch,
      flushIntervalMs: siemFlush,
      maxQueue: siemMaxQueue,
      tlsCaFile: siemCaFile,
      eventSchema: siemEventSchema,
      allowPrivateDestinations,
      splunkAck,
      splunkAckTimeoutMs,
      sentinel,
    },
    auditLog: {
      name: auditLogName,
      checkpointIntervalMs: checkpointInterval,
      checkpointKeyVaultName: checkpointKvName,
      checkpointSigningKey: checkpointKeyRaw,
      trustedKeys: Object.freeze(trustedKeys),
    },
    archive: {
      connectionString: storageConn,
      accountUrl: storageUrl,
      container,
      immutabilityDays,
      intervalMs: archiveInterval,
    },
    cors: { origins: Object.freeze(origins) },
    trustProxy,
    rateLimit: { windowMs, max, userMax },
    login: {
      maxFailures: loginMax,
      lockoutWindowMs: lockoutMs,
      emailMaxFailures: emailLoginMax,
      emailLockoutWindowMs: emailLockoutMs,
    },
    redisUrl,
    log: { level: logLevel, dir: logDir },
    metricsToken,
    metricsAllowLoopback,
    csrfSecret,
    platformTenant,
    identity,
  };
  return { config: deepFreeze(config), errors, warnings };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Buffer.isBuffer(o) && !Object.isFrozen(o)) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** The process environment, for the composition root and the CLIs. */
export function processEnv(): Env {
  return process.env;
}

/** Formats issues for people: one line each, variable first. Never includes values. */
export function formatIssues(result: Pick<LoadResult, 'errors' | 'warnings'>): string {
  const lines: string[] = [];
  for (const e of result.errors) lines.push(`ERROR   ${e.variable}: ${e.message}`);
  for (const w of result.warnings) lines.push(`WARNING ${w.variable}: ${w.message}`);
  return lines.join('\n');
}

/** A short, non-reversible fingerprint used to name secrets in logs and token headers. */
export function secretId(secret: string): string {
  return createHash('sha256').update('fleet-kid:').update(secret).digest('base64url').slice(0, 12);
}
