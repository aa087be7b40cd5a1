/**
 * Row-level security as the second wall: on the forced tables, a runtime-login query without
 * a tenant context sees nothing, and with one sees only that tenant.
 */
import type pg from 'pg';
import { ownerPool } from '../helpers/app';
import { uniqueTenant } from '../helpers/env';
import { appRolePool } from '../audit/helpers';

let owner: pg.Pool;
let app: pg.Pool;
const a = uniqueTenant('rls-a');
const b = uniqueTenant('rls-b');

beforeAll(async () => {
  owner = ownerPool();
  app = appRolePool(2);
  for (const t of [a, b]) {
    await owner.query("INSERT INTO audit_logs (tenant_id, action, resource_type) VALUES ($1, 'rls.test', 'thing')", [t]);
    await owner.query("INSERT INTO encrypted_secrets (tenant_id, name, key_version, ciphertext) VALUES ($1, 'rls-secret', 'v1', 'v1:v1:x')", [t]);
    await owner.query(
      `INSERT INTO audit_exports (tenant_id, seq, first_id, last_id, row_count, first_created_at, last_created_at, container, blob_name, sha256, prev_digest, digest, status)
       VALUES ($1, 1, 1, 1, 1, now(), now(), 'c', $2, $3, $3, $3, 'pending')`,
      [t, `rls-${t}`, 'b'.repeat(64)],
    );
  }
});
afterAll(async () => {
  await owner.end();
  await app.end();
});

const TABLES = ['audit_logs', 'encrypted_secrets', 'audit_exports'];

async function countIn(tenant: string | null, table: string): Promise<{ mine: number; all: number }> {
  const c = await app.connect();
  try {
    await c.query('BEGIN');
    if (tenant) await c.query("SELECT set_config('app.tenant_id', $1, true)", [tenant]);
    const { rows } = await c.query<{ mine: number; all: number }>(`SELECT count(*) FILTER (WHERE tenant_id IN ($1, $2))::int AS mine, count(*)::int AS all FROM ${table}`, [a, b]);
    await c.query('COMMIT');
    return rows[0] as { mine: number; all: number };
  } finally {
    c.release();
  }
}

describe('row-level security on tenant tables', () => {
  test.each(TABLES)('when the runtime login queries %s without a tenant context, then it sees nothing; with one, only that tenant', async (table) => {
    expect(await countIn(null, table)).toEqual({ mine: 0, all: 0 });
    expect(await countIn(a, table)).toEqual({ mine: 1, all: 1 });
    const c = await app.connect();
    try {
      await c.query('BEGIN');
      await c.query("SELECT set_config('app.tenant_id', $1, true)", [a]);
      const { rows } = await c.query<{ t: string }>(`SELECT DISTINCT tenant_id AS t FROM ${table}`);
      await c.query('COMMIT');
      expect(rows.map((r) => r.t)).toEqual([a]);
    } finally {
      c.release();
    }
  });

  test('when the catalog is read, then these tables enable and FORCE row-level security', async () => {
    const { rows } = await owner.query<{ relname: string; on: boolean; forced: boolean }>(
      'SELECT relname, relrowsecurity AS on, relforcerowsecurity AS forced FROM pg_class WHERE relname = ANY($1) ORDER BY relname',
      [[...TABLES, 'audit_chain', 'audit_chain_anchors']],
    );
    expect(rows.every((r) => r.on && r.forced)).toBe(true);
    expect(rows).toHaveLength(TABLES.length + 2);
  });

  test('when the cross-tenant helper functions run for the application role, then they still see every tenant (owner path, counts only)', async () => {
    const usage = await app.query<{ tenant_id: string }>('SELECT tenant_id FROM encrypted_secrets_key_usage() WHERE tenant_id = ANY($1)', [[a, b]]);
    expect(usage.rows.map((r) => r.tenant_id).sort()).toEqual([a, b].sort());
    const archived = await app.query<{ tenant_id: string }>('SELECT tenant_id FROM audit_archive_tenants() WHERE tenant_id = ANY($1)', [[a, b]]);
    expect(archived.rows.map((r) => r.tenant_id).sort()).toEqual([a, b].sort());
  });
});
