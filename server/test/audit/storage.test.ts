/**
 * Storage guarantees at the SQL level: row-level security by tenant, least privilege for
 * the application role, and append-only triggers that hold even for the owner/superuser.
 */
import type pg from 'pg';
import { ownerPool } from '../helpers/app';
import { uniqueTenant } from '../helpers/env';
import { appRolePool, insertRawRows, sealAll } from './helpers';

let owner: pg.Pool;
let app: pg.Pool;
let tenantA: string;
let tenantB: string;

beforeAll(async () => {
  owner = ownerPool();
  app = appRolePool(2);
  tenantA = uniqueTenant('rlsA');
  tenantB = uniqueTenant('rlsB');
  await insertRawRows(app, tenantA, [{}, {}, {}]);
  await insertRawRows(app, tenantB, [{}, {}]);
  await sealAll(app);
});
afterAll(async () => {
  await app.end();
  await owner.end();
});

async function inTenant<T>(pool: pg.Pool, tenant: string | null, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    if (tenant !== null) await c.query("SELECT set_config('app.tenant_id', $1, true)", [tenant]);
    const out = await fn(c);
    await c.query('COMMIT');
    return out;
  } catch (err) {
    await c.query('ROLLBACK');
    throw err;
  } finally {
    c.release();
  }
}

const count = async (c: pg.PoolClient | pg.Pool, sql: string, params: unknown[] = []): Promise<number> => {
  const { rows } = await c.query<{ n: number }>(sql, params);
  return rows[0]?.n ?? -1;
};

describe('row-level security (application role)', () => {
  it('when a query runs without tenant context, then it sees no audit rows, chain entries or view rows at all', async () => {
    expect(await count(app, 'SELECT count(*)::int AS n FROM audit_logs')).toBe(0);
    expect(await count(app, 'SELECT count(*)::int AS n FROM audit_chain')).toBe(0);
    expect(await count(app, 'SELECT count(*)::int AS n FROM audit_log_entries')).toBe(0);
    expect(await count(app, 'SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1', [tenantA])).toBe(0);
    // while the rows do exist
    expect(await count(owner, 'SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1', [tenantA])).toBe(3);
  });

  it("when the tenant context is A, then only A's rows are visible, even when the query asks for B's", async () => {
    await inTenant(app, tenantA, async (c) => {
      expect(await count(c, 'SELECT count(*)::int AS n FROM audit_logs')).toBe(3);
      expect(await count(c, 'SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1', [tenantB])).toBe(0);
      expect(await count(c, 'SELECT count(*)::int AS n FROM audit_chain')).toBe(3);
      expect(await count(c, 'SELECT count(*)::int AS n FROM audit_log_entries WHERE tenant_id <> $1', [tenantA])).toBe(
        0,
      );
    });
  });

  it('when the tenant context is A, then inserting a row for tenant B is refused', async () => {
    await expect(
      inTenant(app, tenantA, (c) =>
        c.query("INSERT INTO audit_logs (tenant_id, action, resource_type) VALUES ($1, 'test.cross', 'thing')", [
          tenantB,
        ]),
      ),
    ).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/row-level security/) });
    expect(
      await count(owner, "SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1 AND action = 'test.cross'", [
        tenantB,
      ]),
    ).toBe(0);
  });

  it('when there is no tenant context, then inserting any row is refused', async () => {
    await expect(
      app.query("INSERT INTO audit_logs (tenant_id, action, resource_type) VALUES ($1, 'test.nocontext', 'thing')", [
        tenantA,
      ]),
    ).rejects.toMatchObject({ code: '42501' });
  });

  it("when the application role sets the owner's all-tenants scope, then it still sees nothing", async () => {
    await inTenant(app, null, async (c) => {
      await c.query("SELECT set_config('app.audit_scope', 'all', true)");
      expect(await count(c, 'SELECT count(*)::int AS n FROM audit_logs')).toBe(0);
    });
  });

  it('when a tenant transaction ends, then the next transaction on the same connection has no tenant context', async () => {
    const single = appRolePool(1);
    try {
      await inTenant(single, tenantA, async (c) =>
        expect(await count(c, 'SELECT count(*)::int AS n FROM audit_logs')).toBe(3),
      );
      expect(await count(single, 'SELECT count(*)::int AS n FROM audit_logs')).toBe(0);
      const { rows } = await single.query<{ t: string }>('SELECT app_current_tenant() AS t');
      expect(rows[0]?.t).toBe('');
    } finally {
      await single.end();
    }
  });

  it('when the tables are inspected, then row-level security is enabled and forced on every audit table', async () => {
    const { rows } = await owner.query<{ relname: string; relrowsecurity: boolean; relforcerowsecurity: boolean }>(
      "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname IN ('audit_logs', 'audit_chain', 'audit_chain_anchors') ORDER BY relname",
    );
    expect(rows).toEqual([
      { relname: 'audit_chain', relrowsecurity: true, relforcerowsecurity: true },
      { relname: 'audit_chain_anchors', relrowsecurity: true, relforcerowsecurity: true },
      { relname: 'audit_logs', relrowsecurity: true, relforcerowsecurity: true },
    ]);
  });
});

describe('privileges of the application role', () => {
  it.each([
    ['UPDATE audit_logs SET action = action', '42501'],
    ['DELETE FROM audit_logs', '42501'],
    ['TRUNCATE audit_logs', '42501'],
    [
      "INSERT INTO audit_chain (audit_id, tenant_id, seq, prev_hash, row_hash) VALUES (1, 'x', 1, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'))",
      '42501',
    ],
    ['UPDATE audit_chain SET seq = seq', '42501'],
    ['DELETE FROM audit_chain', '42501'],
    ['SELECT count(*) FROM audit_pending', '42501'],
    ['DELETE FROM audit_pending', '42501'],
    ["SELECT * FROM audit_purge('x', now() - interval '30 days', 'r')", '42501'],
    ['ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_refuse_update_delete', '42501'],
  ])('when the application role runs %s, then it is refused (permission denied)', async (sql, code) => {
    await expect(inTenant(app, tenantA, (c) => c.query(sql))).rejects.toMatchObject({ code });
  });

  it('when privileges are listed, then the application role holds exactly SELECT and INSERT on audit_logs (INSERT of every column but id and created_at, migration 051)', async () => {
    const { rows } = await owner.query<{ p: string; has: boolean }>(
      `SELECT p, has_table_privilege('fleet_app', 'audit_logs', p) AS has
         FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p`,
    );
    const cols = await owner.query<{ c: string; has: boolean }>(
      `SELECT attname AS c, has_column_privilege('fleet_app', 'audit_logs', attname, 'INSERT') AS has
         FROM pg_attribute WHERE attrelid = 'audit_logs'::regclass AND attnum > 0 AND NOT attisdropped`,
    );
    const insertable = cols.rows.filter((r) => r.has).map((r) => r.c);
    expect(insertable).toEqual(
      expect.arrayContaining(['tenant_id', 'action', 'resource_type', 'severity', 'request_id']),
    );
    expect(insertable).not.toContain('id');
    expect(insertable).not.toContain('created_at');
    expect(Object.fromEntries(rows.map((r) => [r.p, r.has]))).toEqual({
      SELECT: true,
      // Column grants only (a table-level INSERT would include id and created_at).
      INSERT: false,
      UPDATE: false,
      DELETE: false,
      TRUNCATE: false,
      REFERENCES: false,
      TRIGGER: false,
    });
  });
});

describe('append-only triggers (even for the owner)', () => {
  it.each([
    ['UPDATE audit_logs SET action = $2 WHERE tenant_id = $1', 'UPDATE on audit_logs'],
    ['DELETE FROM audit_logs WHERE tenant_id = $1 AND action <> $2', 'DELETE on audit_logs'],
    ["UPDATE audit_chain SET seq = seq WHERE tenant_id = $1 AND $2 <> ''", 'UPDATE on audit_chain'],
    ["DELETE FROM audit_chain WHERE tenant_id = $1 AND $2 <> ''", 'DELETE on audit_chain'],
  ])('when the owner (a superuser here) runs %s, then the trigger refuses it and the rows stay', async (sql, what) => {
    await expect(owner.query(sql, [tenantA, 'test.changed'])).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining(`append-only: ${what}`),
    });
    expect(
      await count(owner, 'SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1 AND action = $2', [
        tenantA,
        'test.event',
      ]),
    ).toBe(3);
    expect(await count(owner, 'SELECT count(*)::int AS n FROM audit_chain WHERE tenant_id = $1', [tenantA])).toBe(3);
  });

  it.each(['audit_logs', 'audit_chain', 'audit_chain_anchors'])(
    'when the owner truncates %s, then the statement trigger refuses it',
    async (table) => {
      await expect(owner.query(`TRUNCATE ${table}`)).rejects.toMatchObject({
        code: '42501',
        message: expect.stringContaining(`TRUNCATE on ${table}`),
      });
      expect(await count(owner, 'SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1', [tenantA])).toBe(3);
    },
  );

  it('when the owner runs an UPDATE that matches no row, then the attempt itself is refused', async () => {
    await expect(owner.query("UPDATE audit_logs SET action = 'x.y' WHERE false")).rejects.toMatchObject({
      code: '42501',
    });
  });

  it('when the owner switches to the replica session role (which skips ordinary triggers), then UPDATE and DELETE are still refused', async () => {
    const c = await owner.connect();
    try {
      await c.query('BEGIN');
      await c.query("SET LOCAL session_replication_role = 'replica'");
      await expect(c.query('DELETE FROM audit_logs WHERE tenant_id = $1', [tenantA])).rejects.toMatchObject({
        code: '42501',
      });
      await c.query('ROLLBACK');
    } finally {
      c.release();
    }
    expect(await count(owner, 'SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1', [tenantA])).toBe(3);
  });

  it('when the triggers are inspected, then every audit trigger fires ALWAYS', async () => {
    const { rows } = await owner.query<{ tgname: string; tgenabled: string }>(
      `SELECT tgname, tgenabled FROM pg_trigger
        WHERE NOT tgisinternal AND tgrelid IN ('audit_logs'::regclass, 'audit_chain'::regclass, 'audit_chain_anchors'::regclass)
        ORDER BY tgname`,
    );
    expect(rows.map((r) => r.tgname)).toEqual([
      // Migration 051: anchors only from audit_purge(); created_at from the server clock.
      'audit_chain_anchors_insert_only_by_purge',
      'audit_chain_anchors_refuse_truncate',
      'audit_chain_anchors_refuse_update_delete',
      'audit_chain_anchors_refuse_update_delete_stmt',
      'audit_chain_refuse_truncate',
      'audit_chain_refuse_update_delete',
      'audit_chain_refuse_update_delete_stmt',
      'audit_logs_enqueue',
      'audit_logs_refuse_truncate',
      'audit_logs_refuse_update_delete',
      'audit_logs_refuse_update_delete_stmt',
      'audit_logs_server_clock',
      // Migration 040: queues high/critical rows for the SIEM in the inserting statement.
      'audit_logs_siem_outbox',
      // Migration 080: queues rows for the tenant's own audit streams.
      'audit_logs_stream_outbox',
    ]);
    expect(rows.every((r) => r.tgenabled === 'A')).toBe(true);
  });

  it('when a row is inserted with a timestamp outside 2000-9000, then the database refuses it', async () => {
    await expect(insertRawRows(owner, tenantA, [{ createdAt: '1999-12-31T23:59:59Z' }])).rejects.toMatchObject({
      code: '23514',
    });
  });
});
