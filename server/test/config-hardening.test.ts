/** Settings of the application half of the security review (issue 15): proxies, lockout, previous JWT secrets, metrics, platform tenant. */
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../src/config';
import { TEST_SIGNING_KEY } from './helpers/env';

const strong = () => randomBytes(48).toString('base64');
const key32 = () => randomBytes(32).toString('base64');
const vars = (issues: { variable: string }[]) => issues.map((i) => i.variable);

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
    JWT_SIGNING_KEY: TEST_SIGNING_KEY, // required in production since access tokens are ES256 (issue 19)
    AZURE_KEYVAULT_URL: 'https://vault.vault.azure.net',
    AUTH0_DOMAIN: 'tenant.eu.auth0.com',
    AUTH0_CLIENT_ID: 'client-123',
    CORS_ORIGINS: 'https://app.example.com',
    SIEM_PROVIDER: 'splunk',
    SIEM_ENDPOINT_URL: 'https://splunk.example.com:8088',
    SIEM_API_KEY: 'hec-token-123',
    AZURE_STORAGE_ACCOUNT_URL: 'https://acct.blob.core.windows.net',
    METRICS_TOKEN: 'm'.repeat(10) + randomBytes(16).toString('hex'),
    ...over,
  };
}

describe('configuration: proxies and the login lockout', () => {
  test('when TRUST_PROXY=true in production, then it is refused (a hop count or subnet list is required); a hop count or subnets pass; outside production true is only warned about', () => {
    const r = loadConfig(prodEnv({ TRUST_PROXY: 'true' }));
    expect(vars(r.errors)).toEqual(['TRUST_PROXY']);
    expect(r.errors[0]?.message).toMatch(/hop|subnet/);
    expect(loadConfig(prodEnv({ TRUST_PROXY: '1' })).errors).toEqual([]);
    expect(loadConfig(prodEnv({ TRUST_PROXY: '10.0.0.0/8, fd00::/8' })).errors).toEqual([]);
    const dev = loadConfig(base({ TRUST_PROXY: 'true' }));
    expect(dev.errors).toEqual([]);
    expect(vars(dev.warnings)).toContain('TRUST_PROXY');
  });

  test('when the e-mail lockout settings are given, then they are used; out of range they are refused', () => {
    const c = loadConfig(base({ LOGIN_EMAIL_MAX_FAILURES: '25', LOGIN_EMAIL_LOCKOUT_WINDOW: '2h' })).config!;
    expect(c.login).toMatchObject({
      maxFailures: 5,
      lockoutWindowMs: 900_000,
      emailMaxFailures: 25,
      emailLockoutWindowMs: 7_200_000,
    });
    expect(
      vars(loadConfig(base({ LOGIN_EMAIL_MAX_FAILURES: '0', LOGIN_EMAIL_LOCKOUT_WINDOW: 'soon' })).errors).sort(),
    ).toEqual(['LOGIN_EMAIL_LOCKOUT_WINDOW', 'LOGIN_EMAIL_MAX_FAILURES']);
  });

  test('when IDP_JWKS_CACHE_TTL is set, then it is the key-set freshness; nonsense is refused', () => {
    expect(loadConfig(base({ IDP_JWKS_CACHE_TTL: '30s' })).config!.idp.jwksCacheTtlMs).toBe(30_000);
    expect(loadConfig(base()).config!.idp.jwksCacheTtlMs).toBe(600_000);
    expect(vars(loadConfig(base({ IDP_JWKS_CACHE_TTL: 'x' })).errors)).toEqual(['IDP_JWKS_CACHE_TTL']);
  });
});

describe('configuration: JWT_PREVIOUS_SECRETS expiry', () => {
  const now = Date.parse('2026-12-06T00:00:00Z');

  test('when an entry carries @<ISO time>, then the secret and its expiry are parsed apart (the secret never holds the suffix) and no warning is given within lifetime + 24 h', () => {
    const old = strong();
    const r = loadConfig(base({ JWT_PREVIOUS_SECRETS: `${old}@2026-12-06T12:00:00Z` }), { now });
    expect(r.errors).toEqual([]);
    expect(r.config!.jwt.previousSecrets).toEqual([old]);
    expect(r.config!.jwt.previousSecretsNotAfter).toEqual([Date.parse('2026-12-06T12:00:00Z')]);
    expect(vars(r.warnings)).not.toContain('JWT_PREVIOUS_SECRETS');
  });

  test('when an entry has no expiry, then it is accepted with a warning saying how to add one', () => {
    const r = loadConfig(base({ JWT_PREVIOUS_SECRETS: strong() }), { now });
    expect(r.config!.jwt.previousSecretsNotAfter).toEqual([null]);
    expect(r.warnings.find((w) => w.variable === 'JWT_PREVIOUS_SECRETS')?.message).toMatch(/no expiry.*secret@/);
  });

  test('when an expiry lies further ahead than the access-token lifetime + 24 h, or has passed, then a warning says so (without the secret)', () => {
    const secret = strong();
    const far = loadConfig(base({ JWT_PREVIOUS_SECRETS: `${secret}@2027-06-01T00:00:00Z` }), { now });
    expect(far.warnings.find((w) => w.variable === 'JWT_PREVIOUS_SECRETS')?.message).toMatch(/lifetime \+ 24 h/);
    const past = loadConfig(base({ JWT_PREVIOUS_SECRETS: `${secret}@2026-12-01T00:00:00Z` }), { now });
    expect(past.warnings.find((w) => w.variable === 'JWT_PREVIOUS_SECRETS')?.message).toMatch(/expired .* refused/);
    expect(JSON.stringify([...far.warnings, ...past.warnings])).not.toContain(secret);
  });

  test('when the expiry is not a valid ISO time, then it is refused naming the entry, never echoing it', () => {
    const secret = strong();
    const r = loadConfig(base({ JWT_PREVIOUS_SECRETS: `${strong()}@2026-12-31T00:00:00Z,${secret}@2026-13-45` }), {
      now,
    });
    expect(r.errors).toEqual([
      { variable: 'JWT_PREVIOUS_SECRETS', message: expect.stringMatching(/^entry 2 has an invalid expiry/) },
    ]);
    expect(JSON.stringify(r.errors)).not.toContain(secret);
  });
});
