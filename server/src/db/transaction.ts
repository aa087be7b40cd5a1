import { isConnectionLost, type Pool, type PoolClient, type Queryable } from './pool';

/**
 * Runs fn inside BEGIN/COMMIT on one client; rolls back on any error and rethrows it.
 * `tenantId` sets the transaction-local `app.tenant_id` that row-level security reads.
 */
export async function withTransaction<T>(
  pool: Pool,
  fn: (client: PoolClient) => Promise<T>,
  opts: { tenantId?: string | null; siemWorker?: boolean } = {},
): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    if (opts.tenantId) await client.query("SELECT set_config('app.tenant_id', $1, true)", [opts.tenantId]);
    if (opts.siemWorker) await client.query(SIEM_WORKER_ON);
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    if (isConnectionLost(err)) {
      // A ROLLBACK would only queue behind the statement that never answered; the server
      // rolls the transaction back when the discarded connection closes.
      broken = true;
      throw err;
    }
    try {
      await client.query('ROLLBACK');
    } catch {
      broken = true;
    }
    throw err;
  } finally {
    client.release(broken ? true : undefined);
  }
}

/** Runs fn in a transaction scoped to one tenant (row-level security sees only that tenant). */
export function withTenant<T>(pool: Pool, tenantId: string, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  return withTransaction(pool, fn, { tenantId });
}

const SIEM_WORKER_ON =
  "SELECT current_setting('app.siem_worker', true) AS prev, set_config('app.siem_worker', 'on', true)";

/**
 * Runs fn in a transaction with the SIEM worker scope (transaction-local `app.siem_worker =
 * 'on'`, migration 097): the SIEM tables' row-level security then admits every tenant's rows.
 * Only for the statements that span tenants by design (worker claims and deliveries, the fair
 * outbox bound, queue counts, alert counting); never leaks onto a pooled connection.
 */
export function withSiemWorker<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  return withTransaction(pool, fn, { siemWorker: true });
}

/**
 * Inside a transaction already open on q (e.g. a request's tenant transaction): runs fn with the
 * SIEM worker scope, then restores the previous value, so the rest of the transaction is
 * tenant-scoped again.
 */
export async function asSiemWorker<T>(q: Queryable, fn: () => Promise<T>): Promise<T> {
  const { rows } = await q.query<{ prev: string | null }>(SIEM_WORKER_ON);
  const prev = rows[0]?.prev ?? '';
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    // The transaction may be aborted (then it rolls back and the setting with it).
    await q.query("SELECT set_config('app.siem_worker', $1, true)", [prev]).catch(() => undefined);
    throw err;
  }
  await q.query("SELECT set_config('app.siem_worker', $1, true)", [prev]);
  return result;
}
