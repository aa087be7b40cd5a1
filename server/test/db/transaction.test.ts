/**
 * withTransaction, the one door for transactions: the tenant context row-level security reads
 * is set inside and gone afterwards, any error rolls back, a connection that broke is destroyed
 * rather than pooled, and the isolation level, access mode and scopes asked for are the ones
 * the server runs with.
 */
import type pg from 'pg';
import { createPool, isConnectionLost, type Pool, type Queryable } from '../../src/db/pool';
import {
  afterCommit,
  asSiemWorker,
  setTenantContext,
  tenantContextSql,
  withClient,
  withTransaction,
} from '../../src/db/transaction';
import { createLogger } from '../../src/lib/logger';
import { ownerPool } from '../helpers/app';
import { testAppDbUrl, uniqueTenant } from '../helpers/env';

let owner: pg.Pool;
let app: Pool;
const a = uniqueTenant('tx-a');
const b = uniqueTenant('tx-b');

/** A pool of the runtime login, built as the service builds it (error listeners included). */
function appPool(max: number): Pool {
  return createPool(
    {
      url: testAppDbUrl(),
      ssl: 'disable',
      max,
      connectionTimeoutMs: 5000,
      statementTimeoutMs: 5000,
      idleTimeoutMs: 10_000,
      applicationName: 'transaction-test',
      appRole: 'fleet_app',
    },
    createLogger({ level: 'error', console: false }),
  );
}

/** A transaction-local setting; null when unset (never set on the connection, or reset to '' at the end of a transaction). */
const setting = async (q: Queryable, name: string): Promise<string | null> =>
  (await q.query<{ v: string | null }>('SELECT current_setting($1, true) AS v', [name])).rows[0]?.v || null;

const auditCount = async (q: Queryable, tenantId: string, action: string): Promise<number> =>
  (
    await q.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1 AND action = $2', [
      tenantId,
      action,
    ])
  ).rows[0]?.n ?? -1;

const insertAudit = (q: Queryable, tenantId: string, action: string) =>
  q.query("INSERT INTO audit_logs (tenant_id, action, resource_type) VALUES ($1, $2, 'tx')", [tenantId, action]);

beforeAll(async () => {
  owner = ownerPool();
  app = appPool(1);
  for (const t of [a, b]) await insertAudit(owner, t, 'tx.seed');
});

afterAll(async () => {
  await app.end();
  await owner.end();
});

describe('withTransaction: tenant context', () => {
  it('when a tenant is given, then the transaction sees only that tenant and the context is gone after COMMIT', async () => {
    await withClient(app, async (client) => {
      const inside = await withTransaction(client, async (c) => ({
        tenant: await setting(c, 'app.tenant_id'),
        own: await auditCount(c, a, 'tx.seed'),
        other: await auditCount(c, b, 'tx.seed'),
      }));
      expect(inside).toEqual({ tenant: null, own: 0, other: 0 }); // no context: row-level security shows nothing

      const scoped = await withTransaction(
        client,
        async (c) => ({
          tenant: await setting(c, 'app.tenant_id'),
          own: await auditCount(c, a, 'tx.seed'),
          other: await auditCount(c, b, 'tx.seed'),
        }),
        { tenantId: a },
      );
      expect(scoped).toEqual({ tenant: a, own: 1, other: 0 });
      // The same connection after COMMIT: the transaction-local setting ended with the transaction.
      expect(await setting(client, 'app.tenant_id')).toBeNull();
      expect(await auditCount(client, a, 'tx.seed')).toBe(0);
    });
  });

  it('when the context is set inside a transaction (setTenantContext, or the single-statement SQL form), then it scopes the rest of it', async () => {
    const seen = await withTransaction(app, async (c) => {
      await setTenantContext(c, b);
      const first = await auditCount(c, b, 'tx.seed');
      const { rows } = await c.query<{ t: string }>(`SELECT ${tenantContextSql('$1')} AS t`, [a]);
      return {
        first,
        set: rows[0]?.t,
        second: await auditCount(c, a, 'tx.seed'),
        gone: await auditCount(c, b, 'tx.seed'),
      };
    });
    expect(seen).toEqual({ first: 1, set: a, second: 1, gone: 0 });
    expect(() => tenantContextSql("'x'); DROP TABLE audit_logs; --")).toThrow(TypeError);
  });
});

describe('withTransaction: failure', () => {
  it('when fn throws, then everything it wrote is rolled back, the same error is rethrown and the connection goes back to the pool', async () => {
    const action = `tx.rollback.${Date.now()}`;
    const boom = new Error('boom');
    const pidBefore = await withTransaction(
      app,
      async (c) => (await c.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]?.p,
    );
    const err = await withTransaction(
      app,
      async (c) => {
        await insertAudit(c, a, action);
        expect(await auditCount(c, a, action)).toBe(1);
        throw boom;
      },
      { tenantId: a },
    ).catch((e: unknown) => e);
    expect(err).toBe(boom);
    expect(await withTransaction(app, (c) => auditCount(c, a, action), { tenantId: a })).toBe(0);
    expect(app.totalCount).toBe(1);
    const pidAfter = await withTransaction(
      app,
      async (c) => (await c.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]?.p,
    );
    expect(pidAfter).toBe(pidBefore);
  });

  it('when a statement fails on the server, then the transaction is rolled back and the connection is reused', async () => {
    const action = `tx.sqlerror.${Date.now()}`;
    const err = await withTransaction(
      app,
      async (c) => {
        await insertAudit(c, a, action);
        await c.query('SELECT 1/0');
      },
      { tenantId: a },
    ).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('22012');
    expect(await withTransaction(app, (c) => auditCount(c, a, action), { tenantId: a })).toBe(0);
    expect(app.totalCount).toBe(1);
    expect(app.idleCount).toBe(1);
  });

  it('when the connection is lost mid-transaction, then the error is rethrown and the client is destroyed, not pooled', async () => {
    const action = `tx.lost.${Date.now()}`;
    let pid = 0;
    const err = await withTransaction(
      app,
      async (c) => {
        pid = (await c.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]?.p as number;
        await insertAudit(c, a, action);
        await owner.query('SELECT pg_terminate_backend($1)', [pid]);
        await c.query('SELECT 1');
      },
      { tenantId: a },
    ).catch((e: unknown) => e);
    expect(isConnectionLost(err)).toBe(true);
    expect(app.totalCount).toBe(0);
    // The next transaction gets a fresh connection; nothing of the lost one was committed.
    const next = await withTransaction(
      app,
      async (c) => ({
        pid: (await c.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]?.p,
        rows: await auditCount(c, a, action),
      }),
      { tenantId: a },
    );
    expect(next.pid).not.toBe(pid);
    expect(next.rows).toBe(0);
  });

  // The server reports a connection failure (SQLSTATE 08006) on a connection that still works:
  // pg-pool would happily reuse it; only withTransaction's own handling keeps it out of the pool
  // (as for a server that stopped answering, see unavailable.test.ts).
  const connectionFailure = "DO $$ BEGIN RAISE EXCEPTION 'lost' USING ERRCODE = '08006'; END $$";

  it('when a statement fails as a lost connection, then the client is destroyed although pg still deems it usable', async () => {
    const pool = appPool(1);
    try {
      const err = await withTransaction(pool, (c) => c.query(connectionFailure)).catch((e: unknown) => e);
      expect(isConnectionLost(err)).toBe(true);
      expect(pool.totalCount).toBe(0);
    } finally {
      await pool.end();
    }
  });

  it('when the connection of a client the caller holds is lost inside a transaction, then withClient destroys it on release', async () => {
    const pool = appPool(1);
    try {
      const out = await withClient(pool, async (client) => {
        // The transaction's failure is handled here: only the mark on the client remains.
        await withTransaction(client, (c) => c.query(connectionFailure)).catch(() => undefined);
        return 'done';
      });
      expect(out).toBe('done');
      expect(pool.totalCount).toBe(0);
      // Without a failure the client goes back to the pool.
      await withClient(pool, (client) => withTransaction(client, (c) => c.query('SELECT 1')));
      expect(pool.totalCount).toBe(1);
      expect(pool.idleCount).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it('when the isolation level is not one of the three, then it is refused before any statement and no connection is held', async () => {
    const err = await withTransaction(app, async () => 1, {
      isolation: 'read uncommitted; DROP TABLE x' as never,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    const proto = await withTransaction(app, async () => 1, { isolation: 'toString' as never }).catch(
      (e: unknown) => e,
    );
    expect(proto).toBeInstanceOf(TypeError);
    expect(app.waitingCount).toBe(0);
    expect(app.totalCount).toBe(app.idleCount);
  });
});

describe('withTransaction: isolation, access mode and scopes', () => {
  const mode = (c: Queryable) =>
    c
      .query<{ iso: string; ro: string }>(
        "SELECT current_setting('transaction_isolation') AS iso, current_setting('transaction_read_only') AS ro",
      )
      .then((r) => r.rows[0]);

  it('when nothing is asked, then it runs read committed and read-write', async () => {
    expect(await withTransaction(app, mode)).toEqual({ iso: 'read committed', ro: 'off' });
  });

  it('when repeatable read and read only are asked, then the server runs the transaction so and refuses writes', async () => {
    expect(await withTransaction(app, mode, { isolation: 'repeatable read', readOnly: true, tenantId: a })).toEqual({
      iso: 'repeatable read',
      ro: 'on',
    });
    const err = await withTransaction(app, (c) => insertAudit(c, a, 'tx.readonly'), {
      readOnly: true,
      tenantId: a,
    }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('25006'); // read_only_sql_transaction
    expect(await withTransaction(app, mode, { isolation: 'serializable' })).toEqual({ iso: 'serializable', ro: 'off' });
  });

  it('when a repeatable-read snapshot is asked, then rows committed meanwhile stay invisible to it', async () => {
    const action = `tx.snapshot.${Date.now()}`;
    const counts = await withTransaction(
      app,
      async (c) => {
        const first = await auditCount(c, a, action);
        await withTenantInsert(a, action);
        return { first, second: await auditCount(c, a, action) };
      },
      { isolation: 'repeatable read', readOnly: true, tenantId: a },
    );
    expect(counts).toEqual({ first: 0, second: 0 });
    expect(await withTransaction(app, (c) => auditCount(c, a, action), { tenantId: a })).toBe(1);
  });

  it('when allTenants is asked, then app.audit_scope is "all" inside and gone afterwards; the runtime login still sees no tenant without a context', async () => {
    await withClient(app, async (client) => {
      const inside = await withTransaction(
        client,
        async (c) => ({ scope: await setting(c, 'app.audit_scope'), rows: await auditCount(c, a, 'tx.seed') }),
        { allTenants: true },
      );
      expect(inside).toEqual({ scope: 'all', rows: 0 });
      expect(await setting(client, 'app.audit_scope')).toBeNull();
      const both = await withTransaction(
        client,
        async (c) => ({ scope: await setting(c, 'app.audit_scope'), tenant: await setting(c, 'app.tenant_id') }),
        { allTenants: true, tenantId: b },
      );
      expect(both).toEqual({ scope: 'all', tenant: b });
    });
  });

  it('when the SIEM worker scope is asked, then it is on inside and gone afterwards; asSiemWorker restores the previous value', async () => {
    await withClient(app, async (client) => {
      expect(await withTransaction(client, (c) => setting(c, 'app.siem_worker'), { siemWorker: true })).toBe('on');
      expect(await setting(client, 'app.siem_worker')).toBeNull();
      const seen = await withTransaction(
        client,
        async (c) => {
          const during = await asSiemWorker(c, () => setting(c, 'app.siem_worker'));
          return { during, after: await setting(c, 'app.siem_worker'), tenant: await setting(c, 'app.tenant_id') };
        },
        { tenantId: a },
      );
      expect(seen).toEqual({ during: 'on', after: null, tenant: a });
    });
  });
});

/** Commits a row from another connection (the owner's), outside the transaction under test. */
async function withTenantInsert(tenantId: string, action: string): Promise<void> {
  await insertAudit(owner, tenantId, action);
}

describe('afterCommit', () => {
  it('when called inside withTransaction, then it runs only after COMMIT (the rows are visible to others by then) and never on rollback; outside one, at once', async () => {
    const t = uniqueTenant('tx-after');
    const seen: Array<{ label: string; visible: number }> = [];
    const note = (label: string) => () => {
      seen.push({ label, visible: -1 });
      const entry = seen[seen.length - 1] as { label: string; visible: number };
      void auditCount(owner, t, 'tx.after').then((n) => (entry.visible = n));
    };

    await withTransaction(
      app,
      async (c) => {
        await insertAudit(c, t, 'tx.after');
        afterCommit(c, note('committed'));
        expect(seen).toEqual([]);
      },
      { tenantId: t },
    );
    expect(seen.map((x) => x.label)).toEqual(['committed']);
    await new Promise((r) => setTimeout(r, 200));
    expect(seen[0]?.visible).toBe(1);

    await expect(
      withTransaction(
        app,
        async (c) => {
          afterCommit(c, note('rolled back'));
          throw new Error('undo');
        },
        { tenantId: t },
      ),
    ).rejects.toThrow('undo');
    expect(seen.map((x) => x.label)).toEqual(['committed']);

    afterCommit(app, note('pool'));
    expect(seen.map((x) => x.label)).toEqual(['committed', 'pool']);
    // The client went back to the pool: nothing waits on it any more.
    await withClient(app, async (c) => {
      afterCommit(c, note('no transaction'));
    });
    expect(seen.map((x) => x.label)).toEqual(['committed', 'pool', 'no transaction']);
  });
});
