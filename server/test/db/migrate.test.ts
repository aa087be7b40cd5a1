import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { MIGRATIONS_DIR, runMigrations } from '../../src/db/migrate';
import { pgSsl } from '../../src/db/pool';
import { testAdminUrl } from '../helpers/env';

async function scratchDb(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `fleet_mig_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: testAdminUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  await admin.end();
  const u = new URL(testAdminUrl());
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const a = new pg.Client({ connectionString: testAdminUrl() });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      await a.end();
    },
  };
}

function copyMigrations(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-mig-'));
  for (const f of fs.readdirSync(MIGRATIONS_DIR)) fs.copyFileSync(path.join(MIGRATIONS_DIR, f), path.join(dir, f));
  return dir;
}

describe('migrations', () => {
  test('when the migrating login may not grant fleet_app, then the error says how to fix it; after the documented grant, the migrations apply', async () => {
    const suffix = `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
    const login = `fleet_owner_${suffix}`;
    const name = `fleet_mig_${suffix}`;
    const password = randomBytes(12).toString('hex');
    const admin = new pg.Client({ connectionString: testAdminUrl() });
    await admin.connect();
    try {
      await admin.query(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleet_app') THEN CREATE ROLE fleet_app NOLOGIN; END IF; END $$",
      );
      // A plain owner login: it owns its database, but has no CREATEROLE and no admin option on fleet_app.
      await admin.query(`CREATE ROLE ${pg.escapeIdentifier(login)} LOGIN PASSWORD ${pg.escapeLiteral(password)}`);
      await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} OWNER ${pg.escapeIdentifier(login)}`);
      const u = new URL(testAdminUrl());
      u.username = login;
      u.password = password;
      u.pathname = `/${name}`;
      await expect(runMigrations(u.toString())).rejects.toThrow(
        /migration 001_app_role\.sql failed: .*GRANT fleet_app TO <this login> WITH ADMIN OPTION.*docs\/OPERATIONS\.md/,
      );
      await admin.query(`GRANT fleet_app TO ${pg.escapeIdentifier(login)} WITH ADMIN OPTION`);
      const r = await runMigrations(u.toString());
      expect(r.applied[0]).toBe('001_app_role');
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(login)}`);
      await admin.end();
    }
  });

  test('when TLS is required (DATABASE_SSL verify-full) and the server cannot provide a verified one, then the migrations do not run over plain TCP', async () => {
    const db = await scratchDb();
    try {
      // The test server has no TLS, or (Debian's) a self-signed certificate: either way verify-full fails before any SQL.
      await expect(runMigrations(db.url, { ssl: pgSsl('verify-full') })).rejects.toThrow();
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      const { rows } = await c.query("SELECT to_regclass('public.schema_migrations') AS t");
      await c.end();
      expect(rows[0].t).toBeNull();
    } finally {
      await db.drop();
    }
  });

  test('when run twice, then the second run applies nothing and the schema is unchanged', async () => {
    const db = await scratchDb();
    try {
      const first = await runMigrations(db.url);
      expect(first.applied.length).toBeGreaterThan(0);
      const second = await runMigrations(db.url);
      expect(second.applied).toEqual([]);
      expect(second.alreadyApplied).toBe(first.applied.length);
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      const { rows } = await c.query(
        "SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name IN ('users','audit_logs','schema_migrations')",
      );
      await c.end();
      expect(rows[0].n).toBe(3);
    } finally {
      await db.drop();
    }
  });

  test('when an applied migration file was edited, then the runner refuses to run', async () => {
    const db = await scratchDb();
    const dir = copyMigrations();
    try {
      await runMigrations(db.url, { dir });
      const f = path.join(dir, '002_users.sql');
      fs.appendFileSync(f, '\n-- edited after the fact\n');
      await expect(runMigrations(db.url, { dir })).rejects.toThrow(/002_users\.sql was changed after it was applied/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      await db.drop();
    }
  });

  test('when two runners start together, then each migration is applied exactly once', async () => {
    const db = await scratchDb();
    try {
      const [a, b] = await Promise.all([runMigrations(db.url), runMigrations(db.url)]);
      const total = a.applied.length + b.applied.length;
      const expected = fs.readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql')).length;
      expect(total).toBe(expected);
      expect(a.applied.length === 0 || b.applied.length === 0).toBe(true);
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      const { rows } = await c.query('SELECT count(*)::int AS n FROM schema_migrations');
      await c.end();
      expect(rows[0].n).toBe(expected);
    } finally {
      await db.drop();
    }
  });

  test('when a migration fails, then it is rolled back and not recorded', async () => {
    const db = await scratchDb();
    const dir = copyMigrations();
    try {
      fs.writeFileSync(
        path.join(dir, '999_broken.sql'),
        'CREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;\n',
      );
      await expect(runMigrations(db.url, { dir })).rejects.toThrow(/999_broken\.sql failed/);
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      const t = await c.query("SELECT to_regclass('public.half_done') AS t");
      const m = await c.query("SELECT count(*)::int AS n FROM schema_migrations WHERE id = '999_broken'");
      await c.end();
      expect(t.rows[0].t).toBeNull();
      expect(m.rows[0].n).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      await db.drop();
    }
  });

  test('when a file name does not follow NNN_name.sql, then the runner refuses it', async () => {
    const dir = copyMigrations();
    try {
      fs.writeFileSync(path.join(dir, 'extra.sql'), 'SELECT 1;');
      await expect(runMigrations('postgres://unused@127.0.0.1:1/x', { dir })).rejects.toThrow(
        /must look like 001_name\.sql/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
