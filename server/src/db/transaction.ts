/**
 * The one door for transactions: BEGIN (with its isolation level and access mode), the
 * transaction-local settings row-level security reads, COMMIT, ROLLBACK, and what to do with a
 * connection that broke on the way. Nothing else in server/src spells BEGIN or set_config.
 */
import type pg from 'pg';
import { isConnectionLost, type Pool, type PoolClient, type Queryable } from './pool';

export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

export interface TransactionOptions {
  /** Transaction-local `app.tenant_id`: row-level security then admits that tenant's rows only. */
  tenantId?: string | null;
  /**
   * Transaction-local `app.audit_scope = 'all'`: the owner login's cross-tenant audit reads
   * (migration 022; the CLI verifier). The runtime login gains nothing from it.
   */
  allTenants?: boolean;
  /** Transaction-local `app.siem_worker = 'on'` (migration 097); see withSiemWorker. */
  siemWorker?: boolean;
  /** Default: the server's (read committed). */
  isolation?: IsolationLevel;
  readOnly?: boolean;
}

/** What a transaction runs on: a pool (a client is checked out and returned) or a client the caller holds. */
export type TransactionTarget = Pool | pg.ClientBase;

const ISOLATION_SQL: Readonly<Record<IsolationLevel, string>> = {
  'read committed': 'READ COMMITTED',
  'repeatable read': 'REPEATABLE READ',
  serializable: 'SERIALIZABLE',
};

/** The transaction-local settings the database's policies read (identifiers only from here). */
type ContextSetting = 'app.tenant_id' | 'app.audit_scope' | 'app.siem_worker';

/** The one spelling of a transaction-local setting; `value` is a parameter ($n) or a literal. */
function setLocal(setting: ContextSetting, value: string): string {
  return `set_config('${setting}', ${value}, true)`;
}

/**
 * The SQL expression that sets the transaction-local tenant context to the parameter `param`
 * (e.g. '$1') and yields it: for single statements that scope themselves (a CTE in an INSERT).
 */
export function tenantContextSql(param: string): string {
  if (!/^\$[1-9][0-9]{0,2}$/.test(param)) throw new TypeError('tenantContextSql takes a parameter such as $1');
  return setLocal('app.tenant_id', param);
}

export const SET_TENANT_CONTEXT = `SELECT ${tenantContextSql('$1')}`;
const SET_ALL_TENANTS_SCOPE = `SELECT ${setLocal('app.audit_scope', "'all'")}`;
const SIEM_WORKER_ON = `SELECT current_setting('app.siem_worker', true) AS prev, ${setLocal('app.siem_worker', "'on'")}`;
const SIEM_WORKER_SET = `SELECT ${setLocal('app.siem_worker', '$1')}`;

/**
 * Inside a transaction already open on q: scopes the rest of it to one tenant (row-level
 * security reads app.tenant_id). The setting ends with the transaction.
 */
export async function setTenantContext(q: Queryable, tenantId: string): Promise<void> {
  await q.query(SET_TENANT_CONTEXT, [tenantId]);
}

function beginSql(opts: TransactionOptions): string {
  let sql = 'BEGIN';
  if (opts.isolation !== undefined) {
    if (!Object.hasOwn(ISOLATION_SQL, opts.isolation))
      throw new TypeError(`unknown isolation level ${JSON.stringify(opts.isolation)}`);
    sql += ` ISOLATION LEVEL ${ISOLATION_SQL[opts.isolation]}`;
  }
  if (opts.readOnly) sql += ' READ ONLY';
  return sql;
}

/** Clients whose connection broke inside a transaction: never to be returned to a pool. */
const lostClients = new WeakSet<object>();

/** What runs once the transaction open on a client (by runTransaction) has committed. */
const commitCallbacks = new WeakMap<object, Array<() => void>>();

/**
 * Runs fn once the work done through q is committed: after the COMMIT of the transaction
 * withTransaction has open on q, never if it rolls back; at once when q is not inside such a
 * transaction (a pool, or a statement that commits by itself). For what must not count work
 * that may still be undone (metrics, notifications); fn must not throw.
 */
export function afterCommit(q: Queryable | pg.ClientBase, fn: () => void): void {
  const pending = commitCallbacks.get(q);
  if (pending) pending.push(fn);
  else fn();
}

function isPool(target: TransactionTarget): target is Pool {
  return typeof (target as Partial<Pool>).totalCount === 'number';
}

function restore(client: object, outer: Array<() => void> | undefined): void {
  if (outer) commitCallbacks.set(client, outer);
  else commitCallbacks.delete(client);
}

/**
 * BEGIN … COMMIT on a client; ROLLBACK on any error, which is rethrown. A client whose
 * connection is lost (or whose ROLLBACK fails) is marked, so its owner destroys it.
 */
async function runTransaction<T>(
  client: pg.ClientBase,
  fn: (client: pg.ClientBase) => Promise<T>,
  opts: TransactionOptions,
): Promise<T> {
  const begin = beginSql(opts);
  const outer = commitCallbacks.get(client);
  const onCommit: Array<() => void> = [];
  try {
    await client.query(begin);
    commitCallbacks.set(client, onCommit);
    if (opts.tenantId) await client.query(SET_TENANT_CONTEXT, [opts.tenantId]);
    if (opts.allTenants) await client.query(SET_ALL_TENANTS_SCOPE);
    if (opts.siemWorker) await client.query(SIEM_WORKER_ON);
    const result = await fn(client);
    await client.query('COMMIT');
    restore(client, outer);
    for (const f of onCommit) f();
    return result;
  } catch (err) {
    restore(client, outer);
    if (isConnectionLost(err)) {
      // A ROLLBACK would only queue behind the statement that never answered; the server
      // rolls the transaction back when the discarded connection closes.
      lostClients.add(client);
      throw err;
    }
    try {
      await client.query('ROLLBACK');
    } catch {
      lostClients.add(client);
    }
    throw err;
  }
}

/**
 * Runs fn inside BEGIN/COMMIT; rolls back on any error and rethrows it. On a pool, one client
 * is checked out for it and returned afterwards, or destroyed when its connection broke. On a
 * client the caller holds (a lock holder, a CLI's own connection), the caller releases it:
 * through withClient, which destroys it in the same case.
 */
export function withTransaction<T>(
  pool: Pool,
  fn: (client: PoolClient) => Promise<T>,
  opts?: TransactionOptions,
): Promise<T>;
export function withTransaction<T, C extends pg.ClientBase>(
  client: C,
  fn: (client: C) => Promise<T>,
  opts?: TransactionOptions,
): Promise<T>;
export function withTransaction<T>(
  target: TransactionTarget,
  fn: (client: never) => Promise<T>,
  opts: TransactionOptions = {},
): Promise<T> {
  const run = fn as (client: pg.ClientBase) => Promise<T>;
  if (isPool(target)) return withClient(target, (client) => runTransaction(client, run, opts));
  return runTransaction(target, run, opts);
}

/**
 * Checks a client out for fn and returns it to the pool afterwards, unless its connection
 * broke (inside a transaction, or fn failed with a lost connection) or discardClient asked
 * for it: then it is destroyed, never handed to the next caller.
 */
export async function withClient<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let lost = false;
  try {
    return await fn(client);
  } catch (err) {
    lost = isConnectionLost(err);
    throw err;
  } finally {
    client.release(lost || lostClients.has(client) ? true : undefined);
  }
}

/** Marks a client withClient holds to be destroyed on release (its session state is unknown). */
export function discardClient(client: PoolClient): void {
  lostClients.add(client);
}

/** Runs fn in a transaction scoped to one tenant (row-level security sees only that tenant). */
export function withTenant<T>(pool: Pool, tenantId: string, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  return withTransaction(pool, fn, { tenantId });
}

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
    await q.query(SIEM_WORKER_SET, [prev]).catch(() => undefined);
    throw err;
  }
  await q.query(SIEM_WORKER_SET, [prev]);
  return result;
}
