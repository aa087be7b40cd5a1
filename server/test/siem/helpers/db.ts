/**
 * A database of its own for a SIEM test file. The outbox is one queue for the whole database
 * (a worker claims every tenant's events), so test files that run workers must not share it
 * with other files running in parallel.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { runMigrations } from '../../../src/db/migrate';
import { testAdminUrl, testAppDbUrl } from '../../helpers/env';

export interface IsolatedDatabase {
  /** The owner (superuser) login. */
  url: string;
  /** The run's runtime login (member of fleet_app only) on this database: what the app uses. */
  appUrl: string;
  /** Owner (superuser) pool: no application role, no row-level security. */
  owner: pg.Pool;
  drop(): Promise<void>;
}

export async function createIsolatedDatabase(label: string): Promise<IsolatedDatabase> {
  const adminUrl = testAdminUrl();
  const name = `fleet_siem_${label}_${process.pid}_${Date.now().toString(36)}_${randomBytes(2).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  await runMigrations(url);
  const owner = new pg.Pool({ connectionString: url, max: 4 });
  // An idle connection terminated from outside (another suite on the same server resetting
  // backends) must not crash the test process; the pool replaces it on the next query.
  owner.on('error', () => undefined);
  const app = new URL(testAppDbUrl());
  app.pathname = `/${name}`;
  return {
    url,
    appUrl: app.toString(),
    owner,
    async drop() {
      await owner.end();
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
