/** npm run db:app-login: creates a runtime login with the owner login, or prints the SQL for a DBA. */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { checkRuntimeDatabase } from '../../src/db/logins';
import { testDbUrl } from '../helpers/env';

const ROOT = path.resolve(__dirname, '../../..');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');
const CLI = path.join(ROOT, 'server/src/cli/db-app-login.ts');
const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`;
const created: string[] = [];
let owner: pg.Client;

function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(TSX, [CLI, ...args], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: os.tmpdir(),
        NODE_ENV: 'test',
        DATABASE_URL: testDbUrl(),
        FLEET_DATA_DIR: path.join(os.tmpdir(), `fleet-app-login-${suffix}`),
        LOG_LEVEL: 'error',
        ...env,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function connectAs(url: string) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}

beforeAll(async () => {
  owner = await connectAs(testDbUrl());
});
afterAll(async () => {
  for (const n of created) await owner.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(n)}`).catch(() => undefined);
  await owner.end();
});

describe('npm run db:app-login', () => {
  test('when run with the owner login, then it creates a runtime login, prints its password once and a URL that passes the start-up checks; a second run rotates the password', async () => {
    const name = `rt_cli_${suffix}`;
    created.push(name);
    const r = await run(['--name', name]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const password = /password \(shown once, not stored anywhere\): (\S+)/.exec(r.stdout)?.[1] as string;
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const url = /DATABASE_URL for the API: (\S+)/.exec(r.stdout)?.[1] as string;
    expect(new URL(url).username).toBe(name);
    const c = await connectAs(url);
    try {
      const check = await checkRuntimeDatabase(c);
      expect(check.loginProblems).toEqual([]);
      expect(check.schemaProblem).toBeNull();
    } finally {
      await c.end();
    }
    const hash = async () =>
      (await owner.query<{ p: string }>('SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1', [name])).rows[0]
        ?.p;
    const before = await hash();
    const again = await run(['--name', name]);
    expect(again.code).toBe(0);
    const url2 = /DATABASE_URL for the API: (\S+)/.exec(again.stdout)?.[1] as string;
    expect(url2).not.toBe(url);
    // (Checked on the stored verifier: a TEST_DATABASE_URL server with trust auth ignores passwords.)
    expect(await hash()).not.toBe(before);
    await (await connectAs(url2)).end();
  }, 60_000);

  test('when --print-sql is given, then it prints SQL with a fresh password and creates nothing; the SQL works when a DBA runs it', async () => {
    const name = `rt_sql_${suffix}`;
    created.push(name);
    const r = await run(['--name', name, '--print-sql']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/CREATE ROLE "rt_sql_[a-z0-9_]+" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS/);
    expect(r.stdout).toMatch(/GRANT "fleet_app" TO/);
    const exists = await owner.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name]);
    expect(exists.rowCount).toBe(0);
    const sql = r.stdout
      .split('\n')
      .filter((l) => !l.startsWith('\\') && !l.startsWith('--'))
      .join('\n');
    await owner.query(sql);
    const password = /PASSWORD '([^']+)'/.exec(r.stdout)?.[1] as string;
    const u = new URL(testDbUrl());
    u.username = name;
    u.password = password;
    const c = await connectAs(u.toString());
    try {
      expect((await checkRuntimeDatabase(c)).loginProblems).toEqual([]);
    } finally {
      await c.end();
    }
  }, 60_000);

  test('when the arguments are bad, then exit 2 and nothing is created', async () => {
    for (const args of [
      [],
      ['--name', 'Bad-Name'],
      ['--name', 'x"; DROP ROLE postgres; --'],
      ['--name', 'fleet_app'],
      ['--name', 'a', '--name', 'b'],
      ['--bogus'],
    ]) {
      const r = await run(args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(/Usage: npm run db:app-login/);
    }
  }, 90_000);

  test('when no owner login is configured in production, then it refuses and points at --print-sql', async () => {
    const r = await run(['--name', `rt_prod_${suffix}`], { NODE_ENV: 'production', DATABASE_SSL: 'disable' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/MIGRATION_DATABASE_URL .* is required in production.*--print-sql/);
  }, 60_000);
});
