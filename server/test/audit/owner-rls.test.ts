/**
 * Production-like ownership: the audit tables belong to a NON-superuser owner login (the
 * test suite's own database is owned by a superuser, which row-level security never
 * applies to). A separate database is migrated by such an owner.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { runMigrations, MIGRATIONS_DIR } from '../../src/db/migrate';
import { verifyTenantChain } from '../../src/services/audit/chain';
import { SET_TENANT_CONTEXT } from '../../src/db/transaction';
import { listAuditTenants, withAllTenantsSnapshot } from '../../src/services/audit/service';
import { testAdminUrl } from '../helpers/env';

const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`;
const ownerRole = `fleet_owner_${suffix}`;
const dbName = `fleet_audit_owner_${suffix}`;
const password = randomBytes(12).toString('hex');
let migrationsDir: string;
let admin: pg.Client;
let owner: pg.Pool;
let app: pg.Pool;

function urlFor(user: string, pass: string | null): string {
  const u = new URL(testAdminUrl());
  u.username = user;
  u.password = pass ?? '';
  u.pathname = `/${dbName}`;
  return u.toString();
}

beforeAll(async () => {
  // Only the migrations of the foundation tables and of the audit trail.
  migrationsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'audit-owner-migrations-'));
  for (const f of fs.readdirSync(MIGRATIONS_DIR)) {
    if (/^(00\d|01\d|02\d)_/.test(f)) fs.copyFileSync(path.join(MIGRATIONS_DIR, f), path.join(migrationsDir, f));
  }
  admin = new pg.Client({ connectionString: testAdminUrl() });
  await admin.connect();
  await admin.query(`CREATE ROLE ${ownerRole} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE PASSWORD '${password}'`);
  await admin.query(
    `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleet_app') THEN CREATE ROLE fleet_app NOLOGIN; END IF; END $$`,
  );
  await admin.query(`GRANT fleet_app TO ${ownerRole} WITH ADMIN OPTION`);
  await admin.query(`CREATE DATABASE ${dbName} OWNER ${ownerRole}`);
  await runMigrations(urlFor(ownerRole, password), { dir: migrationsDir });
  owner = new pg.Pool({ connectionString: urlFor(ownerRole, password), max: 2 });
  app = new pg.Pool({ connectionString: urlFor(ownerRole, password), max: 2, options: '-c role=fleet_app' });
  owner.on('error', () => undefined);
  app.on('error', () => undefined);
  for (const tenant of ['acme', 'globex']) {
    for (let i = 0; i < 3; i += 1) {
      await app.query(
        `WITH ctx AS MATERIALIZED (SELECT set_config('app.tenant_id', $1, true) AS t)
         INSERT INTO audit_logs (tenant_id, action, resource_type, resource_id) SELECT ctx.t, 'test.owner', 'thing', $2 FROM ctx`,
        [tenant, `r${i}`],
      );
    }
  }
  await app.query(
    `WITH ctx AS MATERIALIZED (SELECT set_config('app.tenant_id', '_unknown', true) AS t)
     INSERT INTO audit_logs (tenant_id, action, resource_type, resource_id, ip_address, result) SELECT ctx.t, 'auth.login.failure', 'user', 'eve@example.com', '192.0.2.7', 'failure' FROM ctx`,
  );
}, 60_000);

afterAll(async () => {
  await app?.end();
  await owner?.end();
  // pool.end() resolves before the sockets are closed: wait for the backends to go away.
  for (let i = 0; i < 100; i += 1) {
    const { rows } = await admin.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1',
      [dbName],
    );
    if (rows[0]?.n === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.query(`DROP ROLE IF EXISTS ${ownerRole}`);
  await admin.end();
  fs.rmSync(migrationsDir, { recursive: true, force: true });
});

const n = async (q: pg.Pool | pg.PoolClient, sql: string, params: unknown[] = []): Promise<number> => {
  const { rows } = await q.query<{ n: number }>(sql, params);
  return rows[0]?.n ?? -1;
};

describe('a non-superuser table owner', () => {
  it('when the application counts failed logins for the lockout, then the definer function sees them across tenants', async () => {
    const { rows } = await app.query(
      "SELECT * FROM auth_login_lockout('eve@example.com', '192.0.2.7'::inet, now() - interval '15 minutes', interval '15 minutes', 5)",
    );
    expect(rows[0]).toMatchObject({ email_failures: 1, ip_failures: 1, email_unlock_at: null });
    // The scope is restored: the caller's own reads stay tenant-bound.
    expect(await n(app, 'SELECT count(*)::int AS n FROM audit_logs')).toBe(0);
  });

  it('when the owner queries without tenant context, then forced row-level security shows it nothing', async () => {
    expect(await n(owner, 'SELECT count(*)::int AS n FROM audit_logs')).toBe(0);
  });

  it('when the owner deliberately sets app.audit_scope = all, then it sees every tenant', async () => {
    const c = await owner.connect();
    try {
      await c.query('BEGIN');
      await c.query("SELECT set_config('app.audit_scope', 'all', true)");
      expect(await n(c, 'SELECT count(*)::int AS n FROM audit_logs')).toBe(7);
      await c.query('COMMIT');
    } finally {
      c.release();
    }
  });

  it('when the owner writes a plain INSERT for any tenant (as scripts do), then it is accepted', async () => {
    await owner.query(
      "INSERT INTO audit_logs (tenant_id, action, resource_type) VALUES ('_system', 'system.backup', 'database')",
    );
    expect(await n(owner, "SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = '_system'")).toBe(0); // still invisible without context
  });

  it('when the owner tries to UPDATE, DELETE or TRUNCATE, then it is refused', async () => {
    for (const sql of ["UPDATE audit_logs SET action = 'x.y'", 'DELETE FROM audit_logs', 'TRUNCATE audit_logs']) {
      const c = await owner.connect();
      try {
        await c.query('BEGIN');
        await c.query("SELECT set_config('app.audit_scope', 'all', true)");
        await expect(c.query(sql)).rejects.toMatchObject({ code: '42501' });
      } finally {
        await c.query('ROLLBACK');
        c.release();
      }
    }
  });

  it('when the application role seals, then the owner-run sealer sees all tenants and the owner verifies every chain intact', async () => {
    let sealed = 0;
    for (;;) {
      const { rows } = await app.query<{ s: number }>('SELECT audit_seal(1000) AS s');
      if ((rows[0]?.s ?? 0) <= 0) break;
      sealed += rows[0]?.s ?? 0;
    }
    expect(sealed).toBe(8);
    const c = await owner.connect();
    try {
      const results = await withAllTenantsSnapshot(c, async (q) => {
        const tenants = await listAuditTenants(q);
        const out = [];
        for (const t of tenants) {
          await q.query(SET_TENANT_CONTEXT, [t]);
          out.push(await verifyTenantChain(q, t));
        }
        return out;
      });
      expect(results.map((r) => [r.tenantId, r.valid, r.checked, r.unsealed])).toEqual([
        ['_system', true, 1, 0],
        ['_unknown', true, 1, 0],
        ['acme', true, 3, 0],
        ['globex', true, 3, 0],
      ]);
    } finally {
      c.release();
    }
  });

  it('when the application role counts failed logins, then the owner-run function counts across tenants', async () => {
    const { rows } = await app.query<{ by_email: string; by_ip: string }>(
      "SELECT * FROM audit_failed_login_counts('Eve@Example.com', '192.0.2.7', now() - interval '1 hour')",
    );
    expect(rows[0]).toEqual({ by_email: '1', by_ip: '1' });
  });
});
