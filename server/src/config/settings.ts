/**
 * Every setting of the service, once: its name, scope, whether it is secret, its default, the
 * named parser that reads it, and its documentation. loadConfig, the 'database' scope filter,
 * check-env, the operations scripts' database resolution (ops/db-target.ts) and the README's
 * settings table (scripts/settings-doc.ts) are all views of this table.
 * Order matters: a parser may read the value of a setting above it (ParseContext.value).
 */
import * as p from './parsers';
import type { ParseContext, Parser } from './parsers';
import type { ConfigScope } from './types';

export interface SettingSpec<T> {
  /** 'database': also checked for the commands that only need the database (migrate, audit:verify, scripts). */
  scope: ConfigScope;
  /** Holds a credential: never echoed (nor is any value: messages are written without them). */
  secret: boolean;
  /** Text read when the variable is unset; a function when it depends on the environment. None: no value. */
  default?: string | ((ctx: ParseContext, given: (name: string) => boolean) => string | undefined);
  /** Outside production, the generated development secret of this name stands in when unset (dev-secrets.ts). */
  devSecret?: (ctx: ParseContext) => string;
  /** Read only when this holds (another setting wins over it, or it only applies with another one). */
  when?: (given: (name: string) => boolean, ctx: ParseContext) => boolean;
  parse: Parser<T>;
  /** The README row: the default as people read it (when it is not simply `default`) and the meaning. */
  doc: { default?: string; text: string };
}

const setting = <T>(spec: SettingSpec<T>): SettingSpec<T> => spec;
const database = 'database' as const;
const all = 'all' as const;
const sentinelOnly = (_given: (n: string) => boolean, ctx: ParseContext) => ctx.value('SIEM_PROVIDER') === 'sentinel';
const databaseParts = (given: (n: string) => boolean) => given('DATABASE_HOST') && !given('DATABASE_URL');
const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const KEY_VAULT_NAME = /^[0-9a-zA-Z-]{1,127}$/;

export const SETTINGS = {
  NODE_ENV: setting({
    scope: database,
    secret: false,
    default: 'development',
    parse: p.nodeEnv,
    doc: { text: '`development`, `test` or `production`' },
  }),
  PORT: setting({
    scope: all,
    secret: false,
    default: '3000',
    parse: p.int(0, 65535),
    doc: { text: 'listen port' },
  }),
  HOST: setting({
    scope: all,
    secret: false,
    default: '127.0.0.1',
    parse: p.hostOrIp('must be an IP address or a host name to listen on (127.0.0.1, 0.0.0.0, ::)'),
    doc: { text: 'listen address (`0.0.0.0` in the Docker image)' },
  }),
  FLEET_DATA_DIR: setting({
    scope: database,
    secret: false,
    default: '.data',
    parse: p.dataDir,
    doc: { text: 'development secrets, embedded database, development issuer key' },
  }),

  // ---- database (parseDatabaseSettings, shared with the operations scripts)
  DATABASE_URL: setting({
    scope: database,
    secret: true,
    parse: p.postgresUrl,
    doc: {
      default: '— (embedded outside production)',
      text: '`postgres://user:password@host:5432/db`; wins over the parts. Query parameters: only `sslmode` (must agree with `DATABASE_SSL`) and `sslrootcert` (CA file for `verify-full`); any other (`host=`, `password=`, …) is refused, so nothing in the URL can override the checked settings',
    },
  }),
  DATABASE_HOST: setting({
    scope: database,
    secret: false,
    when: (given) => !given('DATABASE_URL'),
    parse: p.hostOrIp('must be a host name or an IP address'),
    doc: { text: 'the database in parts (when `DATABASE_URL` is not set): host name or address' },
  }),
  DATABASE_PORT: setting({
    scope: database,
    secret: false,
    default: '5432',
    when: databaseParts,
    parse: p.int(1, 65535),
    doc: { text: 'with `DATABASE_HOST`: port' },
  }),
  DATABASE_NAME: setting({
    scope: database,
    secret: false,
    when: databaseParts,
    parse: p.text,
    doc: { text: 'with `DATABASE_HOST` (required): database name' },
  }),
  DATABASE_USER: setting({
    scope: database,
    secret: false,
    when: databaseParts,
    parse: p.text,
    doc: { text: 'with `DATABASE_HOST` (required): login' },
  }),
  DATABASE_PASSWORD: setting({
    scope: database,
    secret: true,
    when: databaseParts,
    parse: p.text,
    doc: { text: 'with `DATABASE_HOST` (required in production for a remote host): password' },
  }),
  DATABASE_SSL: setting({
    scope: database,
    secret: false,
    parse: p.sslMode,
    doc: {
      default: '`verify-full` in production unless the host is loopback, else `disable`',
      text: '`disable`, `require`, `verify-full`; production refuses `disable` for a remote host',
    },
  }),
  MIGRATION_DATABASE_URL: setting({
    scope: database,
    secret: true,
    parse: p.postgresUrl,
    doc: {
      default: '`DATABASE_URL` outside production',
      text: "the schema owner's login, used only by `npm run migrate` and the owner operations (scripts, `audit:verify`); same URL rules as `DATABASE_URL`; must be another user than `DATABASE_URL`'s. In production the API never holds it (see [Running against an external PostgreSQL](#running-against-an-external-postgresql))",
    },
  }),
  DATABASE_APP_ROLE: setting({
    scope: database,
    secret: false,
    default: 'fleet_app',
    parse: p.appRole,
    doc: {
      text: 'role every connection assumes (least privilege, row-level security); `none` when the login itself is least-privileged',
    },
  }),
  DB_POOL_SIZE: setting({
    scope: database,
    secret: false,
    default: '10',
    parse: p.int(1, 500),
    doc: { text: 'connection pool size' },
  }),
  DB_POOL_TIMEOUT: setting({
    scope: database,
    secret: false,
    default: '10',
    parse: p.int(1, 600),
    doc: {
      default: '`10` s',
      text: 'seconds to wait for a database connection to be ready (the pool, migrations, start-up checks, operator commands)',
    },
  }),
  DB_STATEMENT_TIMEOUT: setting({
    scope: database,
    secret: false,
    default: '5000',
    parse: p.int(100, 600_000),
    doc: { default: '`5000` ms', text: 'statement timeout' },
  }),

  // ---- tokens and sessions
  JWT_SECRET: setting({
    scope: all,
    secret: true,
    devSecret: () => 'JWT_SECRET',
    parse: p.strongSecret('; generate one with `openssl rand -base64 48`'),
    doc: {
      default: 'generated in development',
      text: '≥ 32 characters, not a weak value (`openssl rand -base64 48`); derives the CSRF secret; verifies pre-upgrade HS256 access tokens until they expire (no longer signs access tokens)',
    },
  }),
  JWT_PREVIOUS_SECRETS: setting({
    scope: all,
    secret: true,
    parse: p.previousSecrets,
    doc: {
      text: 'comma-separated older secrets still accepted for pre-upgrade HS256 tokens; write each as `secret@2026-12-31T00:00:00Z` so it is refused after that time (entries without expiry, expired, or valid longer than `JWT_EXPIRES_IN` + 24 h are warned about)',
    },
  }),
  JWT_SIGNING_ALG: setting({
    scope: all,
    secret: false,
    default: 'ES256',
    parse: p.signingAlg,
    doc: { text: '`ES256` or `EdDSA`: the access-token algorithm (must match `JWT_SIGNING_KEY`)' },
  }),
  JWT_SIGNING_KEY: setting({
    scope: all,
    secret: true,
    // Development secrets hold one generated key per algorithm.
    devSecret: (ctx) => (ctx.value('JWT_SIGNING_ALG') === 'EdDSA' ? 'JWT_SIGNING_KEY_EDDSA' : 'JWT_SIGNING_KEY'),
    parse: p.signingKey,
    doc: {
      default: 'generated in development; **required in production**',
      text: 'PKCS#8 private key (PEM, `\\n` escapes allowed, or base64) that signs access tokens; public part at `GET /.well-known/jwks.json` ([SECRET_ROTATION.md](docs/SECRET_ROTATION.md))',
    },
  }),
  JWT_PREVIOUS_SIGNING_KEYS: setting({
    scope: all,
    secret: true,
    parse: p.previousSigningKeys,
    doc: {
      text: '`KEY@EXPIRY,…`: retired keys (PKCS#8 or SPKI, base64) still published and accepted until the ISO 8601 expiry',
    },
  }),
  REFRESH_REUSE_GRACE_SECONDS: setting({
    scope: all,
    secret: false,
    default: '10',
    parse: p.int(0, 60, {
      pattern: /^\d{1,2}$/,
      message: 'must be a whole number of seconds from 0 (no grace) to 60',
    }),
    doc: {
      text: '0–60: a spent refresh token presented again within this time gets the same successor pair instead of revoking the session',
    },
  }),
  MFA_REQUIRED_FOR_ADMINS: setting({
    scope: all,
    secret: false,
    default: 'false',
    parse: p.bool({ loose: true, message: 'must be true or false' }),
    doc: {
      text: '`true`: admins must step up with TOTP (and so enroll) for step-up routes (key rotation, API key creation, TOTP removal)',
    },
  }),
  CSRF_SECRET: setting({
    scope: all,
    secret: true,
    parse: p.strongSecret(
      '; generate one with `openssl rand -base64 48` (or leave it unset: it is then derived from JWT_SECRET)',
    ),
    doc: {
      default: 'derived from `JWT_SECRET`',
      text: 'signs CSRF tokens; when set, the same strength rules as `JWT_SECRET`',
    },
  }),
  JWT_EXPIRES_IN: setting({
    scope: all,
    secret: false,
    default: '15m',
    parse: p.longerThan(
      p.duration(MINUTE, 24 * HOUR),
      HOUR,
      'is longer than 1h; short access tokens limit the damage of a leak',
    ),
    doc: { text: 'access-token lifetime' },
  }),
  SESSION_IDLE_TIMEOUT: setting({
    scope: all,
    secret: false,
    default: '30m',
    parse: p.duration(MINUTE, 30 * DAY),
    doc: { text: 'a session ends after this long unused' },
  }),
  SESSION_ABSOLUTE_TIMEOUT: setting({
    scope: all,
    secret: false,
    default: '24h',
    parse: p.duration(MINUTE, 90 * DAY),
    doc: { text: 'a session ends this long after login, used or not' },
  }),

  // ---- identity provider
  AUTH0_ISSUER_BASE_URL: setting({
    scope: all,
    secret: false,
    parse: p.issuerUrl,
    doc: {
      default: 'development issuer outside production',
      text: 'identity provider (OIDC discovery), as a full issuer URL; wins over `AUTH0_DOMAIN`; `http://` only for loopback outside production',
    },
  }),
  AUTH0_DOMAIN: setting({
    scope: all,
    secret: false,
    when: (given) => !given('AUTH0_ISSUER_BASE_URL'),
    parse: p.auth0Domain,
    doc: {
      default: 'development issuer outside production',
      text: 'identity provider (OIDC discovery), as a domain (`your-tenant.eu.auth0.com`)',
    },
  }),
  AUTH0_CLIENT_ID: setting({
    scope: all,
    secret: false,
    parse: p.clientId,
    doc: { text: 'expected `aud` of ID tokens' },
  }),
  IDP_TIMEOUT_MS: setting({
    scope: all,
    secret: false,
    default: '5000',
    parse: p.int(100, 60_000),
    doc: { text: 'deadline of each discovery / JWKS request to the identity provider' },
  }),
  IDP_JWKS_CACHE_TTL: setting({
    scope: all,
    secret: false,
    default: '10m',
    parse: p.duration(1000, DAY),
    doc: {
      text: "how long the IdP's key set is fresh; after that a known key keeps being served while it is refreshed in the background (stale-while-revalidate, up to 1 h more)",
    },
  }),
  FLEET_DEV_ISSUER: setting({
    scope: all,
    secret: false,
    default: 'false',
    parse: p.bool(),
    doc: { text: 'outside production, enable the built-in development issuer even when `NODE_ENV=test`' },
  }),

  // ---- keys
  AZURE_KEYVAULT_URL: setting({
    scope: all,
    secret: false,
    parse: p.httpsUrl('must be an https URL such as https://my-vault.vault.azure.net', { trimSlash: true }),
    doc: {
      text: 'master key in Key Vault: the secret holds base64 of 32 bytes and its version is the key version; the identity (DefaultAzureCredential) needs *Key Vault Secrets User* to read, *Officer* to rotate',
    },
  }),
  AZURE_KEYVAULT_MASTER_KEY_NAME: setting({
    scope: all,
    secret: false,
    default: 'fleet-master-key',
    parse: p.matching(KEY_VAULT_NAME, 'must be 1-127 letters, digits or dashes (a Key Vault secret name)'),
    doc: { text: 'name of the master key secret in `AZURE_KEYVAULT_URL`' },
  }),
  FLEET_ENCRYPTION_KEY: setting({
    scope: all,
    secret: true,
    devSecret: () => 'FLEET_ENCRYPTION_KEY',
    parse: p.key32,
    doc: {
      default: 'generated in development',
      text: 'fallback master key: base64 of exactly 32 bytes (`openssl rand -base64 32`)',
    },
  }),
  FLEET_ENCRYPTION_PREVIOUS_KEYS: setting({
    scope: all,
    secret: true,
    parse: p.versionedKeys,
    doc: { text: '`version:base64key,…` older fallback keys still used to decrypt' },
  }),
  KEY_CACHE_TTL_SECONDS: setting({
    scope: all,
    secret: false,
    default: '3600',
    parse: p.int(1, 86_400),
    doc: { text: 'master-key cache lifetime' },
  }),
  BCRYPT_COST: setting({
    scope: all,
    secret: false,
    default: '12',
    parse: p.int(12, 17),
    doc: { text: 'bcrypt cost (12–17; never lower than 12)' },
  }),

  // ---- SIEM
  SIEM_PROVIDER: setting({
    scope: all,
    secret: false,
    parse: p.siemProvider,
    doc: { default: '— (forwarding off)', text: '`splunk`, `datadog`, `elastic`, `webhook`, `syslog`, `sentinel`' },
  }),
  SIEM_ENDPOINT_URL: setting({
    scope: all,
    secret: false,
    when: (_given, ctx) => ctx.value('SIEM_PROVIDER') !== undefined,
    parse: p.siemEndpoint,
    doc: {
      text: 'SIEM target: `https://…` for the HTTP providers, `tcp://host:port` or `tls://host:port` for syslog. Production refuses `http://` / `tcp://` except to loopback',
    },
  }),
  SIEM_API_KEY: setting({
    scope: all,
    secret: true,
    parse: p.text,
    doc: {
      text: 'SIEM credential: Splunk HEC token, Datadog API key, Elastic API key (optional), webhook signing key (required for splunk, datadog, webhook)',
    },
  }),
  SIEM_BATCH_SIZE: setting({
    scope: all,
    secret: false,
    default: '10',
    parse: p.int(1, 1000),
    doc: { text: 'events per claimed batch (1–1000)' },
  }),
  SIEM_FLUSH_INTERVAL_MS: setting({
    scope: all,
    secret: false,
    default: '30000',
    parse: p.int(50, HOUR),
    doc: { text: 'SIEM worker interval (50 ms – 1 h)' },
  }),
  SIEM_MAX_QUEUE: setting({
    scope: all,
    secret: false,
    default: '100000',
    parse: p.int(100, 10_000_000),
    doc: { text: 'SIEM outbox bound (100 – 10,000,000; docs/SIEM_AND_ARCHIVE.md, Queue bound)' },
  }),
  SIEM_TLS_CA_FILE: setting({
    scope: all,
    secret: false,
    parse: p.readableFile,
    doc: {
      text: "CA bundle (PEM) trusted for the SIEM's TLS certificate (syslog `tls://` and HTTPS; a Sentinel endpoint or authority with a private CA)",
    },
  }),
  SIEM_EVENT_SCHEMA: setting({
    scope: all,
    secret: false,
    default: 'native',
    parse: p.oneOf(['native', 'ocsf', 'ecs'] as const, 'must be one of native, ocsf, ecs'),
    doc: { text: '`native`, `ocsf` (OCSF 1.3.0) or `ecs` (ECS 8.11): the shape the platform SIEM receives' },
  }),
  SIEM_ALLOW_PRIVATE_DESTINATIONS: setting({
    scope: all,
    secret: false,
    default: 'false',
    parse: p.allowPrivateDestinations,
    doc: {
      text: 'let tenant audit streams reach loopback/private/link-local addresses (tests, private networks); off refuses them (SSRF)',
    },
  }),
  SIEM_SPLUNK_ACK: setting({
    scope: all,
    secret: false,
    default: 'false',
    parse: p.bool(),
    doc: {
      text: 'Splunk indexer acknowledgement: events count as delivered only once HEC acknowledges them as indexed',
    },
  }),
  SIEM_SPLUNK_ACK_TIMEOUT_MS: setting({
    scope: all,
    secret: false,
    default: '30000',
    parse: p.int(100, 600_000),
    doc: { text: 'with `SIEM_SPLUNK_ACK`: unacknowledged events are resent (same event ids) after this long' },
  }),
  SIEM_DCR_ID: setting({
    scope: all,
    secret: false,
    when: sentinelOnly,
    parse: p.matching(/^dcr-[0-9a-f]{32}$/, 'must be a data collection rule immutable id: dcr- and 32 hex digits'),
    doc: {
      text: '`SIEM_PROVIDER=sentinel`: data collection rule immutable id (`dcr-…`); `SIEM_ENDPOINT_URL` is the data collection endpoint. ARM template: `docs/sentinel-dcr.json`',
    },
  }),
  SIEM_STREAM_NAME: setting({
    scope: all,
    secret: false,
    when: sentinelOnly,
    parse: p.matching(/^Custom-[A-Za-z0-9_]{1,100}$/, 'must be a custom stream name: Custom- and letters, digits or _'),
    doc: { text: 'Sentinel: the stream (`Custom-FleetSecurityEvents`)' },
  }),
  SIEM_AZURE_TENANT_ID: setting({
    scope: all,
    secret: false,
    parse: p.text,
    doc: {
      text: 'Sentinel: Entra ID application tenant (all three of tenant, client id and secret, or none: managed identity)',
    },
  }),
  SIEM_AZURE_CLIENT_ID: setting({
    scope: all,
    secret: false,
    parse: p.text,
    doc: { text: 'Sentinel: Entra ID application client id' },
  }),
  SIEM_AZURE_CLIENT_SECRET: setting({
    scope: all,
    secret: true,
    parse: p.text,
    doc: { text: 'Sentinel: Entra ID application client secret' },
  }),
  SIEM_AZURE_AUTHORITY_HOST: setting({
    scope: all,
    secret: false,
    when: sentinelOnly,
    parse: p.httpsUrl('must be an https:// URL (e.g. https://login.microsoftonline.us)'),
    doc: { text: 'Sentinel: authority host for sovereign clouds' },
  }),

  // ---- archive
  AZURE_STORAGE_CONNECTION_STRING: setting({
    scope: all,
    secret: true,
    parse: p.storageConnectionString,
    doc: {
      default: '— (archive off)',
      text: 'immutable audit archive target, as a connection string; needs `AccountKey` or `SharedAccessSignature`, and https in production',
    },
  }),
  AZURE_STORAGE_ACCOUNT_URL: setting({
    scope: all,
    secret: false,
    parse: p.storageAccountUrl,
    doc: {
      default: '— (archive off)',
      text: 'immutable audit archive target, as an account URL authenticated with `DefaultAzureCredential` (managed identity, workload identity, `az login`)',
    },
  }),
  AUDIT_ARCHIVE_CONTAINER: setting({
    scope: all,
    secret: false,
    default: 'audit-archive',
    parse: p.matching(
      /^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/,
      'must be a valid container name (3-63 lower-case letters, digits, single dashes)',
    ),
    doc: { text: 'archive container (created if missing and the credential may)' },
  }),
  AUDIT_ARCHIVE_IMMUTABILITY_DAYS: setting({
    scope: all,
    secret: false,
    parse: p.int(1, 36500),
    doc: {
      default: '—',
      text: 'when set, each archived blob gets a version-level immutability policy for that many days (1–36500)',
    },
  }),
  AUDIT_ARCHIVE_INTERVAL: setting({
    scope: all,
    secret: false,
    default: '1h',
    parse: p.duration(10_000, 7 * DAY),
    doc: { text: 'periodic archive export interval (10 s – 7 days; first run at most 60 s after start)' },
  }),

  // ---- signed audit checkpoints
  AZURE_KEYVAULT_CHECKPOINT_KEY_NAME: setting({
    scope: all,
    secret: false,
    parse: p.matching(KEY_VAULT_NAME, 'must be 1-127 letters, digits or dashes (a Key Vault secret name)'),
    doc: {
      default: '—',
      text: 'Key Vault secret (in `AZURE_KEYVAULT_URL`) holding the Ed25519 key that signs audit checkpoints, PKCS#8 base64; a new version rotates it ([docs/AUDIT.md §9](docs/AUDIT.md#9-verifiable-audit-log-merkle-tree-signed-checkpoints-proofs))',
    },
  }),
  AUDIT_CHECKPOINT_SIGNING_KEY: setting({
    scope: all,
    secret: true,
    devSecret: () => 'AUDIT_CHECKPOINT_SIGNING_KEY',
    parse: p.checkpointKey,
    doc: {
      default: 'generated in development',
      text: 'the checkpoint signing key without Key Vault: Ed25519 PKCS#8, base64 of the DER (`openssl genpkey -algorithm ed25519 -outform DER \\| base64 -w0`) or PEM; never stored in the database. Without either, no checkpoints are published (warning in production)',
    },
  }),
  AUDIT_CHECKPOINT_TRUSTED_KEYS: setting({
    scope: all,
    secret: false,
    parse: p.verifierKeys,
    doc: {
      default: '—',
      text: 'verifier keys (`name+keyid+key`, comma/space separated) of earlier signing keys that verification still accepts after a rotation',
    },
  }),
  AUDIT_CHECKPOINT_INTERVAL: setting({
    scope: all,
    secret: false,
    default: '1m',
    parse: p.duration(1000, HOUR),
    doc: {
      text: 'how often a tenant whose Merkle tree grew gets a new signed checkpoint (1 s – 1 h); idle tenants get one at least hourly',
    },
  }),
  AUDIT_LOG_NAME: setting({
    scope: all,
    secret: false,
    default: 'default',
    parse: p.matching(
      /^[A-Za-z0-9._-]{1,64}$/,
      'must be 1-64 letters, digits, dots, dashes or underscores (it becomes part of every checkpoint origin)',
    ),
    doc: {
      text: "the log's name in every checkpoint origin `fleet-security-api/<AUDIT_LOG_NAME>/<tenant>` and in the key name `fleet-security-api/<AUDIT_LOG_NAME>`: give each deployment (production, staging…) its own",
    },
  }),

  // ---- HTTP
  CORS_ORIGINS: setting({
    scope: all,
    secret: false,
    default: (ctx, given) =>
      ctx.prod || given('FRONTEND_URL') ? undefined : 'http://localhost:3000,http://localhost:5173',
    parse: p.origins,
    doc: {
      default: '`http://localhost:3000,http://localhost:5173` outside production',
      text: 'allowed origins (comma-separated); https only in production; `*` and wildcards (`https://*.example.com`) refused',
    },
  }),
  FRONTEND_URL: setting({
    scope: all,
    secret: false,
    when: (given) => !given('CORS_ORIGINS'),
    parse: p.origins,
    doc: { text: 'read as `CORS_ORIGINS` when that is not set' },
  }),
  TRUST_PROXY: setting({
    scope: all,
    secret: false,
    default: 'false',
    parse: p.trustProxy,
    doc: {
      text: 'Express `trust proxy`: a hop count, or a comma-separated list of `loopback`, `linklocal`, `uniquelocal`, addresses and subnets (`10.0.0.0/8`, `fd00::/8`); needed behind a load balancer. `true`, or a subnet as wide as everyone (`0.0.0.0/0`, `::/0`), is refused in production (clients could choose their IP); a warning is logged once when requests carry `X-Forwarded-For` but `TRUST_PROXY` is unset',
    },
  }),
  RATE_LIMIT_WINDOW_MS: setting({
    scope: all,
    secret: false,
    default: '60000',
    parse: p.int(1000, DAY),
    doc: { text: 'general rate-limit window' },
  }),
  RATE_LIMIT_MAX: setting({
    scope: all,
    secret: false,
    default: '300',
    parse: p.int(1, 1_000_000),
    doc: { text: 'requests per IP per window' },
  }),
  RATE_LIMIT_USER_MAX: setting({
    scope: all,
    secret: false,
    default: '600',
    parse: p.int(1, 1_000_000),
    doc: { text: 'requests per authenticated user per window' },
  }),
  LOGIN_MAX_FAILURES: setting({
    scope: all,
    secret: false,
    default: '5',
    parse: p.int(1, 1000),
    doc: {
      text: 'login lockout per client network (IPv4 address, IPv6 /56): failures allowed in `LOGIN_LOCKOUT_WINDOW`; only correctly signed ID tokens that then failed a check count',
    },
  }),
  LOGIN_LOCKOUT_WINDOW: setting({
    scope: all,
    secret: false,
    default: '15m',
    parse: p.duration(MINUTE, DAY),
    doc: { text: 'the window of the per-network login lockout' },
  }),
  LOGIN_EMAIL_MAX_FAILURES: setting({
    scope: all,
    secret: false,
    default: '10',
    parse: p.int(1, 1000),
    doc: {
      text: 'the separate, slower login lockout per e-mail (counts only tokens whose own e-mail claim is that e-mail)',
    },
  }),
  LOGIN_EMAIL_LOCKOUT_WINDOW: setting({
    scope: all,
    secret: false,
    default: '1h',
    parse: p.duration(MINUTE, 7 * DAY),
    doc: { text: 'the window of the per-e-mail login lockout' },
  }),
  REDIS_URL: setting({
    scope: all,
    secret: true,
    parse: p.redisUrl,
    doc: { text: 'shared rate-limit store when several instances run' },
  }),
  LOG_LEVEL: setting({
    scope: database,
    secret: false,
    default: (ctx) => (ctx.env === 'test' ? 'warn' : 'info'),
    parse: p.oneOf(
      ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'],
      'must be error, warn, info, http, verbose, debug or silly',
    ),
    doc: { default: '`info` (`warn` under `NODE_ENV=test`)', text: 'JSON logs to the console' },
  }),
  LOG_DIR: setting({
    scope: database,
    secret: false,
    parse: p.directory,
    doc: { default: '—', text: 'also log to files there, rotated daily, kept 7 days, 20 MB each' },
  }),
  METRICS_TOKEN: setting({
    scope: all,
    secret: true,
    parse: p.minLength(24),
    doc: {
      text: 'Bearer token for `GET /metrics`; required for every caller in production or when `TRUST_PROXY` is set',
    },
  }),
  METRICS_ALLOW_LOOPBACK: setting({
    scope: all,
    secret: false,
    default: 'false',
    parse: p.bool(),
    doc: {
      text: '`true`: loopback callers (no `X-Forwarded-For`) may read `/metrics` without the token even in production / behind `TRUST_PROXY` — only when no proxy runs on the same host',
    },
  }),
  PLATFORM_TENANT: setting({
    scope: all,
    secret: false,
    default: '_platform',
    parse: p.platformTenant,
    doc: {
      text: 'the platform tenant: its admins are the platform admins who may read and rotate the master key; key events are audited in its trail (`npm run user:add -- --tenant _platform --role admin`)',
    },
  }),
  BODY_LIMIT_BYTES: setting({
    scope: all,
    secret: false,
    default: '102400',
    parse: p.int(1024, 10 * 1024 * 1024),
    doc: { text: 'request body cap' },
  }),
  SHUTDOWN_DRAIN_DELAY_MS: setting({
    scope: all,
    secret: false,
    default: '0',
    parse: p.int(0, 60_000),
    doc: {
      text: "on SIGTERM, keep serving this long (0–60000) with readiness 503 and `Connection: close` before the listener closes, so a load balancer stops routing first; set it a little above the balancer's health-check interval × unhealthy threshold (e.g. `10000`). See [docs/SCALING.md](docs/SCALING.md)",
    },
  }),
};

export type SettingName = keyof typeof SETTINGS;
type ValueOf<S> = S extends SettingSpec<infer T> ? T : never;
/** Each setting's value: parsed, or its default; undefined when unset without default, skipped or unreadable. */
export type SettingValues = { [N in SettingName]?: ValueOf<(typeof SETTINGS)[N]> };

export const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

export function isSetting(name: string): name is SettingName {
  return Object.hasOwn(SETTINGS, name);
}

/**
 * Prefixes that belong to this service: a variable under one of them that is not a setting is
 * a typo (JWT_SECRETT) and is reported. Not AZURE_ as a whole (the Azure SDK's credential
 * reads AZURE_CLIENT_ID and friends), not FLEET_ as a whole (the scripts' own variables).
 * An unknown name under DATABASE_ or DB_ is reported in the 'database' scope too.
 */
export const SETTING_PREFIXES: ReadonlyArray<{ prefix: string; scope: ConfigScope }> = [
  { prefix: 'DATABASE_', scope: database },
  { prefix: 'DB_', scope: database },
  ...[
    'JWT_',
    'AUTH0_',
    'SIEM_',
    'AZURE_KEYVAULT_',
    'AZURE_STORAGE_',
    'AUDIT_ARCHIVE_',
    'AUDIT_CHECKPOINT_',
    'AUDIT_LOG_',
    'RATE_LIMIT_',
    'LOGIN_',
    'SESSION_',
    'KEY_CACHE_',
    'CSRF_',
    'CORS_',
    'IDP_',
    'METRICS_',
    'BCRYPT_',
    'FLEET_ENCRYPTION_',
    'FLEET_DEV_',
    'FLEET_DATA_',
    'MFA_',
    'REFRESH_REUSE_',
  ].map((prefix) => ({ prefix, scope: all })),
];

/** The scope an issue about `variable` belongs to: its setting's, or for an unknown name its prefix's. */
export function scopeOf(variable: string): ConfigScope {
  if (isSetting(variable)) return SETTINGS[variable].scope;
  return SETTING_PREFIXES.find((x) => variable.startsWith(x.prefix))?.scope ?? 'all';
}
