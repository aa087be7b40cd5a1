import pg from 'pg';
import { testAppDbUrl } from '../helpers/env';

/** A pool of the runtime login assuming the application role, exactly like the service's pool (RLS applies). */
export function appRolePool(max = 4): pg.Pool {
  return new pg.Pool({ connectionString: testAppDbUrl(), max, options: '-c role=fleet_app' });
}

/** Inserts audit rows straight into the table (like a script would), within a tenant context. */
export async function insertRawRows(
  pool: pg.Pool,
  tenantId: string,
  rows: Array<{
    action?: string;
    resourceType?: string;
    resourceId?: string | null;
    userId?: string | null;
    after?: unknown;
    createdAt?: string;
    ip?: string | null;
    result?: string;
    severity?: string;
  }>,
): Promise<string[]> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT set_config('app.tenant_id', $1, true)", [tenantId]);
    const ids: string[] = [];
    for (const r of rows) {
      // created_at only when given: the application role may not name it (migration 051).
      const { rows: out } = await client.query<{ id: string }>(
        r.createdAt === undefined
          ? `INSERT INTO audit_logs (tenant_id, user_id, action, resource_type, resource_id, after, ip_address, result, severity)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE $10::timestamptz IS NULL RETURNING id::text AS id`
          : `INSERT INTO audit_logs (tenant_id, user_id, action, resource_type, resource_id, after, ip_address, result, severity, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::timestamptz) RETURNING id::text AS id`,
        [
          tenantId,
          r.userId ?? null,
          r.action ?? 'test.event',
          r.resourceType ?? 'thing',
          r.resourceId ?? null,
          r.after === undefined ? null : JSON.stringify(r.after),
          r.ip ?? null,
          r.result ?? 'success',
          r.severity ?? 'low',
          r.createdAt ?? null,
        ],
      );
      ids.push((out[0] as { id: string }).id);
    }
    await client.query('COMMIT');
    return ids;
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

/** Seals everything committed so far through the database function (as the app role would). */
export async function sealAll(pool: pg.Pool): Promise<number> {
  let total = 0;
  for (;;) {
    const { rows } = await pool.query<{ n: number }>('SELECT audit_seal(10000) AS n');
    const n = (rows[0] as { n: number }).n;
    if (n === -1) {
      await new Promise((r) => setTimeout(r, 20));
      continue;
    }
    total += n;
    if (n < 10000) return total;
  }
}

const TAMPER_TRIGGERS = [
  ['audit_logs', 'audit_logs_refuse_update_delete'],
  ['audit_logs', 'audit_logs_refuse_update_delete_stmt'],
  ['audit_chain', 'audit_chain_refuse_update_delete'],
  ['audit_chain', 'audit_chain_refuse_update_delete_stmt'],
  ['audit_exports', 'audit_exports_guard_row'],
  ['audit_exports', 'audit_exports_refuse_delete_stmt'],
] as const;

/**
 * Runs fn as the owner with the append-only triggers switched off inside one transaction
 * (what an attacker with owner rights could do). Other sessions never see the triggers off.
 */
export async function tamper(owner: pg.Pool, fn: (c: pg.PoolClient) => Promise<void>): Promise<void> {
  const c = await owner.connect();
  try {
    await c.query('BEGIN');
    for (const [table, trigger] of TAMPER_TRIGGERS) await c.query(`ALTER TABLE ${table} DISABLE TRIGGER ${trigger}`);
    await fn(c);
    for (const [table, trigger] of TAMPER_TRIGGERS)
      await c.query(`ALTER TABLE ${table} ENABLE ALWAYS TRIGGER ${trigger}`);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK');
    throw err;
  } finally {
    c.release();
  }
}

/** Rows of a tenant as the owner sees them (no RLS for the superuser owner of the tests). */
export async function ownerRows(owner: pg.Pool, tenantId: string): Promise<Array<Record<string, unknown>>> {
  const { rows } = await owner.query('SELECT * FROM audit_log_entries WHERE tenant_id = $1 ORDER BY id', [tenantId]);
  return rows;
}
