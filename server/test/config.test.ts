import { randomBytes } from 'node:crypto';
import { DbTargetError, resolveDbTarget } from '../src/ops/db-target';
import { formatIssues, loadConfig, weakSecretReason } from '../src/config';
import { generateSigningKey } from '../src/lib/jws-keys';

const strong = () => randomBytes(48).toString('base64');
const key32 = () => randomBytes(32).toString('base64');
const SIGNING_KEY = generateSigningKey('ES256');

function base(over: Record<string, string | undefined> = {}) {
  return {
    NODE_ENV: 'development',
    DATABASE_URL: 'postgres://u:pw@127.0.0.1:5432/db',
    JWT_SECRET: strong(),
    FLEET_ENCRYPTION_KEY: key32(),
    ...over,
  };
}

function prodEnv(over: Record<string, string | undefined> = {}) {
  return {
    NODE_ENV: 'production',
    DATABASE_URL: 'postgres://app:S3cure-Passw0rd-xyz@db.internal:5432/fleet',
    DATABASE_SSL: 'verify-full',
    JWT_SECRET: strong(),
    JWT_SIGNING_KEY: SIGNING_KEY,
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
    expect(c.login).toEqual({
      maxFailures: 5,
      lockoutWindowMs: 900000,
      emailMaxFailures: 10,
      emailLockoutWindowMs: 3_600_000,
    });
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
  ])(
    'when JWT_SECRET is weak (%s), then start-up refuses it and names the variable without echoing it',
    (_name, value) => {
      const r = loadConfig(base({ JWT_SECRET: value }));
      expect(r.config).toBeNull();
      expect(vars(r.errors)).toContain('JWT_SECRET');
      expect(formatIssues(r)).not.toContain(value);
    },
  );

  test('when JWT_SECRET is random, then it is not weak', () => {
    for (let i = 0; i < 50; i++) expect(weakSecretReason(strong())).toBeNull();
  });

  test('when FLEET_ENCRYPTION_KEY is not base64 of exactly 32 bytes, then it is refused', () => {
    for (const bad of [
      'short',
      randomBytes(16).toString('base64'),
      randomBytes(33).toString('base64'),
      randomBytes(32).toString('hex'),
      randomBytes(32).toString('base64url').replace(/=/g, '') + '!',
    ]) {
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
    const r = loadConfig(
      base({ PORT: '70000', DB_POOL_SIZE: '0', RATE_LIMIT_MAX: 'lots', JWT_EXPIRES_IN: '15 minutes' }),
    );
    expect(vars(r.errors)).toEqual(
      expect.arrayContaining(['PORT', 'DB_POOL_SIZE', 'RATE_LIMIT_MAX', 'JWT_EXPIRES_IN']),
    );
  });

  test('when several variables are wrong, then every problem is reported at once', () => {
    const r = loadConfig(
      base({
        JWT_SECRET: 'changeme',
        FLEET_ENCRYPTION_KEY: 'nope',
        DATABASE_URL: 'ftp://x',
        PORT: '-1',
        SIEM_PROVIDER: 'graylog',
      }),
    );
    expect(vars(r.errors)).toEqual(
      expect.arrayContaining(['JWT_SECRET', 'FLEET_ENCRYPTION_KEY', 'DATABASE_URL', 'PORT', 'SIEM_PROVIDER']),
    );
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
    expect(vars(r.errors)).toEqual(
      expect.arrayContaining(['DATABASE_URL', 'JWT_SECRET', 'AUTH0_DOMAIN', 'FLEET_ENCRYPTION_KEY']),
    );
  });

  test('when production CORS origins are http, then they are refused', () => {
    const r = loadConfig(prodEnv({ CORS_ORIGINS: 'https://ok.example.com,http://app.example.com' }));
    expect(vars(r.errors)).toContain('CORS_ORIGINS');
  });

  test('when AZURE_KEYVAULT_URL or SIEM_AZURE_AUTHORITY_HOST carries user:password@, then it is refused without echoing it', () => {
    const r = loadConfig(
      base({
        AZURE_KEYVAULT_URL: 'https://u:Zq7kv@vault.vault.azure.net',
        SIEM_PROVIDER: 'sentinel',
        SIEM_AZURE_AUTHORITY_HOST: 'https://u:Zq7kv@login.microsoftonline.us',
      }),
    );
    expect(vars(r.errors)).toEqual(expect.arrayContaining(['AZURE_KEYVAULT_URL', 'SIEM_AZURE_AUTHORITY_HOST']));
    expect(JSON.stringify(r.errors)).not.toContain('Zq7kv');
  });

  test('when REDIS_URL has a port out of range, then the message points at the port, not the scheme (and holds no password)', () => {
    const r = loadConfig(base({ REDIS_URL: 'redis://u:Zq7pw@x:99999' }));
    expect(r.errors).toContainEqual({ variable: 'REDIS_URL', message: expect.stringMatching(/port \(1-65535\)/) });
    expect(JSON.stringify(r.errors)).not.toContain('Zq7pw');
  });

  test('when a CORS origin holds a wildcard (https://*.example.com), then it is refused everywhere, since no origin would ever match it', () => {
    for (const env of [
      prodEnv({ CORS_ORIGINS: 'https://ok.example.com,https://*.example.com' }),
      base({ CORS_ORIGINS: 'http://*.localhost:3000' }),
    ]) {
      const r = loadConfig(env);
      expect(r.errors).toContainEqual(
        expect.objectContaining({ variable: 'CORS_ORIGINS', message: expect.stringMatching(/wildcard/) }),
      );
    }
  });

  test('when production uses a remote database without TLS, then it is refused; a loopback one is only warned about', () => {
    expect(vars(loadConfig(prodEnv({ DATABASE_SSL: 'disable' })).errors)).toContain('DATABASE_SSL');
    const local = loadConfig(
      prodEnv({ DATABASE_URL: 'postgres://app:S3cure-Passw0rd-xyz@127.0.0.1:5432/fleet', DATABASE_SSL: undefined }),
    );
    expect(local.errors).toEqual([]);
    expect(local.config!.database.ssl).toBe('disable');
    expect(vars(local.warnings)).toContain('DATABASE_URL');
  });

  test('when production asks for the development issuer or an http identity provider, then it is refused', () => {
    expect(vars(loadConfig(prodEnv({ FLEET_DEV_ISSUER: 'true' })).errors)).toContain('FLEET_DEV_ISSUER');
    expect(
      vars(loadConfig(prodEnv({ AUTH0_DOMAIN: undefined, AUTH0_ISSUER_BASE_URL: 'http://127.0.0.1:9999/' })).errors),
    ).toContain('AUTH0_ISSUER_BASE_URL');
  });

  test('when outside production an http identity provider is on loopback, then it is accepted; a remote http one is not', () => {
    expect(loadConfig(base({ AUTH0_ISSUER_BASE_URL: 'http://127.0.0.1:9999/', AUTH0_CLIENT_ID: 'x' })).errors).toEqual(
      [],
    );
    expect(
      vars(loadConfig(base({ AUTH0_ISSUER_BASE_URL: 'http://idp.example.com/', AUTH0_CLIENT_ID: 'x' })).errors),
    ).toContain('AUTH0_ISSUER_BASE_URL');
  });

  test('when production has no SIEM and the key comes from the environment, then both are warnings', () => {
    const r = loadConfig(
      prodEnv({ SIEM_PROVIDER: undefined, AZURE_KEYVAULT_URL: undefined, FLEET_ENCRYPTION_KEY: key32() }),
    );
    expect(r.errors).toEqual([]);
    expect(vars(r.warnings)).toEqual(expect.arrayContaining(['SIEM_PROVIDER', 'AZURE_KEYVAULT_URL']));
  });

  test('when the database is given in parts, then a URL is assembled', () => {
    const r = loadConfig(
      base({
        DATABASE_URL: undefined,
        DATABASE_HOST: 'db.local',
        DATABASE_PORT: '6543',
        DATABASE_NAME: 'fleet',
        DATABASE_USER: 'app',
        DATABASE_PASSWORD: 'p@ss/word',
      }),
    );
    expect(r.errors).toEqual([]);
    expect(r.config!.database.url).toBe('postgres://app:p%40ss%2Fword@db.local:6543/fleet');
  });

  test('when no database is configured in development, then the embedded database is selected', () => {
    const r = loadConfig(
      { NODE_ENV: 'development', JWT_SECRET: strong(), FLEET_ENCRYPTION_KEY: key32() },
      { devSecrets: { EMBEDDED_PG_PASSWORD: 'x' } },
    );
    expect(r.config!.database.url).toBeNull();
    expect(r.config!.database.embeddedPassword).toBe('x');
    expect(r.config!.idp.devIssuer).toBe(true);
  });

  test('when development secrets are supplied, then they never apply in production', () => {
    const r = loadConfig(
      { NODE_ENV: 'production' },
      { devSecrets: { JWT_SECRET: strong(), FLEET_ENCRYPTION_KEY: key32() } },
    );
    expect(vars(r.errors)).toEqual(expect.arrayContaining(['JWT_SECRET', 'FLEET_ENCRYPTION_KEY']));
  });

  test('when SIEM is chosen without its endpoint or credential, then both are errors', () => {
    const r = loadConfig(base({ SIEM_PROVIDER: 'datadog' }));
    expect(vars(r.errors)).toEqual(expect.arrayContaining(['SIEM_ENDPOINT_URL', 'SIEM_API_KEY']));
    expect(vars(loadConfig(base({ SIEM_PROVIDER: 'syslog', SIEM_ENDPOINT_URL: 'https://x' })).errors)).toContain(
      'SIEM_ENDPOINT_URL',
    );
  });

  test('when JWT_PREVIOUS_SECRETS holds a weak entry, then it is refused without echoing it', () => {
    const r = loadConfig(base({ JWT_PREVIOUS_SECRETS: `${strong()},changeme` }));
    expect(vars(r.errors)).toContain('JWT_PREVIOUS_SECRETS');
    expect(formatIssues(r)).not.toContain('changeme');
  });

  test('when CORS_ORIGINS holds a wildcard or a path, then it is refused', () => {
    expect(vars(loadConfig(base({ CORS_ORIGINS: '*' })).errors)).toContain('CORS_ORIGINS');
    expect(vars(loadConfig(base({ CORS_ORIGINS: 'https://a.example.com/app' })).errors)).toContain('CORS_ORIGINS');
    expect(loadConfig(base({ FRONTEND_URL: 'https://a.example.com' })).config!.cors.origins).toEqual([
      'https://a.example.com',
    ]);
  });

  test('when NODE_ENV or DATABASE_SSL hold unknown values, then they are refused', () => {
    expect(vars(loadConfig(base({ NODE_ENV: 'staging' })).errors)).toContain('NODE_ENV');
    expect(vars(loadConfig(base({ DATABASE_SSL: 'maybe' })).errors)).toContain('DATABASE_SSL');
  });

  test('when the session absolute timeout is shorter than the idle timeout, then it is refused', () => {
    expect(vars(loadConfig(base({ SESSION_IDLE_TIMEOUT: '2h', SESSION_ABSOLUTE_TIMEOUT: '1h' })).errors)).toContain(
      'SESSION_ABSOLUTE_TIMEOUT',
    );
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
    const dbOnly = {
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://app:S3cure-Passw0rd-xyz@db.internal:5432/fleet',
      DATABASE_SSL: 'verify-full',
    };

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
      expect(vars(loadConfig({ ...dbOnly, DATABASE_SSL: 'disable' }, { scope: 'database' }).errors)).toEqual([
        'DATABASE_SSL',
      ]);
      expect(vars(loadConfig({ ...dbOnly, DB_POOL_SIZE: '0' }, { scope: 'database' }).errors)).toEqual([
        'DB_POOL_SIZE',
      ]);
      expect(vars(loadConfig({ ...dbOnly, LOG_LEVEL: 'loud' }, { scope: 'database' }).errors)).toEqual(['LOG_LEVEL']);
      expect(vars(loadConfig({ ...dbOnly, NODE_ENV: 'prod' }, { scope: 'database' }).errors)).toContain('NODE_ENV');
      expect(vars(loadConfig({ NODE_ENV: 'production' }, { scope: 'database' }).errors)).toEqual(['DATABASE_URL']);
    });

    it('when other settings are wrong, then they are ignored for this scope (the commands do not use them)', () => {
      const r = loadConfig(
        { ...dbOnly, JWT_SECRET: 'short', CORS_ORIGINS: '*', SIEM_PROVIDER: 'nope' },
        { scope: 'database' },
      );
      expect(r.errors).toEqual([]);
      expect(r.config).not.toBeNull();
    });
  });

  describe('DATABASE_URL cannot override the checked settings', () => {
    it('when the URL carries sslmode=disable (or no-verify) for a remote host in production, then it is refused; TLS parameters are taken out of the URL the driver gets', () => {
      const remote = 'postgres://app:S3cure-Passw0rd-xyz@db.internal:5432/fleet';
      expect(
        vars(loadConfig(prodEnv({ DATABASE_URL: `${remote}?sslmode=disable`, DATABASE_SSL: undefined })).errors),
      ).toContain('DATABASE_SSL');
      expect(vars(loadConfig(prodEnv({ DATABASE_URL: `${remote}?sslmode=disable` })).errors)).toContain('DATABASE_SSL'); // disagrees with DATABASE_SSL=verify-full
      expect(vars(loadConfig(prodEnv({ DATABASE_URL: `${remote}?sslmode=no-verify` })).errors)).toContain(
        'DATABASE_URL',
      );
      const ok = loadConfig(prodEnv({ DATABASE_URL: `${remote}?sslmode=require`, DATABASE_SSL: undefined }));
      expect(ok.errors).toEqual([]);
      expect(ok.config?.database.ssl).toBe('require');
      expect(ok.config?.database.url).toBe(remote);
    });

    it('when the URL carries host, password, options or any other parameter, then it is refused without echoing the URL', () => {
      for (const q of [
        'host=db.example.com',
        'password=x',
        'options=-c%20role%3Dpostgres',
        'user=postgres',
        'sslcert=/tmp/c.pem',
        'sslmode=require&sslmode=disable',
      ]) {
        const r = loadConfig(
          prodEnv({ DATABASE_URL: `postgres://app:S3cure-Passw0rd-xyz@db.internal:5432/fleet?${q}` }),
        );
        expect({ q, vars: vars(r.errors) }).toEqual({ q, vars: expect.arrayContaining(['DATABASE_URL']) });
        expect(formatIssues(r)).not.toContain('S3cure-Passw0rd-xyz');
      }
    });

    it('when sslrootcert names a readable file, then it becomes the CA file; a missing one is refused', () => {
      const r = loadConfig(
        prodEnv({
          DATABASE_URL: `postgres://app:S3cure-Passw0rd-xyz@db.internal:5432/fleet?sslrootcert=${encodeURIComponent(__filename)}`,
        }),
      );
      expect(r.errors).toEqual([]);
      expect(r.config?.database.caFile).toBe(__filename);
      expect(r.config?.database.url).toBe('postgres://app:S3cure-Passw0rd-xyz@db.internal:5432/fleet');
      expect(
        vars(
          loadConfig(
            prodEnv({
              DATABASE_URL: 'postgres://app:S3cure-Passw0rd-xyz@db.internal:5432/fleet?sslrootcert=/nonexistent/ca.pem',
            }),
          ).errors,
        ),
      ).toContain('DATABASE_URL');
    });

    it('when the password has a malformed percent-encoding, then DATABASE_URL is reported without the value (no URIError)', () => {
      const r = loadConfig(prodEnv({ DATABASE_URL: 'postgres://app:Pa%zzSecretXYZ@db.example.com/fleet' }));
      expect(vars(r.errors)).toContain('DATABASE_URL');
      expect(formatIssues(r)).not.toContain('SecretXYZ');
    });

    it('when the database name has a malformed percent-encoding, then DATABASE_URL is refused naming it (no URIError), in development too', () => {
      const r = loadConfig(base({ DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/%E0%A4%A' }));
      expect(r.errors).toEqual([
        expect.objectContaining({ variable: 'DATABASE_URL', message: expect.stringMatching(/database name/) }),
      ]);
      expect(() =>
        resolveDbTarget({ DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/%E0%A4%A' }, { cwd: '/' }),
      ).toThrow(DbTargetError);
    });

    it('when DATABASE_HOST is not a host name or address, then it is refused (it would be pasted into a URL)', () => {
      const parts = {
        DATABASE_URL: undefined,
        DATABASE_NAME: 'f',
        DATABASE_USER: 'u',
        DATABASE_PASSWORD: 'Xq9vL2mTz8Rw4KpN',
      };
      expect(
        vars(loadConfig(prodEnv({ ...parts, DATABASE_HOST: 'db.example.com/evil?sslmode=disable&x=' })).errors),
      ).toContain('DATABASE_HOST');
      expect(loadConfig(prodEnv({ ...parts, DATABASE_HOST: 'db.example.com' })).errors).toEqual([]);
      expect(vars(loadConfig(base({ ...parts, DATABASE_HOST: '::1' })).errors)).not.toContain('DATABASE_HOST');
    });
  });

  describe('settings start-up would only discover when it fails', () => {
    it('when TRUST_PROXY has an entry Express cannot compile, then it is refused; names, addresses and subnets pass', () => {
      for (const bad of ['yes', 'all', '10.0.0.0/33', '10.0.0.1/8/1', 'loopback, nope'])
        expect({ bad, vars: vars(loadConfig(base({ TRUST_PROXY: bad })).errors) }).toEqual({
          bad,
          vars: ['TRUST_PROXY'],
        });
      for (const good of ['loopback', 'loopback, 10.0.0.0/8', '::1', 'fd00::/8', '10.0.0.0/255.0.0.0', '2', 'false'])
        expect({ good, errors: loadConfig(base({ TRUST_PROXY: good })).errors }).toEqual({ good, errors: [] });
    });

    it('when HOST, SIEM_TLS_CA_FILE or LOG_DIR cannot work, then check-env says so (as start-up would fail)', () => {
      expect(vars(loadConfig(base({ HOST: 'not_a_host' })).errors)).toEqual(['HOST']);
      expect(loadConfig(base({ HOST: '0.0.0.0' })).errors).toEqual([]);
      expect(loadConfig(base({ HOST: '::' })).errors).toEqual([]);
      expect(
        vars(
          loadConfig(
            base({
              SIEM_PROVIDER: 'syslog',
              SIEM_ENDPOINT_URL: 'tls://127.0.0.1:6514',
              SIEM_TLS_CA_FILE: '/nonexistent/ca.pem',
            }),
          ).errors,
        ),
      ).toEqual(['SIEM_TLS_CA_FILE']);
      expect(vars(loadConfig(base({ LOG_DIR: `${__filename}/logs` })).errors)).toEqual(['LOG_DIR']);
      expect(loadConfig(base({ LOG_DIR: '/tmp/fleet-logs-not-created-yet/app' })).errors).toEqual([]);
    });

    it('when the storage connection string has no credential, or uses http in production, then it is refused', () => {
      expect(vars(loadConfig(base({ AZURE_STORAGE_CONNECTION_STRING: 'AccountName=acct' })).errors)).toEqual([
        'AZURE_STORAGE_CONNECTION_STRING',
      ]);
      const key = randomBytes(64).toString('base64');
      for (const cs of [
        `DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=${key}`,
        'BlobEndpoint=http://blob.example.com/acct;SharedAccessSignature=sv=2024&sig=abc',
      ]) {
        const r = loadConfig(prodEnv({ AZURE_STORAGE_ACCOUNT_URL: undefined, AZURE_STORAGE_CONNECTION_STRING: cs }));
        expect(vars(r.errors)).toEqual(['AZURE_STORAGE_CONNECTION_STRING']);
        expect(formatIssues(r)).not.toContain(key);
        expect(formatIssues(r)).not.toContain('sig=abc');
      }
      expect(
        loadConfig(
          prodEnv({
            AZURE_STORAGE_ACCOUNT_URL: undefined,
            AZURE_STORAGE_CONNECTION_STRING: `DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=${key};EndpointSuffix=core.windows.net`,
          }),
        ).errors,
      ).toEqual([]);
    });

    it('when CSRF_SECRET is weak, then it is refused like JWT_SECRET', () => {
      expect(vars(loadConfig(base({ CSRF_SECRET: 'x' })).errors)).toEqual(['CSRF_SECRET']);
      expect(loadConfig(base({ CSRF_SECRET: strong() })).errors).toEqual([]);
    });

    it('when FLEET_ENCRYPTION_PREVIOUS_KEYS repeats a version or holds a non-random key, then it is refused naming the entry', () => {
      const a = key32();
      const dup = loadConfig(base({ FLEET_ENCRYPTION_PREVIOUS_KEYS: `v1:${a}, v1:${key32()}` }));
      expect(dup.errors).toEqual([
        { variable: 'FLEET_ENCRYPTION_PREVIOUS_KEYS', message: 'entry 2 repeats version v1' },
      ]);
      expect(
        vars(loadConfig(base({ FLEET_ENCRYPTION_PREVIOUS_KEYS: `v1:${Buffer.alloc(32).toString('base64')}` })).errors),
      ).toEqual(['FLEET_ENCRYPTION_PREVIOUS_KEYS']);
      expect(formatIssues(dup)).not.toContain(a);
    });

    it('when CORS_ORIGINS has credentials in an entry, then it is refused without echoing them', () => {
      const r = loadConfig(base({ CORS_ORIGINS: 'https://user:pass@a.example.com' }));
      expect(vars(r.errors)).toEqual(['CORS_ORIGINS']);
      expect(formatIssues(r)).not.toContain('pass@');
      expect(
        loadConfig(base({ CORS_ORIGINS: 'https://A.Example.com, https://b.example.com:443' })).config?.cors.origins,
      ).toEqual(['https://a.example.com', 'https://b.example.com']);
    });

    it('when FLEET_DEV_ISSUER or AUTH0_DOMAIN is malformed, then it is refused', () => {
      expect(vars(loadConfig(base({ FLEET_DEV_ISSUER: 'maybe' })).errors)).toEqual(['FLEET_DEV_ISSUER']);
      for (const d of ['ftp://tenant.auth0.com', 'tenant..auth0.com', '-tenant.auth0.com', 'http://tenant.auth0.com']) {
        expect({ d, vars: vars(loadConfig(prodEnv({ AUTH0_DOMAIN: d })).errors) }).toEqual({
          d,
          vars: ['AUTH0_DOMAIN'],
        });
      }
      expect(loadConfig(prodEnv({ AUTH0_DOMAIN: 'https://tenant.eu.auth0.com/' })).config?.idp.issuerUrl).toBe(
        'https://tenant.eu.auth0.com/',
      );
      // An invalid issuer URL is one error, not also "AUTH0_DOMAIN is required".
      expect(vars(loadConfig(prodEnv({ AUTH0_DOMAIN: undefined, AUTH0_ISSUER_BASE_URL: 'ftp://x' })).errors)).toEqual([
        'AUTH0_ISSUER_BASE_URL',
      ]);
    });
  });

  it('when a secret is a keyboard or alphabet run anywhere (not only at its start), then it is weak; 40,000 random secrets are never refused', () => {
    expect(weakSecretReason('qwertyuiopasdfghjklzxcvbnm1234567890QW')).toMatch(/sequence/);
    expect(weakSecretReason('Xabcdefghijklmnopqrstuvwxyz0123456789')).toMatch(/sequence/);
    for (let i = 0; i < 20_000; i++) {
      expect(weakSecretReason(randomBytes(48).toString('base64'))).toBeNull();
      expect(weakSecretReason(randomBytes(32).toString('hex'))).toBeNull();
    }
  });

  it('when a variable under the service’s prefixes is not a setting (a typo), then a warning names it and the closest setting; other variables are not reported', () => {
    const r = loadConfig(
      base({
        JWT_SECRETT: 'x',
        DATABSE_URL: 'y',
        SIEM_PROVIDR: 'splunk',
        AZURE_CLIENT_ID: 'sdk-credential',
        FLEET_ROOT: '/opt/fleet',
        TEST_DATABASE_URL: 'postgres://x/y',
      }),
    );
    expect(r.errors).toEqual([]);
    const w = Object.fromEntries(r.warnings.map((i) => [i.variable, i.message]));
    expect(w.JWT_SECRETT).toMatch(/not a setting .*did you mean JWT_SECRET\?/);
    expect(w.SIEM_PROVIDR).toMatch(/did you mean SIEM_PROVIDER\?/);
    expect(w.DATABSE_URL).toBeUndefined(); // no prefix of this service: not ours to judge
    for (const v of ['AZURE_CLIENT_ID', 'FLEET_ROOT', 'TEST_DATABASE_URL']) expect(w[v]).toBeUndefined();
    expect(loadConfig(prodEnv()).warnings.map((i) => i.variable)).not.toContain('JWT_SECRET');
  });

  it('when AUTH0_CLIENT_ID has surrounding spaces, AUTH0_DOMAIN and AUTH0_ISSUER_BASE_URL disagree, CORS_ORIGINS lists nothing, or the archive has no immutability in production, then it is said', () => {
    expect(vars(loadConfig(prodEnv({ AUTH0_CLIENT_ID: ' abc ' })).errors)).toEqual(['AUTH0_CLIENT_ID']);
    expect(vars(loadConfig(prodEnv({ AUTH0_ISSUER_BASE_URL: 'https://other.eu.auth0.com/' })).warnings)).toContain(
      'AUTH0_DOMAIN',
    );
    expect(vars(loadConfig(prodEnv({ AUTH0_ISSUER_BASE_URL: 'https://tenant.eu.auth0.com/' })).warnings)).not.toContain(
      'AUTH0_DOMAIN',
    );
    expect(vars(loadConfig(base({ CORS_ORIGINS: ',,,' })).warnings)).toContain('CORS_ORIGINS');
    expect(vars(loadConfig(prodEnv()).warnings)).toContain('AUDIT_ARCHIVE_IMMUTABILITY_DAYS');
    expect(vars(loadConfig(prodEnv({ AUDIT_ARCHIVE_IMMUTABILITY_DAYS: '365' })).warnings)).not.toContain(
      'AUDIT_ARCHIVE_IMMUTABILITY_DAYS',
    );
  });

  it('when MIGRATION_DATABASE_URL logs in as the same user as DATABASE_URL, then production refuses it, also when the two URLs are identical', () => {
    const same = prodEnv().DATABASE_URL;
    for (const owner of [same, same.replace('db.internal', 'db.internal.')]) {
      const r = loadConfig(prodEnv({ MIGRATION_DATABASE_URL: owner }));
      expect({ owner, errors: vars(r.errors) }).toEqual({ owner, errors: ['MIGRATION_DATABASE_URL'] });
    }
    // Outside production the same URL twice is the one-login setup: nothing to say.
    const dev = 'postgres://postgres@127.0.0.1:5432/fleet';
    const r = loadConfig(base({ DATABASE_URL: dev, MIGRATION_DATABASE_URL: dev }));
    expect(vars(r.errors)).not.toContain('MIGRATION_DATABASE_URL');
    expect(vars(r.warnings)).not.toContain('MIGRATION_DATABASE_URL');
  });

  it('when TRUST_PROXY names a subnet as wide as everyone (0.0.0.0/0, ::/0, a /0 netmask), then production refuses it and development warns', () => {
    for (const wide of ['0.0.0.0/0', '::/0', '10.0.0.0/8, 0.0.0.0/1', '0.0.0.0/0.0.0.0', '2000::/3']) {
      expect({ wide, errors: vars(loadConfig(prodEnv({ TRUST_PROXY: wide })).errors) }).toEqual({
        wide,
        errors: ['TRUST_PROXY'],
      });
      expect({ wide, warns: vars(loadConfig(base({ TRUST_PROXY: wide })).warnings).includes('TRUST_PROXY') }).toEqual({
        wide,
        warns: true,
      });
    }
    for (const narrow of ['10.0.0.0/8', '10.0.0.0/255.0.0.0', 'fd00::/8', '203.0.113.0/24', 'loopback'])
      expect({ narrow, errors: loadConfig(prodEnv({ TRUST_PROXY: narrow })).errors }).toEqual({ narrow, errors: [] });
  });

  it('when TRUST_PROXY trusts more than 5 hops, then a warning says clients could choose their IP', () => {
    expect(vars(loadConfig(base({ TRUST_PROXY: '99' })).warnings)).toContain('TRUST_PROXY');
    expect(vars(loadConfig(base({ TRUST_PROXY: '2' })).warnings)).not.toContain('TRUST_PROXY');
  });
});
