/**
 * Jest globalSetup: one real PostgreSQL for the run, migrated once.
 * - TEST_DATABASE_URL set: a throw-away database on that server (dropped at teardown).
 * - otherwise: an embedded PostgreSQL 15 in a temporary directory on a free port.
 * Exposes FLEET_TEST_DB_URL (the migrated database, owner login), FLEET_TEST_APP_DB_URL (the
 * same database as a runtime login that is a member of fleet_app only, as in production) and
 * FLEET_TEST_ADMIN_URL (same server, `postgres` database, for tests that create databases of
 * their own).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createRuntimeLogin } from '../../src/db/logins';
import { runMigrations } from '../../src/db/migrate';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded';

interface TestDbState {
  embedded?: EmbeddedDatabase;
  tmpDir?: string;
  adminUrl: string;
  dbName: string;
  /** The runtime login created for this run (cluster-wide: dropped at teardown). */
  appLogin?: string;
}

export default async function globalSetup(): Promise<void> {
  const external = process.env.TEST_DATABASE_URL;
  let state: TestDbState;
  let dbUrl: string;
  if (external) {
    const u = new URL(external);
    const dbName = `fleet_test_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
    const adminUrl = external;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(dbName)}`);
    await admin.end();
    u.pathname = `/${dbName}`;
    dbUrl = u.toString();
    state = { adminUrl, dbName };
  } else {
    const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-test-pg-'));
    fs.chmodSync(tmpDir, 0o755);
    const embedded = await startEmbeddedPostgres({
      dataDir: path.join(tmpDir, 'data'),
      password: randomBytes(18).toString('base64url'),
      database: 'fleet_test',
      port: 0,
    });
    dbUrl = embedded.url;
    state = { embedded, tmpDir, adminUrl: embedded.adminUrl, dbName: 'fleet_test' };
  }
  await runMigrations(dbUrl);
  // The app under test logs in as a runtime login, like production: never the owner.
  const appLogin = `fleet_rt_${randomBytes(4).toString('hex')}`;
  const appPassword = randomBytes(18).toString('base64url');
  const owner = new pg.Client({ connectionString: dbUrl });
  await owner.connect();
  try {
    await createRuntimeLogin(owner, appLogin, appPassword);
  } finally {
    await owner.end();
  }
  state.appLogin = appLogin;
  const appUrl = new URL(dbUrl);
  appUrl.username = appLogin;
  appUrl.password = appPassword;
  process.env.FLEET_TEST_DB_URL = dbUrl;
  process.env.FLEET_TEST_APP_DB_URL = appUrl.toString();
  process.env.FLEET_TEST_ADMIN_URL = state.adminUrl;
  (globalThis as { __FLEET_TEST_DB__?: TestDbState }).__FLEET_TEST_DB__ = state;
}
