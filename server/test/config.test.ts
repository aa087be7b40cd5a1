import { randomBytes } from 'node:crypto';
import { formatIssues, loadConfig, weakSecretReason } from '../src/config';

const strong = () => randomBytes(48).toString('base64');
const key32 = () => randomBytes(32).toString('base64');

function base(over: Record<string, string | undefined> = {}) {
  return { NODE_ENV: 'development', DATABASE_URL: 'postgres://u:pw@127.0.0.1:5432/db', JWT_SECRET: strong(), FLEET_ENCRYPTION_KEY: key32(), ...over };
}

function prodEnv(over: Record<string, string | undefined> = {}) {
  return {
    NODE_ENV: 'production',
    DATABASE_URL: 'postgres://app:S3cure-Passw0rd-xyz@db.internal:5432/fleet',
    DATABASE_SSL: 'verify-full',
    JWT_SECRET: strong(),
    AZURE_KEYVAULT_URL: 'https://vault.vault.azure.net',
    AUTH0_DOMAIN: 'tenant.eu.auth0.com',
    AUTH0_CLIENT_ID: 'client-123',
    CORS_ORIGINS: 'https://app.example.com',
    SIEM_PROVIDER: 'splunk',
    SIEM_ENDPOINT_URL: 'https://splunk.example.com:8088',
    SIEM_API_KEY: 'hec-token-123',
    AZURE_STORAGE_ACCOUNT_URL: 'https://acct.blob.core.windows.net',
    ...over,
  };
}

const vars = (issues: { variable: string }[]) => issues.map((i) => i.variable);

describe('configuration', () => {
  test('when the environment is complete, then a frozen typed config is returned with the contract defaults', () => {
    const r = loadConfig(base());
    expect(r.errors).toEqual([]);
    const c = r.config!;
    expect(c.port).toBe(3000);
    expect(c.host).toBe('127.0.0.1');
    expect(c.database.poolSize).toBe(10);
    expect(c.database.poolTimeoutMs).toBe(10_000);
    expect(c.database.statementTimeoutMs).toBe(5000);
    expect(c.jwt.expiresInSec).toBe(900);
    expect(c.session).toEqual({ idleTimeoutSec: 1800, absoluteTimeoutSec: 86400 });
    expect(c.keys.masterKeyName).toBe('fleet-master-key');
    expect(c.keys.cacheTtlSec).toBe(3600);
    expect(c.siem.batchSize).toBe(10);
    expect(c.siem.flushIntervalMs).toBe(30000);
    expect(c.rateLimit).toEqual({ windowMs: 60000, max: 300, userMax: 600 });
    expect(c.login).toEqual({ maxFailures: 5, lockoutWindowMs: 900000 });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.database)).toBe(true);
  });

  test.each([
    ['secret', 'secretsecretsecretsecretsecretsecret'],
    ['changeme', 'changeme-changeme-changeme-changeme-1'],
    ['password', 'Password123Password123Password123!!'],
    ['test', 'test-test-test-test-test-test-test-test'],
    ['default', 'default_jwt_secret_value_for_dev_2024'],
    ['repeated characters', 'a'.repeat(40)],
    ['low variety', 'abababababcdcdcdcdcdabababababcdcdcdcd'],
    ['short', 'Xk9#mP2$vL5@nQ8'],
    ['sequence', 'abcdefghijklmnopqrstuvwxyz0123456789'],
  ])('when JWT_SECRET is weak (%s), then start-up refuses it and names the variable without echoing it', (_name, value) => {
    const r = loadConfig(base({ JWT_SECRET: value }));
    expect(r.config).toBeNull();
    expect(vars(r.errors)).toContain('JWT_SECRET');
    expect(formatIssues(r)).not.toContain(value);
  });

  test('when JWT_SECRET is random, then it is not weak', () => {
    for (let i = 0; i < 50; i++) expect(weakSecretReason(strong())).toBeNull();
  });

  test('when FLEET_ENCRYPTION_KEY is not base64 of exactly 32 bytes, then it is refused', () => {
    for (const bad of ['short', randomBytes(16).toString('base64'), randomBytes(33).toString('base64'), randomBytes(32).toString('hex'), randomBytes(32).toString('base64url').replace(/=/g, '') + '!']) {
      const r = loadConfig(base({ FLEET_ENCRYPTION_KEY: bad }));
      expect(vars(r.errors)).toContain('FLEET_ENCRYPTION_KEY');
      expect(formatIssues(r)).not.toContain(bad);
    }
  });

  test('when DATABASE_URL has the wrong protocol or no host, then it is refused', () => {
    expect(vars(loadConfig(base({ DATABASE_URL: 'mysql://u:p@h/db' })).errors)).toContain('DATABASE_URL');
    expect(vars(loadConfig(base({ DATABASE_URL: 'not a url' })).errors)).toContain('DATABASE_URL');
    expect(vars(loadConfig(base({ DATABASE_URL: 'postgres://u:p@h:5432' })).errors)).toContain('DATABASE_URL');
  });

  test('when ports and numbers are out of range, then each is reported', () => {
    const r = loadConfig(base({ PORT: '70000', DB_POOL_SIZE: '0', RATE_LIMIT_MAX: 'lots', JWT_EXPIRES_IN: '15 minutes' }));
    expect(vars(r.errors)).toEqual(expect.arrayContaining(['PORT', 'DB_POOL_SIZE', 'RATE_LIMIT_MAX', 'JWT_EXPIRES_IN']));
  });

  test('when several variables are wrong, then every problem is reported at once', () => {
    const r = loadConfig(base({ JWT_SECRET: 'changeme', FLEET_ENCRYPTION_KEY: 'nope', DATABASE_URL: 'ftp://x', PORT: '-1', SIEM_PROVIDER: 'graylog' }));
    expect(vars(r.errors)).toEqual(expect.arrayContaining(['JWT_SECRET', 'FLEET_ENCRYPTION_KEY', 'DATABASE_URL', 'PORT', 'SIEM_PROVIDER']));
    expect(r.errors.length).toBeGreaterThanOrEqual(5);
  });

  test('when production is configured properly, then it loads with no errors', () => {
    const r = loadConfig(prodEnv());
    expect(r.errors).toEqual([]);
    expect(r.config!.database.ssl).toBe('verify-full');
    expect(r.config!.idp.devIssuer).toBe(false);
  });

  test('when production lacks the identity provider, database, JWT secret and key, then each is an error', () => {
    const r = loadConfig({ NODE_ENV: 'production' });
    expect(vars(r.errors)).toEqual(expect.arrayContaining(['DATABASE_URL', 'JWT_SECRET', 'AUTH0_DOMAIN', 'FLEET_ENCRYPTION_KEY']));
  });

  test('when production CORS origins are http, then they are refused', () => {
    const r = loadConfig(prodEnv({ CORS_ORIGINS: 'https://ok.example.com,http://app.example.com' }));
    expect(vars(r.errors)).toContain('CORS_ORIGINS');
  });

  test('when production uses a remote database without TLS, then it is refused; a loopback one is only warned about', () => {
    expect(vars(loadConfig(prodEnv({ DATABASE_SSL: 'disable' })).errors)).toContain('DATABASE_SSL');
    const local = loadConfig(prodEnv({ DATABASE_URL: 'postgres://app:S3cure-Passw0rd-xyz@127.0.0.1:5432/fleet', DATABASE_SSL: undefined }));
    expect(local.errors).toEqual([]);
    expect(local.config!.database.ssl).toBe('disable');
    expect(vars(local.warnings)).toContain('DATABASE_URL');
  });

  test('when production asks for the development issuer or an http identity provider, then it is refused', () => {
    expect(vars(loadConfig(prodEnv({ FLEET_DEV_ISSUER: 'true' })).errors)).toContain('FLEET_DEV_ISSUER');
    expect(vars(loadConfig(prodEnv({ AUTH0_DOMAIN: undefined, AUTH0_ISSUER_BASE_URL: 'http://127.0.0.1:9999/' })).errors)).toContain('AUTH0_ISSUER_BASE_URL');
  });

  test('when outside production an http identity provider is on loopback, then it is accepted; a remote http one is not', () => {
    expect(loadConfig(base({ AUTH0_ISSUER_BASE_URL: 'http://127.0.0.1:9999/', AUTH0_CLIENT_ID: 'x' })).errors).toEqual([]);
    expect(vars(loadConfig(base({ AUTH0_ISSUER_BASE_URL: 'http://idp.example.com/', AUTH0_CLIENT_ID: 'x' })).errors)).toContain('AUTH0_ISSUER_BASE_URL');
  });

  test('when production has no SIEM and the key comes from the environment, then both are warnings', () => {
    const r = loadConfig(prodEnv({ SIEM_PROVIDER: undefined, AZURE_KEYVAULT_URL: undefined, FLEET_ENCRYPTION_KEY: key32() }));
    expect(r.errors).toEqual([]);
    expect(vars(r.warnings)).toEqual(expect.arrayContaining(['SIEM_PROVIDER', 'AZURE_KEYVAULT_URL']));
  });

  test('when the database is given in parts, then a URL is assembled', () => {
    const r = loadConfig(base({ DATABASE_URL: undefined, DATABASE_HOST: 'db.local', DATABASE_PORT: '6543', DATABASE_NAME: 'fleet', DATABASE_USER: 'app', DATABASE_PASSWORD: 'p@ss/word' }));
    expect(r.errors).toEqual([]);
    expect(r.config!.database.url).toBe('postgres://app:p%40ss%2Fword@db.local:6543/fleet');
  });

  test('when no database is configured in development, then the embedded database is selected', () => {
    const r = loadConfig({ NODE_ENV: 'development', JWT_SECRET: strong(), FLEET_ENCRYPTION_KEY: key32() }, { devSecrets: { EMBEDDED_PG_PASSWORD: 'x' } });
    expect(r.config!.database.url).toBeNull();
    expect(r.config!.database.embeddedPassword).toBe('x');
    expect(r.config!.idp.devIssuer).toBe(true);
  });

  test('when development secrets are supplied, then they never apply in production', () => {
    const r = loadConfig({ NODE_ENV: 'production' }, { devSecrets: { JWT_SECRET: strong(), FLEET_ENCRYPTION_KEY: key32() } });
    expect(vars(r.errors)).toEqual(expect.arrayContaining(['JWT_SECRET', 'FLEET_ENCRYPTION_KEY']));
  });

  test('when SIEM is chosen without its endpoint or credential, then both are errors', () => {
    const r = loadConfig(base({ SIEM_PROVIDER: 'datadog' }));
    expect(vars(r.errors)).toEqual(expect.arrayContaining(['SIEM_ENDPOINT_URL', 'SIEM_API_KEY']));
    expect(vars(loadConfig(base({ SIEM_PROVIDER: 'syslog', SIEM_ENDPOINT_URL: 'https://x' })).errors)).toContain('SIEM_ENDPOINT_URL');
  });

  test('when JWT_PREVIOUS_SECRETS holds a weak entry, then it is refused without echoing it', () => {
    const r = loadConfig(base({ JWT_PREVIOUS_SECRETS: `${strong()},changeme` }));
    expect(vars(r.errors)).toContain('JWT_PREVIOUS_SECRETS');
    expect(formatIssues(r)).not.toContain('changeme');
  });

  test('when CORS_ORIGINS holds a wildcard or a path, then it is refused', () => {
    expect(vars(loadConfig(base({ CORS_ORIGINS: '*' })).errors)).toContain('CORS_ORIGINS');
    expect(vars(loadConfig(base({ CORS_ORIGINS: 'https://a.example.com/app' })).errors)).toContain('CORS_ORIGINS');
    expect(loadConfig(base({ FRONTEND_URL: 'https://a.example.com' })).config!.cors.origins).toEqual(['https://a.example.com']);
  });

  test('when NODE_ENV or DATABASE_SSL hold unknown values, then they are refused', () => {
    expect(vars(loadConfig(base({ NODE_ENV: 'staging' })).errors)).toContain('NODE_ENV');
    expect(vars(loadConfig(base({ DATABASE_SSL: 'maybe' })).errors)).toContain('DATABASE_SSL');
  });

  test('when the session absolute timeout is shorter than the idle timeout, then it is refused', () => {
    expect(vars(loadConfig(base({ SESSION_IDLE_TIMEOUT: '2h', SESSION_ABSOLUTE_TIMEOUT: '1h' })).errors)).toContain('SESSION_ABSOLUTE_TIMEOUT');
  });

  test('when IDP_TIMEOUT_MS is unset, out of range or not a number, then the default applies or it is refused', () => {
    expect(loadConfig(base()).config!.idp.timeoutMs).toBe(5000);
    expect(loadConfig(base({ IDP_TIMEOUT_MS: '250' })).config!.idp.timeoutMs).toBe(250);
    expect(vars(loadConfig(base({ IDP_TIMEOUT_MS: '10' })).errors)).toContain('IDP_TIMEOUT_MS');
    expect(vars(loadConfig(base({ IDP_TIMEOUT_MS: '5s' })).errors)).toContain('IDP_TIMEOUT_MS');
  });

  it('when FLEET_ENCRYPTION_KEY is set but invalid, then that one problem is reported, not also "no master key source"', () => {
    const r = loadConfig(base({ FLEET_ENCRYPTION_KEY: 'not-base64-of-32-bytes' }));
    const messages = r.errors.filter((i) => i.variable === 'FLEET_ENCRYPTION_KEY').map((i) => i.message);
    expect(messages).toEqual([expect.stringMatching(/must be base64 of exactly 32 random bytes/)]);
    expect(vars(loadConfig(base({ FLEET_ENCRYPTION_KEY: undefined })).errors)).toContain('FLEET_ENCRYPTION_KEY');
  });

  describe('scope "database" (migrate, audit:verify)', () => {
    const dbOnly = { NODE_ENV: 'production', DATABASE_URL: 'postgres://app:S3cure-Passw0rd-xyz@db.internal:5432/fleet', DATABASE_SSL: 'verify-full' };

    it('when only the database is configured in production, then the load succeeds with scope "database" and no problems from other settings', () => {
      const r = loadConfig(dbOnly, { scope: 'database' });
      expect(r.errors).toEqual([]);
      expect(r.config?.scope).toBe('database');
      expect(r.config?.database.url).toBe(dbOnly.DATABASE_URL);
      // The same environment is refused for the server.
      expect(vars(loadConfig(dbOnly).errors)).toEqual(expect.arrayContaining(['JWT_SECRET', 'AUTH0_DOMAIN']));
      expect(loadConfig(prodEnv()).config?.scope).toBe('all');
    });

    it('when a database, log or NODE_ENV setting is wrong, then it is still an error', () => {
      expect(vars(loadConfig({ ...dbOnly, DATABASE_SSL: 'disable' }, { scope: 'database' }).errors)).toEqual(['DATABASE_SSL']);
      expect(vars(loadConfig({ ...dbOnly, DB_POOL_SIZE: '0' }, { scope: 'database' }).errors)).toEqual(['DB_POOL_SIZE']);
      expect(vars(loadConfig({ ...dbOnly, LOG_LEVEL: 'loud' }, { scope: 'database' }).errors)).toEqual(['LOG_LEVEL']);
      expect(vars(loadConfig({ ...dbOnly, NODE_ENV: 'prod' }, { scope: 'database' }).errors)).toContain('NODE_ENV');
      expect(vars(loadConfig({ NODE_ENV: 'production' }, { scope: 'database' }).errors)).toEqual(['DATABASE_URL']);
    });

    it('when other settings are wrong, then they are ignored for this scope (the commands do not use them)', () => {
      const r = loadConfig({ ...dbOnly, JWT_SECRET: 'short', CORS_ORIGINS: '*', SIEM_PROVIDER: 'nope' }, { scope: 'database' });
      expect(r.errors).toEqual([]);
      expect(r.config).not.toBeNull();
    });
  });
});
