/** The typed configuration and the shapes of a load's result (see settings.ts for the settings themselves). */
import type { SigningAlg } from '../lib/jws-keys';

export type NodeEnv = 'development' | 'test' | 'production';
export type DatabaseSsl = 'disable' | 'require' | 'verify-full';
export type SiemProvider = 'splunk' | 'datadog' | 'elastic' | 'webhook' | 'syslog' | 'sentinel';

export interface ConfigIssue {
  variable: string;
  message: string;
}

export interface IdentitySettings {
  signingAlg: SigningAlg;
  /** PKCS#8 private key text (PEM or base64 DER) of the current signing key. */
  signingKey: string;
  /** Retired keys still published while tokens they signed can be valid. */
  previousSigningKeys: ReadonlyArray<{ key: string; expiresAtMs: number }>;
  refreshReuseGraceSec: number;
  mfaRequiredForAdmins: boolean;
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
  /** Access-token signing keys, refresh reuse grace, MFA policy (CONTRACT §10–§11). */
  identity: IdentitySettings;
}

export interface LoadResult {
  config: Config | null;
  errors: ConfigIssue[];
  warnings: ConfigIssue[];
}

/**
 * What a command needs. 'all': the server and the commands that build its services.
 * 'database': commands that only read or change the database (migrate, audit:verify). They
 * still check the database, log and NODE_ENV settings, and ignore problems in the others, so
 * an operator's environment with only DATABASE_URL (a cron job, a restore drill) is enough.
 */
export type ConfigScope = 'all' | 'database';

export type Env = Record<string, string | undefined>;
