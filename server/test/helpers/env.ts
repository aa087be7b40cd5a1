import { randomBytes } from 'node:crypto';
import { generateSigningKey } from '../../src/lib/jws-keys';

/** One access-token signing key per test process (generating one per app would be slow). */
export const TEST_SIGNING_KEY = generateSigningKey('ES256');

export function testDbUrl(): string {
  const url = process.env.FLEET_TEST_DB_URL;
  if (!url)
    throw new Error('FLEET_TEST_DB_URL is not set: run the tests through jest (globalSetup starts the database)');
  return url;
}

/** The test database as its runtime login (member of fleet_app only): what the app under test uses. */
export function testAppDbUrl(): string {
  const url = process.env.FLEET_TEST_APP_DB_URL;
  if (!url)
    throw new Error('FLEET_TEST_APP_DB_URL is not set: run the tests through jest (globalSetup starts the database)');
  return url;
}

export function testAdminUrl(): string {
  const url = process.env.FLEET_TEST_ADMIN_URL;
  if (!url) throw new Error('FLEET_TEST_ADMIN_URL is not set');
  return url;
}

/** A complete, valid test environment; override any variable. */
export function testEnv(overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    NODE_ENV: 'test',
    // Two logins, as in production: the app runs as the runtime login; the owner migrates.
    DATABASE_URL: testAppDbUrl(),
    MIGRATION_DATABASE_URL: testDbUrl(),
    JWT_SECRET: randomBytes(48).toString('base64'),
    JWT_SIGNING_KEY: TEST_SIGNING_KEY,
    FLEET_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    LOG_LEVEL: 'error',
    RATE_LIMIT_MAX: '100000',
    RATE_LIMIT_USER_MAX: '100000',
    CORS_ORIGINS: 'https://app.example.com',
    FLEET_DATA_DIR: '/nonexistent-test-data-dir',
    ...overrides,
    // A test that names its own DATABASE_URL means one login for everything (unless it names the owner too).
    ...('DATABASE_URL' in overrides && !('MIGRATION_DATABASE_URL' in overrides)
      ? { MIGRATION_DATABASE_URL: undefined }
      : {}),
  };
}

let counter = 0;
/** A tenant id no other test uses (tests share one database). */
export function uniqueTenant(prefix = 't'): string {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

export function uniqueEmail(prefix = 'user'): string {
  counter += 1;
  return `${prefix}.${process.pid}.${Date.now().toString(36)}.${counter}@example.com`;
}
