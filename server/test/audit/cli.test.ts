/**
 * `npm run audit:verify` as a real process (tsx) against a real database, as operators and
 * scripts/restore.sh run it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { runMigrations } from '../../src/db/migrate';
import { ownerPool } from '../helpers/app';
import { testAdminUrl, testDbUrl, uniqueTenant } from '../helpers/env';
import { insertRawRows, sealAll, tamper } from './helpers';

const ROOT = path.resolve(__dirname, '../../..');
const TSX = path.join(ROOT, 'node_modules/.bin/tsx');
const CLI = path.join(ROOT, 'server/src/cli/audit-verify.ts');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; `env` replaces the default environment entirely when given. */
function run(args: string[], databaseUrl: string = testDbUrl(), env?: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      TSX,
      [CLI, ...args],
      {
        cwd: ROOT,
        timeout: 60_000,
        env: env ?? {
          PATH: process.env.PATH ?? '',
          HOME: os.tmpdir(),
          NODE_ENV: 'test',
          DATABASE_URL: databaseUrl,
          JWT_SECRET: randomBytes(48).toString('base64'),
          FLEET_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
          FLEET_DATA_DIR: dataDir,
          LOG_LEVEL: 'error',
        },
      },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

let owner: pg.Pool;
let dataDir: string;

beforeAll(() => {
  owner = ownerPool();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-audit-cli-'));
});
afterAll(async () => {
  await owner.end();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function sealedTenant(n: number): Promise<{ tenant: string; ids: string[] }> {
  const tenant = uniqueTenant('cli');
  const ids = await insertRawRows(
    owner,
    tenant,
    Array.from({ length: n }, (_, i) => ({ action: 'cli.row', resourceId: String(i) })),
  );
  await sealAll(owner);
  return { tenant, ids };
}

describe('npm run audit:verify', () => {
  it('when one intact tenant is verified, then exit 0, a summary line, and an audit.verify row', async () => {
    const { tenant } = await sealedTenant(3);
    const r = await run(['--tenant', tenant]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`tenant ${tenant}: intact, 3 entries checked, head seq 3 [0-9a-f]{64}`));
    expect(r.stdout).toMatch(/audit chain intact: 1 tenant\(s\), 3 entries checked/);
    const { rows } = await owner.query(
      "SELECT action, resource_id, result FROM audit_logs WHERE tenant_id = '_system' AND resource_id = $1 ORDER BY id DESC LIMIT 1",
      [tenant],
    );
    expect(rows[0]).toEqual({ action: 'audit.verify', resource_id: tenant, result: 'success' });
  });

  it('when a row of the tenant was modified, then exit 1 with the first broken row id, and audit.verify.failed rows are written', async () => {
    const { tenant, ids } = await sealedTenant(4);
    await tamper(owner, async (c) => {
      await c.query("UPDATE audit_logs SET action = 'cli.forged' WHERE id = $1", [ids[2]]);
    });
    const r = await run(['--tenant', tenant]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`tenant ${tenant}: BROKEN at audit row ${ids[2]}`);
    expect(r.stdout).toContain(`first broken row id: ${ids[2]}`);
    const { rows } = await owner.query(
      "SELECT severity FROM audit_logs WHERE tenant_id = $1 AND action = 'audit.verify.failed'",
      [tenant],
    );
    expect(rows).toEqual([{ severity: 'critical' }]);
  });

  it('when --json is given, then one JSON document describes the result', async () => {
    const { tenant } = await sealedTenant(2);
    const r = await run(['--tenant', tenant, '--json', '--no-record']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({
      valid: true,
      checked: 2,
      firstBrokenId: null,
      tenants: [{ tenantId: tenant, valid: true, checked: 2, unsealed: 0 }],
    });
    const { rows } = await owner.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = '_system' AND resource_id = $1",
      [tenant],
    );
    expect(rows[0]?.n).toBe(0);
  });

  it('when the exported head is passed with --anchor, then a chain shortened at the end is reported broken', async () => {
    const { tenant, ids } = await sealedTenant(3);
    const { rows } = await owner.query<{ hash: string }>(
      "SELECT encode(row_hash, 'hex') AS hash FROM audit_chain WHERE tenant_id = $1 AND seq = 3",
      [tenant],
    );
    const anchor = `3:${rows[0]?.hash}`;
    expect((await run(['--tenant', tenant, '--anchor', anchor, '--no-record'])).code).toBe(0);
    await tamper(owner, async (c) => {
      await c.query('DELETE FROM audit_logs WHERE id = $1', [ids[2]]);
      await c.query('DELETE FROM audit_chain WHERE audit_id = $1', [ids[2]]);
    });
    // Without the anchor the keyless chain cannot see it; the Merkle tree (docs/AUDIT.md §9), which
    // still holds the removed entry's leaf, can (the CLI checks it when a checkpoint key is set,
    // here the generated development key).
    const plain = await run(['--tenant', tenant, '--no-record']);
    expect(plain.code).toBe(1);
    expect(plain.stdout).toMatch(/the stored Merkle tree has 3 leaves but the chain 2 entries/);
    const r = await run(['--tenant', tenant, '--anchor', anchor, '--no-record']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/before the exported head/);
  });

  it.each([
    [['--bogus'], /unknown argument/],
    [['--tenant'], /--tenant needs a value/],
    [['--anchor', '3:abc', '--tenant', 'x'], /--anchor must look like/],
    [['--anchor', `1:${'a'.repeat(64)}`], /--anchor needs --tenant/],
    [['--tenant', 'acme', '--tenant', 'globex'], /--tenant given more than once/],
    [['--json', '--json'], /--json given more than once/],
    [['--tenant', "x'; DROP TABLE users;--"], /--tenant must be 1-64 letters/],
    [['--tenant', 'a b'], /--tenant must be 1-64 letters/],
  ])('when the arguments are %j, then exit 2 with usage', async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/usage: npm run audit:verify/);
  });

  it('when --tenant names a tenant with no audit rows, then exit 2 saying so, not "intact"', async () => {
    const r = await run(['--tenant', uniqueTenant('typo'), '--no-record']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/has no audit rows \(is the name right\?\)/);
    expect(r.stdout).not.toMatch(/intact/);
  });

  it('when only the database is configured (production, no JWT secret, master key or identity provider), then it still verifies', async () => {
    const { tenant } = await sealedTenant(2);
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: os.tmpdir(),
      NODE_ENV: 'production',
      DATABASE_URL: testDbUrl(),
      DATABASE_SSL: 'disable',
      FLEET_DATA_DIR: dataDir,
      LOG_LEVEL: 'error',
    };
    const r = await run(['--tenant', tenant, '--no-record'], undefined, env);
    expect(r.stderr).not.toMatch(/JWT_SECRET|AUTH0|FLEET_ENCRYPTION_KEY/);
    expect(r.stdout).toMatch(new RegExp(`tenant ${tenant}: intact, 2 entries checked`));
    expect(r.code).toBe(0);
  });

  it('when a database setting is invalid, then exit 2 (a configuration error, never "broken") naming it', async () => {
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: os.tmpdir(),
      NODE_ENV: 'production',
      DATABASE_URL: testDbUrl(),
      DATABASE_SSL: 'sometimes',
      FLEET_DATA_DIR: dataDir,
    };
    const r = await run(['--no-record'], undefined, env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/DATABASE_SSL/);
    expect(r.stdout).not.toMatch(/BROKEN/);
  });

  it('when --help is given, then the usage is printed with exit 0', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/exit status: 0 intact, 1 broken/);
  });

  it('when the database cannot be reached, then exit 2 with the reason', async () => {
    const r = await run(['--tenant', 'x'], 'postgres://nobody:wrong@127.0.0.1:1/none');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/audit:verify failed/);
  });
});

describe('npm run audit:verify over every tenant of a database', () => {
  const dbName = `fleet_audit_cli_${process.pid}_${randomBytes(3).toString('hex')}`;
  let admin: pg.Client;
  let dbUrl: string;
  let db: pg.Pool;

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: testAdminUrl() });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${dbName}`);
    const u = new URL(testDbUrl());
    u.pathname = `/${dbName}`;
    dbUrl = u.toString();
    await runMigrations(dbUrl);
    db = new pg.Pool({ connectionString: dbUrl, max: 2 });
    db.on('error', () => undefined);
  }, 60_000);
  afterAll(async () => {
    await db.end();
    for (let i = 0; i < 100; i += 1) {
      const { rows } = await admin.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1',
        [dbName],
      );
      if (rows[0]?.n === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  });

  it('when every tenant is intact, then exit 0; after one row is deleted, exit 1 naming it; unsealed rows are reported and --seal seals them', async () => {
    const a = await insertRawRows(db, 'alpha', [{}, {}]);
    await insertRawRows(db, 'beta', [{}, {}, {}]);
    const ok = await run(['--no-record'], dbUrl);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/tenant alpha: intact, 0 entries checked, no sealed rows; 2 row\(s\) not sealed yet/);
    const sealed = await run(['--seal', '--no-record'], dbUrl);
    expect(sealed.code).toBe(0);
    expect(sealed.stdout).toMatch(/sealed 5 row\(s\) before verifying/);
    expect(sealed.stdout).toMatch(/audit chain intact: 2 tenant\(s\), 5 entries checked/);

    await tamper(db, async (c) => {
      await c.query('DELETE FROM audit_logs WHERE id = $1', [a[0]]);
    });
    const broken = await run([], dbUrl);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain(`tenant alpha: BROKEN at audit row ${a[0]}`);
    expect(broken.stdout).toMatch(/tenant beta: intact, 3 entries checked/);
    expect(broken.stdout).toContain(`first broken row id: ${a[0]}`);
  });
});
