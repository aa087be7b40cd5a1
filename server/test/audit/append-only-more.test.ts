/**
 * Migration 051: audit_exports and audit_chain_anchors are append-only like audit_logs
 * (anchors written only by audit_purge), and the application role cannot choose an audit
 * row's id or created_at (the server's clock stamps it).
 */
import type pg from 'pg';
import { ownerPool } from '../helpers/app';
import { uniqueTenant } from '../helpers/env';
import { appRolePool } from './helpers';

let owner: pg.Pool;
let app: pg.Pool;

beforeAll(() => {
  owner = ownerPool();
  app = appRolePool(2);
});
afterAll(async () => {
  await owner.end();
  await app.end();
});

async function inTenant<T>(pool: pg.Pool, tenant: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query("SELECT set_config('app.tenant_id', $1, true)", [tenant]);
    const r = await fn(c);
    await c.query('COMMIT');
    return r;
  } catch (err) {
    await c.query('ROLLBACK');
    throw err;
  } finally {
    c.release();
  }
}

const code = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'ok',
    (e: { code?: string }) => e.code ?? 'error',
  );

describe("audit_logs: id and created_at are the server's", () => {
  test('when the application role names created_at or forces an id, then the insert is refused; a normal insert is stamped with the server clock', async () => {
    const tenant = uniqueTenant('clock');
    expect(
      await code(
        inTenant(app, tenant, (c) =>
          c.query(
            "INSERT INTO audit_logs (tenant_id, action, resource_type, created_at) VALUES ($1, 'x.y', 'z', '2001-01-01')",
            [tenant],
          ),
        ),
      ),
    ).toBe('42501');
    expect(
      await code(
        inTenant(app, tenant, (c) =>
          c.query(
            "INSERT INTO audit_logs (id, tenant_id, action, resource_type) OVERRIDING SYSTEM VALUE VALUES (1, $1, 'x.y', 'z')",
            [tenant],
          ),
        ),
      ),
    ).toBe('42501');
    const row = await inTenant(app, tenant, async (c) => {
      const { rows } = await c.query<{ created_at: Date; now: Date }>(
        "INSERT INTO audit_logs (tenant_id, action, resource_type) VALUES ($1, 'x.y', 'z') RETURNING created_at, now() AS now",
        [tenant],
      );
      return rows[0];
    });
    expect(row?.created_at.getTime()).toBe(row?.now.getTime());
  });

  test('when the owner inserts with an explicit created_at (a restore, an import), then it is kept', async () => {
    const tenant = uniqueTenant('clock-owner');
    const { rows } = await owner.query<{ created_at: Date }>(
      "INSERT INTO audit_logs (tenant_id, action, resource_type, created_at) VALUES ($1, 'x.y', 'z', '2020-02-02T00:00:00Z') RETURNING created_at",
      [tenant],
    );
    expect(rows[0]?.created_at.toISOString()).toBe('2020-02-02T00:00:00.000Z');
  });
});

describe('audit_exports: append-only', () => {
  async function pendingExport(tenant: string): Promise<string> {
    const { rows } = await owner.query<{ id: string }>(
      `INSERT INTO audit_exports (tenant_id, seq, first_id, last_id, row_count, first_created_at, last_created_at, container, blob_name, sha256, prev_digest, digest, status)
       VALUES ($1, 1, 1, 2, 2, now(), now(), 'c', $2, $3, $3, $3, 'pending') RETURNING id::text`,
      [tenant, `b-${tenant}`, 'a'.repeat(64)],
    );
    return rows[0]?.id as string;
  }

  test('when anyone (the owner included) deletes, truncates or rewrites an export, then it is refused; marking a pending export complete is allowed once', async () => {
    const tenant = uniqueTenant('exports');
    const id = await pendingExport(tenant);
    expect(await code(owner.query('DELETE FROM audit_exports WHERE id = $1', [id]))).toBe('42501');
    expect(await code(owner.query('TRUNCATE audit_exports'))).toBe('42501');
    expect(await code(owner.query('UPDATE audit_exports SET digest = $2 WHERE id = $1', [id, 'f'.repeat(64)]))).toBe(
      '42501',
    );
    expect(
      await code(owner.query("UPDATE audit_exports SET status = 'complete', blob_name = 'other' WHERE id = $1", [id])),
    ).toBe('42501');
    // The application role's one change: the completion bookkeeping.
    expect(
      await code(
        inTenant(app, tenant, (c) =>
          c.query(
            "UPDATE audit_exports SET status = 'complete', completed_at = now(), immutable_until = now() WHERE id = $1",
            [id],
          ),
        ),
      ),
    ).toBe('ok');
    expect(
      await code(
        inTenant(app, tenant, (c) => c.query('UPDATE audit_exports SET completed_at = now() WHERE id = $1', [id])),
      ),
    ).toBe('42501');
    expect(await code(inTenant(app, tenant, (c) => c.query('DELETE FROM audit_exports WHERE id = $1', [id])))).toBe(
      '42501',
    );
    const { rows } = await owner.query('SELECT status FROM audit_exports WHERE id = $1', [id]);
    expect(rows).toEqual([{ status: 'complete' }]);
  });
});

describe('audit_chain_anchors: written only by audit_purge()', () => {
  test('when the owner inserts an anchor by hand (to make verification skip rows), then it is refused', async () => {
    const tenant = uniqueTenant('anchor');
    const r = await code(
      owner.query(
        "INSERT INTO audit_chain_anchors (tenant_id, seq, row_hash, purged_rows, purged_before, reason, purged_by) VALUES ($1, 5, $2, 5, now(), 'skip', 'me')",
        [tenant, Buffer.alloc(32)],
      ),
    );
    expect(r).toBe('42501');
    // Setting the purge's flag from outside is possible for the owner, which is why the
    // threat model counts the owner as able to rewrite history (docs/SECURITY_API.md).
  });
});
