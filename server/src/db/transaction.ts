import { isConnectionLost, type Pool, type PoolClient } from './pool';

/**
 * Runs fn inside BEGIN/COMMIT on one client; rolls back on any error and rethrows it.
 * `tenantId` sets the transaction-local `app.tenant_id` that row-level security reads.
 */
export async function withTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>, opts: { tenantId?: string | null } = {}): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    if (opts.tenantId) await client.query("SELECT set_config('app.tenant_id', $1, true)", [opts.tenantId]);
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
