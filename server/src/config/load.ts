/**
 * Turns an environment into a validated, frozen Config: every setting of the table read by its
 * parser, then the rules between settings, then the Config assembled. Every problem is
 * collected and reported at once, each naming its variable and what to do.
 */
import { createHmac } from 'node:crypto';
import path from 'node:path';
import { databaseRules, type DatabaseSettings } from './database';
import { readSettings, splitIssues, type CollectedIssue, type Reading } from './read';
import {
  archiveRules,
  checkpointRules,
  httpRules,
  identityProviderRules,
  masterKeyRules,
  sessionRules,
  siemRules,
  signingKeyRule,
} from './rules';
import { isSetting, scopeOf, SETTINGS, SETTING_NAMES, SETTING_PREFIXES } from './settings';
import type { Config, ConfigScope, Env, LoadResult } from './types';

export interface LoadOptions {
  /** Generated development secrets (dev-secrets.ts); they never apply in production. */
  devSecrets?: Record<string, string>;
  cwd?: string;
  scope?: ConfigScope;
  now?: number;
}

export function loadConfig(env: Env, opts: LoadOptions = {}): LoadResult {
  const r = readSettings(env, { devSecrets: opts.devSecrets, cwd: opts.cwd, now: opts.now });
  const db = databaseRules(r);
  sessionRules(r);
  const signingKey = signingKeyRule(r);
  const idp = identityProviderRules(r);
  masterKeyRules(r);
  siemRules(r);
  archiveRules(r);
  checkpointRules(r);
  const http = httpRules(r);
  unknownSettings(env, r);
  const issues = redactSecrets(r, opts.scope === 'database' ? r.issues.filter(inDatabaseScope) : r.issues);
  const { errors, warnings } = splitIssues(issues);
  if (errors.length > 0) return { config: null, errors, warnings };
  const config = assemble(r, { db, signingKey, ...idp, ...http, scope: opts.scope ?? 'all', dev: opts.devSecrets });
  return { config: deepFreeze(config), errors, warnings };
}

/** 'database' scope (migrate, audit:verify): only the database, log and NODE_ENV settings count. */
function inDatabaseScope(issue: CollectedIssue): boolean {
  return scopeOf(issue.variable) === 'database';
}

/**
 * A setting with a typo is otherwise silently ignored (JWT_SECRETT): names under this
 * service's prefixes that it does not read are reported, with the closest known name.
 */
function unknownSettings(env: Env, r: Reading): void {
  for (const name of Object.keys(env)) {
    if (isSetting(name) || !SETTING_PREFIXES.some((x) => name.startsWith(x.prefix))) continue;
    const near = closestSetting(name);
    r.warn(
      name,
      'UNKNOWN_SETTING',
      `is not a setting of this service and is ignored${near ? ` (did you mean ${near}?)` : ''}`,
    );
  }
}

/**
 * Messages are written never to include a value; as a second guard, any secret setting's text
 * (or one of its list entries) that still appears in a message is replaced.
 */
function redactSecrets(r: Reading, issues: CollectedIssue[]): CollectedIssue[] {
  const secrets = SETTING_NAMES.filter((n) => SETTINGS[n].secret)
    .map((n) => r.raw(n))
    .flatMap((raw) => (raw ? [raw, ...raw.split(',').map((s) => s.trim())] : []))
    // Long and without spaces: never a word of a message (a secret of 'production' must not blank the word out).
    .filter((s) => s.length >= 20 && !/\s/.test(s));
  return issues.map((i) => {
    const message = secrets.reduce((m, s) => m.split(s).join('[redacted]'), i.message);
    return message === i.message ? i : { ...i, message };
  });
}

/** The known setting at edit distance 1 or 2, if any. */
function closestSetting(name: string): string | null {
  let best: string | null = null;
  let bestD = 3;
  for (const k of SETTING_NAMES) {
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

interface Derived {
  db: DatabaseSettings;
  signingKey: string;
  issuerUrl: string | null;
  devIssuer: boolean;
  origins: string[];
  metricsAllowLoopback: boolean;
  scope: ConfigScope;
  dev: Record<string, string> | undefined;
}

/** The Config from values that passed (or, in the 'database' scope, values other settings may lack). */
function assemble(r: Reading, d: Derived): Config {
  const v = r.values;
  const prod = r.ctx.prod;
  const dev = d.dev && !prod ? d.dev : {};
  // Only a 'database'-scoped load can get here without a JWT secret; its callers never sign.
  const secret = r.raw('JWT_SECRET') ?? '';
  const dataDir = v.FLEET_DATA_DIR as string;
  const previous = v.JWT_PREVIOUS_SECRETS ?? [];
  return {
    scope: d.scope,
    env: r.ctx.env,
    isProduction: prod,
    port: v.PORT as number,
    host: r.raw('HOST') ?? (v.HOST as string),
    dataDir,
    bodyLimitBytes: v.BODY_LIMIT_BYTES as number,
    shutdownDrainDelayMs: v.SHUTDOWN_DRAIN_DELAY_MS as number,
    database: databaseSection(r, d.db, dev),
    jwt: {
      secret,
      previousSecrets: previous.map((s) => s.secret),
      previousSecretsNotAfter: previous.map((s) => s.notAfter),
      expiresInSec: Math.floor((v.JWT_EXPIRES_IN as number) / 1000),
      issuer: 'fleet-security-api',
      audience: 'fleet-security-api',
    },
    session: {
      idleTimeoutSec: Math.floor((v.SESSION_IDLE_TIMEOUT as number) / 1000),
      absoluteTimeoutSec: Math.floor((v.SESSION_ABSOLUTE_TIMEOUT as number) / 1000),
    },
    idp: {
      issuerUrl: d.issuerUrl,
      clientId: r.raw('AUTH0_CLIENT_ID') ?? null,
      devIssuer: d.devIssuer,
      clockToleranceSec: 60,
      timeoutMs: v.IDP_TIMEOUT_MS as number,
      jwksCacheTtlMs: v.IDP_JWKS_CACHE_TTL as number,
    },
    keys: {
      keyVaultUrl: v.AZURE_KEYVAULT_URL ?? null,
      masterKeyName: v.AZURE_KEYVAULT_MASTER_KEY_NAME as string,
      fallbackKey: v.FLEET_ENCRYPTION_KEY ?? null,
      fallbackKeyFile:
        v.FLEET_ENCRYPTION_KEY && !r.given('FLEET_ENCRYPTION_KEY') ? path.join(dataDir, 'dev-secrets.json') : null,
      previousKeys: v.FLEET_ENCRYPTION_PREVIOUS_KEYS ?? {},
      cacheTtlSec: v.KEY_CACHE_TTL_SECONDS as number,
    },
    bcryptCost: v.BCRYPT_COST as number,
    siem: siemSection(r),
    auditLog: {
      name: v.AUDIT_LOG_NAME as string,
      checkpointIntervalMs: v.AUDIT_CHECKPOINT_INTERVAL as number,
      checkpointKeyVaultName: r.raw('AZURE_KEYVAULT_CHECKPOINT_KEY_NAME') ?? null,
      checkpointSigningKey: r.raw('AUDIT_CHECKPOINT_SIGNING_KEY') ?? null,
      trustedKeys: v.AUDIT_CHECKPOINT_TRUSTED_KEYS ?? [],
    },
    archive: {
      connectionString: r.raw('AZURE_STORAGE_CONNECTION_STRING') ?? null,
      accountUrl: v.AZURE_STORAGE_ACCOUNT_URL ?? null,
      container: v.AUDIT_ARCHIVE_CONTAINER as string,
      immutabilityDays: v.AUDIT_ARCHIVE_IMMUTABILITY_DAYS ?? null,
      intervalMs: v.AUDIT_ARCHIVE_INTERVAL as number,
    },
    cors: { origins: d.origins },
    trustProxy: v.TRUST_PROXY ?? false,
    rateLimit: {
      windowMs: v.RATE_LIMIT_WINDOW_MS as number,
      max: v.RATE_LIMIT_MAX as number,
      userMax: v.RATE_LIMIT_USER_MAX as number,
    },
    login: {
      maxFailures: v.LOGIN_MAX_FAILURES as number,
      lockoutWindowMs: v.LOGIN_LOCKOUT_WINDOW as number,
      emailMaxFailures: v.LOGIN_EMAIL_MAX_FAILURES as number,
      emailLockoutWindowMs: v.LOGIN_EMAIL_LOCKOUT_WINDOW as number,
    },
    redisUrl: v.REDIS_URL ?? null,
    log: { level: v.LOG_LEVEL as string, dir: v.LOG_DIR ?? null },
    metricsToken: r.raw('METRICS_TOKEN') ?? null,
    metricsAllowLoopback: d.metricsAllowLoopback,
    csrfSecret: r.raw('CSRF_SECRET') ?? createHmac('sha256', secret).update('fleet-csrf-v1').digest('base64url'),
    platformTenant: v.PLATFORM_TENANT as string,
    identity: {
      signingAlg: v.JWT_SIGNING_ALG ?? 'ES256',
      signingKey: d.signingKey,
      previousSigningKeys: v.JWT_PREVIOUS_SIGNING_KEYS ?? [],
      refreshReuseGraceSec: v.REFRESH_REUSE_GRACE_SECONDS as number,
      mfaRequiredForAdmins: v.MFA_REQUIRED_FOR_ADMINS === true,
    },
  };
}

function databaseSection(r: Reading, db: DatabaseSettings, dev: Record<string, string>): Config['database'] {
  const v = r.values;
  return {
    url: db.url,
    host: db.host,
    ssl: db.ssl,
    caFile: db.caFile,
    poolSize: v.DB_POOL_SIZE as number,
    poolTimeoutMs: (v.DB_POOL_TIMEOUT as number) * 1000,
    statementTimeoutMs: v.DB_STATEMENT_TIMEOUT as number,
    idleTimeoutMs: 30_000,
    appRole: v.DATABASE_APP_ROLE === undefined ? 'fleet_app' : v.DATABASE_APP_ROLE,
    applicationName: 'fleet-security-api',
    embeddedPassword: db.url === null ? (dev.EMBEDDED_PG_PASSWORD ?? null) : null,
    embeddedAppPassword: db.url === null ? (dev.EMBEDDED_PG_APP_PASSWORD ?? null) : null,
    ownerUrl: db.ownerUrl,
    ownerSsl: db.ownerSsl,
    ownerCaFile: db.ownerCaFile,
    separateOwner: db.separateOwner,
  };
}

function siemSection(r: Reading): Config['siem'] {
  const v = r.values;
  const text = (name: Parameters<Reading['raw']>[0]) => r.raw(name) ?? null;
  return {
    provider: v.SIEM_PROVIDER ?? null,
    endpointUrl: v.SIEM_ENDPOINT_URL ?? null,
    apiKey: text('SIEM_API_KEY'),
    batchSize: v.SIEM_BATCH_SIZE as number,
    flushIntervalMs: v.SIEM_FLUSH_INTERVAL_MS as number,
    maxQueue: v.SIEM_MAX_QUEUE as number,
    tlsCaFile: text('SIEM_TLS_CA_FILE'),
    eventSchema: v.SIEM_EVENT_SCHEMA ?? 'native',
    allowPrivateDestinations: v.SIEM_ALLOW_PRIVATE_DESTINATIONS === true,
    splunkAck: v.SIEM_SPLUNK_ACK === true,
    splunkAckTimeoutMs: v.SIEM_SPLUNK_ACK_TIMEOUT_MS as number,
    sentinel: {
      dcrId: text('SIEM_DCR_ID'),
      streamName: text('SIEM_STREAM_NAME'),
      tenantId: text('SIEM_AZURE_TENANT_ID'),
      clientId: text('SIEM_AZURE_CLIENT_ID'),
      clientSecret: text('SIEM_AZURE_CLIENT_SECRET'),
      authorityHost: text('SIEM_AZURE_AUTHORITY_HOST'),
    },
  };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Buffer.isBuffer(o) && !Object.isFrozen(o)) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
