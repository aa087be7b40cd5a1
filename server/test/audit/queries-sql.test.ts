/** docs/AUDIT_QUERIES.sql runs under psql -f with -v variables and finds what it should. */
import { execFile } from 'node:child_process';
import path from 'node:path';
import type pg from 'pg';
import { ownerPool } from '../helpers/app';
import { testDbUrl, uniqueEmail, uniqueTenant } from '../helpers/env';
import { insertRawRows, sealAll, tamper } from './helpers';

const FILE = path.resolve(__dirname, '../../../docs/AUDIT_QUERIES.sql');

function psql(vars: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  const args = [testDbUrl(), '-X', '-f', FILE, ...Object.entries(vars).flatMap(([k, v]) => ['-v', `${k}=${v}`])];
  return new Promise((resolve) => {
    execFile(
      'psql',
      args,
      { timeout: 30_000, env: { PATH: process.env.PATH ?? '', PGCONNECT_TIMEOUT: '5' } },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr }),
    );
  });
}

let owner: pg.Pool;
const tenant = uniqueTenant('sql');
const email = uniqueEmail('sqlvictim');
let ids: string[] = [];

beforeAll(async () => {
  owner = ownerPool();
  ids = await insertRawRows(owner, tenant, [
    { action: 'doc.viewed', resourceId: 'D1' },
    { action: 'key.master.read', resourceType: 'key', severity: 'high' },
    { action: 'access.denied', resourceType: 'route', resourceId: 'GET /x', result: 'denied', severity: 'medium' },
  ]);
  await insertRawRows(owner, '_unknown', [
    {
      action: 'auth.login.failure',
      resourceType: 'user',
      resourceId: email,
      result: 'failure',
      ip: '192.0.2.99',
      severity: 'medium',
    },
    {
      action: 'auth.login.failure',
      resourceType: 'user',
      resourceId: email,
      result: 'failure',
      ip: '192.0.2.99',
      severity: 'medium',
    },
  ]);
  await sealAll(owner);
});
afterAll(async () => {
  await owner.end();
});

describe('docs/AUDIT_QUERIES.sql', () => {
  it('when run with no variables, then every query runs and the file exits 0 without changing anything', async () => {
    const r = await psql({});
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    for (const heading of [
      '== last 50 events',
      '== failed logins by IP',
      '== admin actions',
      '== key access',
      '== high and critical events',
      '== access denied, by user',
      '== hash chain status',
      '== rows sealed more than 60 s',
    ]) {
      expect(r.out).toContain(heading);
    }
  });

  it('when asked for failed logins of one e-mail, then its failures across tenants are counted', async () => {
    const r = await psql({ query: 'failed_logins', email });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`${email.replace(/[.]/g, '\\.')}\\s*\\|\\s*2\\s*\\|`));
    expect(r.out).toMatch(/192\.0\.2\.99\s*\|\s*2\s*\|/);
    expect(r.out).not.toContain('== last');
  });

  it("when asked for one tenant's key access and last events, then its rows are listed", async () => {
    const key = await psql({ query: 'key_access', tenant });
    expect(key.out).toContain('key.master.read');
    const last = await psql({ query: 'last', tenant, limit: '2' });
    expect(last.out).toContain('(2 rows)');
    expect(last.out).toContain('access.denied');
  });

  it('when the chain check runs on an intact and then a tampered tenant, then it lists nothing and then the modified row', async () => {
    const ok = await psql({ query: 'chain_check', tenant });
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('(0 rows)');
    await tamper(owner, async (c) => {
      await c.query("UPDATE audit_logs SET resource_id = 'D2' WHERE id = $1", [ids[0]]);
    });
    const bad = await psql({ query: 'chain_check', tenant });
    expect(bad.out).toMatch(new RegExp(`\\|\\s*${ids[0]}\\s*\\|\\s*row modified`));
  });

  it('when an unknown query is named, then it says which ones exist on stderr, runs nothing and exits non-zero', async () => {
    const r = await psql({ query: 'drop_everything' });
    expect(r.err).toMatch(/unknown query 'drop_everything' - use one of: all last/);
    expect(r.err).toMatch(/audit queries stopped/);
    expect(r.code).toBe(3);
    expect(r.out).not.toContain('== last');
  });

  it('when limit or min_failures carry SQL, then nothing of it runs: the file stops with a message and exit 3', async () => {
    const marker = uniqueTenant('inject');
    const hostile: Array<Record<string, string>> = [
      {
        limit: `1; ROLLBACK; INSERT INTO audit_logs (tenant_id, action, resource_type) VALUES ('${marker}', 'x.y', 'z'); --`,
      },
      {
        query: 'failed_logins',
        min_failures: `0; ROLLBACK; INSERT INTO audit_logs (tenant_id, action, resource_type) VALUES ('${marker}', 'x.y', 'z'); --`,
      },
      { limit: "50' OR '1'='1" },
      { limit: '-1' },
    ];
    for (const vars of hostile) {
      const r = await psql(vars);
      expect({ vars, code: r.code }).toEqual({ vars, code: 3 });
      expect(r.err).toMatch(/(limit|min_failures) must be a whole number/);
      expect(r.out).not.toContain('== last');
    }
    const { rows } = await owner.query('SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1', [marker]);
    expect(rows[0]).toEqual({ n: 0 });
  });

  it('when a query is run without its required variable, then it says which and exits 3; numbers are still accepted', async () => {
    const ua = await psql({ query: 'user_activity' });
    expect(ua.code).toBe(3);
    expect(ua.err).toMatch(/query=user_activity needs -v email=\.\.\. or -v user_id=\.\.\./);
    const cc = await psql({ query: 'chain_check' });
    expect(cc.code).toBe(3);
    expect(cc.err).toMatch(/query=chain_check needs -v tenant=\.\.\./);
    const ok = await psql({ query: 'last', limit: '2', tenant });
    expect(ok.err).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('== last 2 events');
    expect(ok.out).toContain('(2 rows)');
    const mf = await psql({ query: 'failed_logins', email, min_failures: '3' });
    expect(mf.code).toBe(0);
    expect(mf.out).not.toMatch(/192\.0\.2\.99\s*\|\s*2\s*\|/);
  });
});
