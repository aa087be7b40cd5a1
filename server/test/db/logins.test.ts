/**
 * Two logins (CONTRACT §7): the start-up checks on the runtime login, read from the catalog,
 * one case per refusal; a runtime-login connection cannot become the owner; in production the
 * server never migrates and refuses to start on a behind schema or a privileged login.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { checkRuntimeDatabase, createRuntimeLogin, runtimeLoginSql } from '../../src/db/logins';
import { readMigrations } from '../../src/db/migrate';
import { TEST_SIGNING_KEY, testAdminUrl, testAppDbUrl, testDbUrl } from '../helpers/env';

const ROOT = path.resolve(__dirname, '../../..');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');
const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`;

let owner: pg.Client;
const created: string[] = [];

function urlAs(login: string, password: string, base: string = testDbUrl()): string {
  const u = new URL(base);
  u.username = login;
  u.password = password;
  return u.toString();
}

/** A login created for one case: LOGIN + password + CONNECT, plus the given SQL about it. */
async function makeLogin(tag: string, extra: (id: string) => string[] = () => []): Promise<string> {
  const name = `t_${tag}_${suffix}`;
  const id = pg.escapeIdentifier(name);
  await owner.query(`CREATE ROLE ${id} LOGIN PASSWORD 'pw-${suffix}'`);
  created.push(name);
  await owner.query(
    `GRANT CONNECT ON DATABASE ${pg.escapeIdentifier(new URL(testDbUrl()).pathname.slice(1))} TO ${id}`,
  );
  await owner.query(`GRANT fleet_app TO ${id}`);
  for (const sql of extra(id)) await owner.query(sql);
  return name;
}

async function checkAs(name: string, password = `pw-${suffix}`) {
  const c = new pg.Client({ connectionString: urlAs(name, password) });
  await c.connect();
  try {
    return await checkRuntimeDatabase(c);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  owner = new pg.Client({ connectionString: testDbUrl() });
  await owner.connect();
});

afterAll(async () => {
  for (const name of created.reverse()) {
    const id = pg.escapeIdentifier(name);
    await owner.query(`DROP OWNED BY ${id}`).catch(() => undefined);
    await owner.query(`DROP ROLE IF EXISTS ${id}`).catch(() => undefined);
  }
  await owner.end();
});

describe('the start-up check of the runtime login', () => {
  test('when the login is a member of fleet_app only and the schema is current, then there is no problem', async () => {
    const c = new pg.Client({ connectionString: testAppDbUrl() });
    await c.connect();
    try {
      const r = await checkRuntimeDatabase(c);
      expect(r.loginProblems).toEqual([]);
      expect(r.schemaProblem).toBeNull();
      expect(r.login.memberOfAppRole).toBe(true);
    } finally {
      await c.end();
    }
  });

  test('when the login is a superuser, then it is refused', async () => {
    const name = await makeLogin('super', (id) => [`ALTER ROLE ${id} SUPERUSER`]);
    const r = await checkAs(name);
    expect(r.loginProblems.join('\n')).toMatch(/is a superuser/);
  });

  test('when the login has BYPASSRLS, then it is refused', async () => {
    const name = await makeLogin('bypass', (id) => [`ALTER ROLE ${id} BYPASSRLS`]);
    const r = await checkAs(name);
    expect(r.loginProblems).toEqual([expect.stringMatching(/has BYPASSRLS/)]);
  });

  test('when the login owns a table, then it is refused', async () => {
    const name = await makeLogin('owns');
    const table = `owned_${suffix}`;
    await owner.query(`CREATE TABLE ${table} (x int)`);
    await owner.query(`ALTER TABLE ${table} OWNER TO ${pg.escapeIdentifier(name)}`);
    const r = await checkAs(name);
    expect(r.loginProblems).toEqual([expect.stringMatching(/owns 1 table/)]);
  });

  test('when the login can SET ROLE to a role beyond fleet_app (the owner, a predefined role), then it is refused', async () => {
    const ownerLike = `t_schema_owner_${suffix}`;
    await owner.query(`CREATE ROLE ${ownerLike} NOLOGIN`);
    created.unshift(ownerLike);
    const name = await makeLogin('member', (id) => [`GRANT ${ownerLike} TO ${id}`, `GRANT pg_read_all_data TO ${id}`]);
    const r = await checkAs(name);
    expect(r.loginProblems).toEqual([
      expect.stringMatching(/can SET ROLE to roles beyond fleet_app: pg_read_all_data, t_schema_owner_/),
    ]);
  });

  test('when the login has CREATEROLE (it could grant itself the owner), then it is refused', async () => {
    const name = await makeLogin('createrole', (id) => [`ALTER ROLE ${id} CREATEROLE`]);
    const r = await checkAs(name);
    expect(r.loginProblems).toEqual([expect.stringMatching(/CREATEROLE/)]);
  });

  test('when the login is not a member of fleet_app, then it is refused', async () => {
    const name = await makeLogin('nomember', (id) => [`REVOKE fleet_app FROM ${id}`]);
    const r = await checkAs(name);
    expect(r.loginProblems).toEqual([expect.stringMatching(/is not a member of fleet_app/)]);
  });

  test('when the build has a migration the database lacks, then the schema is behind and the message names npm run migrate', async () => {
    const c = new pg.Client({ connectionString: testAppDbUrl() });
    await c.connect();
    try {
      const migrations = [...readMigrations(), { id: '999_future', file: '999_future.sql', sql: '', checksum: 'x' }];
      const r = await checkRuntimeDatabase(c, { migrations });
      expect(r.schema.missing).toEqual(['999_future']);
      expect(r.schemaProblem).toMatch(/1 migration\(s\) pending \(999_future\).*npm run migrate/);
    } finally {
      await c.end();
    }
  });
});

describe('a runtime-login connection cannot become the owner', () => {
  let app: pg.Client;
  beforeAll(async () => {
    app = new pg.Client({ connectionString: testAppDbUrl(), options: '-c role=fleet_app' });
    app.on('error', () => undefined);
    await app.connect();
  });
  afterAll(async () => {
    await app.end();
  });

  const refused = async (sql: string): Promise<string> => {
    await app.query('BEGIN');
    try {
      await app.query(sql);
      return 'succeeded';
    } catch (err) {
      return (err as { code?: string }).code ?? 'error';
    } finally {
      await app.query('ROLLBACK');
    }
  };

  test('when it tries SET ROLE to the owner, SET SESSION AUTHORIZATION or RESET ROLE, then it never holds more than its own login', async () => {
    const ownerName = new URL(testDbUrl()).username;
    expect(await refused(`SET ROLE ${pg.escapeIdentifier(ownerName)}`)).toBe('42501');
    expect(await refused(`SET SESSION AUTHORIZATION ${pg.escapeIdentifier(ownerName)}`)).toBe('42501');
    expect(await refused('SET ROLE NONE; SET ROLE postgres')).toBe('42501');
    // RESET ROLE returns to the role of the connection's start (fleet_app), SET ROLE NONE to
    // the login itself; neither is the owner or a superuser.
    const who = async () =>
      (
        await app.query<{ u: string; s: boolean }>(
          'SELECT current_user AS u, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS s',
        )
      ).rows[0];
    await app.query('RESET ROLE');
    expect(await who()).toEqual({ u: 'fleet_app', s: false });
    await app.query('SET ROLE NONE');
    expect(await who()).toEqual({ u: new URL(testAppDbUrl()).username, s: false });
  });

  test('when it tries to change the audit tables, their triggers or row-level security, then every attempt is refused', async () => {
    await app.query('SET ROLE NONE');
    const attempts = [
      'ALTER TABLE audit_logs DISABLE TRIGGER ALL',
      'ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_refuse_update_delete',
      'ALTER TABLE audit_logs NO FORCE ROW LEVEL SECURITY',
      'ALTER TABLE audit_logs DISABLE ROW LEVEL SECURITY',
      'ALTER TABLE audit_chain_anchors DISABLE TRIGGER ALL',
      'ALTER TABLE audit_exports NO FORCE ROW LEVEL SECURITY',
      "SET session_replication_role = 'replica'",
      'DROP TRIGGER audit_logs_refuse_update_delete ON audit_logs',
      'UPDATE audit_logs SET action = action',
      'DELETE FROM audit_logs',
      'TRUNCATE audit_logs',
      'ALTER ROLE fleet_app BYPASSRLS',
      'ALTER TABLE audit_logs OWNER TO fleet_app',
      'CREATE TABLE sneaky (x int)',
    ];
    const results: Record<string, string> = {};
    for (const sql of attempts) results[sql] = await refused(sql);
    for (const sql of attempts)
      expect({ sql, code: results[sql] }).toEqual({ sql, code: expect.stringMatching(/^(42501|0LP01|P0001)$/) });
  });
});

describe('creating a runtime login', () => {
  test('when the name is not a plain identifier, then the SQL is not produced', () => {
    expect(() => runtimeLoginSql('x"; DROP TABLE users; --', 'pw', 'db')).toThrow(/login name/);
    expect(() => runtimeLoginSql('fleet_app', 'pw', 'db')).toThrow(/fleet_app/);
    const sql = runtimeLoginSql('fleet_api', "it's", 'my db');
    expect(sql.join('\n')).toContain("PASSWORD 'it''s'");
    expect(sql.join('\n')).toContain('GRANT CONNECT ON DATABASE "my db" TO "fleet_api"');
  });

  test('when the role exists with more than runtime privileges, then it is not turned into a runtime login', async () => {
    const name = await makeLogin('taken', (id) => [`GRANT pg_read_all_data TO ${id}`]);
    await expect(createRuntimeLogin(owner, name, 'x')).rejects.toThrow(/more than a runtime login/);
  });
});

describe('npm start in production', () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-logins-'));
  });
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  const prodEnv = (databaseUrl: string): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    DATABASE_SSL: 'disable',
    JWT_SECRET: randomBytes(48).toString('base64'),
    // Required in production since access tokens are ES256 (issue 19).
    JWT_SIGNING_KEY: TEST_SIGNING_KEY,
    FLEET_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    AUTH0_DOMAIN: 'tenant.auth0.com',
    AUTH0_CLIENT_ID: 'abc',
    CORS_ORIGINS: 'https://app.example.com',
    FLEET_DATA_DIR: dataDir,
    LOG_LEVEL: 'error',
    PORT: '0',
  });
  const start = (env: NodeJS.ProcessEnv) =>
    spawnSync(TSX, ['server/src/index.ts'], { cwd: ROOT, env, encoding: 'utf8', timeout: 90_000 });

  test('when its login is the owner (a superuser), then it refuses to start, saying why and how to fix it', () => {
    const r = start(prodEnv(testDbUrl()));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/refusing to start: the database login "[^"]+" is a superuser/);
    expect(r.stderr).toMatch(/npm run db:app-login/);
  }, 100_000);

  test('when the schema is behind (never migrated), then it refuses to start naming npm run migrate, and migrates nothing', async () => {
    const admin = new pg.Client({ connectionString: testAdminUrl() });
    await admin.connect();
    const dbName = `fleet_logins_${suffix}`;
    try {
      await admin.query(`CREATE DATABASE ${dbName}`);
      const login = new URL(testAppDbUrl()).username;
      await admin.query(`GRANT CONNECT ON DATABASE ${dbName} TO ${pg.escapeIdentifier(login)}`);
      const u = new URL(testAppDbUrl());
      u.pathname = `/${dbName}`;
      const r = start(prodEnv(u.toString()));
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/not migrated.*npm run migrate/);
      const probe = new pg.Client({
        connectionString: (() => {
          const o = new URL(testDbUrl());
          o.pathname = `/${dbName}`;
          return o.toString();
        })(),
      });
      await probe.connect();
      const { rows } = await probe.query("SELECT to_regclass('public.schema_migrations') AS t");
      await probe.end();
      expect(rows[0]?.t).toBeNull();
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.end();
    }
  }, 100_000);
});
