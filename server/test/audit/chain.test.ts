import type pg from 'pg';
import { computeRowHash, epochToChainTimestamp, GENESIS_HASH } from '../../src/services/audit/chain';
import { createAuditSealer } from '../../src/services/audit/sealer';
import { createAuditService } from '../../src/services/audit/service';
import { createLogger } from '../../src/lib/logger';
import { buildTestApp, ownerPool, type TestApp } from '../helpers/app';
import { uniqueTenant } from '../helpers/env';
import { appRolePool, insertRawRows, sealAll, tamper } from './helpers';

const SEALER_LOCK = '7308325827335103841';
const quiet = createLogger({ level: 'error', console: false });

let t: TestApp;
let owner: pg.Pool;

beforeAll(async () => {
  t = await buildTestApp();
  owner = ownerPool();
});
afterAll(async () => {
  await owner.end();
  await t.close();
});

async function writeRows(tenantId: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 1) {
    const r = await t.composition.services.audit.record({
      tenantId,
      action: 'test.chain',
      resourceType: 'thing',
      resourceId: `r${i}`,
      after: { i },
    });
    ids.push(r.id);
  }
  return ids;
}

async function chainOf(
  tenantId: string,
): Promise<Array<{ audit_id: string; seq: string; prev_hash: Buffer; row_hash: Buffer }>> {
  const { rows } = await owner.query(
    'SELECT audit_id::text, seq::text, prev_hash, row_hash FROM audit_chain WHERE tenant_id = $1 ORDER BY seq',
    [tenantId],
  );
  return rows;
}

describe('sealing', () => {
  it('when rows are written and sealed, then each gets one chain entry in order and verify reports the chain intact', async () => {
    const tenant = uniqueTenant('chain');
    const ids = await writeRows(tenant, 5);
    await t.composition.services.auditSealer.sealNow();
    const chain = await chainOf(tenant);
    expect(chain.map((c) => c.audit_id)).toEqual(ids);
    expect(chain.map((c) => c.seq)).toEqual(['1', '2', '3', '4', '5']);
    expect(chain[0]?.prev_hash.equals(GENESIS_HASH)).toBe(true);
    for (let i = 1; i < chain.length; i += 1)
      expect(chain[i]?.prev_hash.equals(chain[i - 1]?.row_hash as Buffer)).toBe(true);

    const r = await t.composition.services.audit.verify(tenant);
    expect(r).toMatchObject({ valid: true, checked: 5, firstBrokenId: null, unsealed: 0, reason: null });
    expect(r.head).toEqual({ seq: '5', hash: chain[4]?.row_hash.toString('hex') });
  });

  it('when the application computes a row hash, then it equals the hash the database sealer stored', async () => {
    const tenant = uniqueTenant('chain');
    const rec = await t.composition.services.audit.record({
      tenantId: tenant,
      userId: '00000000-0000-4000-8000-000000000001',
      action: 'test.hash',
      resourceType: 'doc',
      resourceId: 'ünïcødé 😀 \u202Eevil',
      before: { z: 1, a: [1, 2.5, 'é'], nested: { k: null } },
      after: { text: "'; DROP TABLE audit_logs; --" },
      ipAddress: '2001:db8::1',
      userAgent: 'agent/1.0',
      result: 'failure',
      errorMessage: 'line1\nline2',
      severity: 'high',
      requestId: 'req-1',
    });
    await sealAll(owner);
    const { rows } = await owner.query(
      `SELECT l.id::text AS id, l.tenant_id, l.user_id::text AS user_id, l.action, l.resource_type, l.resource_id,
              l.before::text AS before, l.after::text AS after, l.ip_address::text AS ip, l.user_agent, l.result,
              l.error_message, l.severity, l.request_id, extract(epoch FROM l.created_at)::text AS epoch,
              audit_ts_text(l.created_at) AS ts, c.seq::text AS seq, c.prev_hash, c.row_hash
         FROM audit_logs l JOIN audit_chain c ON c.audit_id = l.id WHERE l.id = $1`,
      [rec.id],
    );
    const r = rows[0];
    expect(epochToChainTimestamp(r.epoch)).toBe(r.ts);
    const h = computeRowHash(
      {
        id: r.id,
        tenantId: r.tenant_id,
        userId: r.user_id,
        action: r.action,
        resourceType: r.resource_type,
        resourceId: r.resource_id,
        before: r.before,
        after: r.after,
        ipAddress: r.ip,
        userAgent: r.user_agent,
        result: r.result,
        errorMessage: r.error_message,
        severity: r.severity,
        requestId: r.request_id,
        createdAt: r.ts,
      },
      r.seq,
      r.prev_hash,
    );
    expect(h.toString('hex')).toBe(r.row_hash.toString('hex'));
  });

  it('when rows are committed but not sealed yet, then verify reports them as unsealed and the sealed part intact', async () => {
    const tenant = uniqueTenant('chain');
    await writeRows(tenant, 2);
    await sealAll(owner);
    const lock = await owner.connect();
    try {
      // Hold the sealers' lock so no sealer (of any test file) seals the next rows meanwhile.
      await lock.query('SELECT pg_advisory_lock($1)', [SEALER_LOCK]);
      const late = await writeRows(tenant, 3);
      const r = await t.composition.services.audit.verify(tenant);
      expect(r).toMatchObject({ valid: true, checked: 2, unsealed: 3, oldestUnsealedId: late[0] });
    } finally {
      await lock.query('SELECT pg_advisory_unlock($1)', [SEALER_LOCK]);
      lock.release();
    }
    await sealAll(owner);
    expect(await t.composition.services.audit.verify(tenant)).toMatchObject({ valid: true, checked: 5, unsealed: 0 });
  });

  it('when a transaction that wrote an audit row rolls back, then nothing is queued or sealed for it', async () => {
    const tenant = uniqueTenant('chain');
    await t.composition.services.audit.record({ tenantId: tenant, action: 'test.rollback', resourceType: 'thing' });
    const c = await t.composition.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query("SELECT set_config('app.tenant_id', $1, true)", [tenant]);
      await t.composition.services.audit.record(
        { tenantId: tenant, action: 'test.rollback', resourceType: 'thing' },
        c,
      );
      await c.query('ROLLBACK');
    } finally {
      c.release();
    }
    await sealAll(owner);
    expect((await chainOf(tenant)).length).toBe(1);
    expect(await t.composition.services.audit.verify(tenant)).toMatchObject({ valid: true, checked: 1, unsealed: 0 });
  });
});

describe('tamper detection', () => {
  async function sealedTenant(n: number): Promise<{ tenant: string; ids: string[] }> {
    const tenant = uniqueTenant('tamper');
    const ids = await writeRows(tenant, n);
    await sealAll(owner);
    expect((await t.composition.services.audit.verify(tenant)).valid).toBe(true);
    return { tenant, ids };
  }

  it('when a sealed row is modified, then verify fails at that row', async () => {
    const { tenant, ids } = await sealedTenant(5);
    await tamper(owner, async (c) => {
      await c.query(`UPDATE audit_logs SET after = '{"i": 99}' WHERE id = $1`, [ids[2]]);
    });
    const r = await t.composition.services.audit.verify(tenant);
    expect(r.valid).toBe(false);
    expect(r.firstBrokenId).toBe(ids[2]);
    expect(r.reason).toMatch(/modified/);
  });

  it('when only the timestamp of a sealed row is moved by one microsecond, then verify fails at that row', async () => {
    const { tenant, ids } = await sealedTenant(3);
    await tamper(owner, async (c) => {
      await c.query(`UPDATE audit_logs SET created_at = created_at + interval '1 microsecond' WHERE id = $1`, [ids[0]]);
    });
    expect(await t.composition.services.audit.verify(tenant)).toMatchObject({ valid: false, firstBrokenId: ids[0] });
  });

  it('when a sealed row is deleted, then verify fails at that row (its chain entry finds no row)', async () => {
    const { tenant, ids } = await sealedTenant(5);
    await tamper(owner, async (c) => {
      await c.query('DELETE FROM audit_logs WHERE id = $1', [ids[1]]);
    });
    const r = await t.composition.services.audit.verify(tenant);
    expect(r).toMatchObject({ valid: false, firstBrokenId: ids[1] });
    expect(r.reason).toMatch(/missing/);
  });

  it('when a sealed row is deleted together with its chain entry, then verify fails at the next row (sequence gap)', async () => {
    const { tenant, ids } = await sealedTenant(5);
    await tamper(owner, async (c) => {
      await c.query('DELETE FROM audit_logs WHERE id = $1', [ids[1]]);
      await c.query('DELETE FROM audit_chain WHERE audit_id = $1', [ids[1]]);
    });
    const r = await t.composition.services.audit.verify(tenant);
    expect(r).toMatchObject({ valid: false, firstBrokenId: ids[2] });
    expect(r.reason).toMatch(/sequence gap/);
  });

  it('when a forged row is inserted into the sealed history with a correct hash for itself, then verify fails at the row after it', async () => {
    const { tenant, ids } = await sealedTenant(5);
    await tamper(owner, async (c) => {
      // Make room at seq 3 by shifting later entries, then insert a forged row whose own hash is right.
      await c.query('UPDATE audit_chain SET seq = seq + 1000000 WHERE tenant_id = $1 AND seq >= 3', [tenant]);
      await c.query('UPDATE audit_chain SET seq = seq - 1000000 + 1 WHERE tenant_id = $1 AND seq > 1000000', [tenant]);
      const { rows } = await c.query<{ id: string }>(
        `INSERT INTO audit_logs (tenant_id, action, resource_type, created_at)
         VALUES ($1, 'test.forged', 'thing', (SELECT created_at FROM audit_logs WHERE id = $2)) RETURNING id::text AS id`,
        [tenant, ids[1]],
      );
      const forged = rows[0]?.id;
      await c.query('DELETE FROM audit_pending WHERE audit_id = $1', [forged]);
      await c.query(
        `INSERT INTO audit_chain (audit_id, tenant_id, seq, prev_hash, row_hash)
         SELECT l.id, l.tenant_id, 3, p.row_hash, audit_row_hash(l, 3, p.row_hash)
           FROM audit_logs l, audit_chain p WHERE l.id = $1 AND p.tenant_id = $2 AND p.seq = 2`,
        [forged, tenant],
      );
    });
    const r = await t.composition.services.audit.verify(tenant);
    expect(r.valid).toBe(false);
    expect(r.firstBrokenId).toBe(ids[2]);
  });

  it('when two sealed rows swap places in the chain, then verify fails at the first swapped position', async () => {
    const { tenant, ids } = await sealedTenant(5);
    await tamper(owner, async (c) => {
      await c.query('UPDATE audit_chain SET audit_id = -audit_id WHERE audit_id = $1', [ids[1]]);
      await c.query('UPDATE audit_chain SET audit_id = $1 WHERE audit_id = $2', [ids[1], ids[3]]);
      await c.query('UPDATE audit_chain SET audit_id = $1 WHERE audit_id = $2', [ids[3], `-${ids[1]}`]);
    });
    const r = await t.composition.services.audit.verify(tenant);
    expect(r.valid).toBe(false);
    expect(r.firstBrokenId).toBe(ids[3]);
  });

  it('when the newest rows are removed with their chain entries, then only an exported head detects it', async () => {
    const { tenant, ids } = await sealedTenant(4);
    const head = await t.composition.services.audit.chainHead(tenant);
    expect(head).toMatchObject({ seq: '4', auditId: ids[3] });
    const anchor = { seq: head?.seq as string, hash: head?.hash as string };
    expect(await t.composition.services.audit.verify(tenant, { anchor })).toMatchObject({ valid: true, checked: 4 });
    await tamper(owner, async (c) => {
      await c.query('DELETE FROM audit_logs WHERE id = $1', [ids[3]]);
      await c.query('DELETE FROM audit_chain WHERE audit_id = $1', [ids[3]]);
    });
    expect(await t.composition.services.audit.verify(tenant)).toMatchObject({ valid: true, checked: 3 });
    const r = await t.composition.services.audit.verify(tenant, { anchor });
    expect(r.valid).toBe(false);
    expect(r.reason).toMatch(/before the exported head/);
  });
});

describe('concurrency', () => {
  it('when many writers on two pools write while two sealers run, then the chain is complete, gapless and valid', async () => {
    const tenant = uniqueTenant('conc');
    const other = uniqueTenant('conc');
    const poolA = appRolePool(5);
    const poolB = appRolePool(5);
    const serviceA = createAuditService({ pool: poolA, logger: quiet });
    const serviceB = createAuditService({ pool: poolB, logger: quiet });
    const sealerA = createAuditSealer({ pool: poolA, logger: quiet, intervalMs: 15, batchSize: 50 });
    const sealerB = createAuditSealer({ pool: poolB, logger: quiet, intervalMs: 15, batchSize: 50 });
    try {
      await sealerA.start();
      await sealerB.start();
      const perWriter = 25;
      const writers: Array<Promise<unknown>> = [];
      for (let w = 0; w < 8; w += 1) {
        const svc = w % 2 === 0 ? serviceA : serviceB;
        writers.push(
          (async () => {
            for (let i = 0; i < perWriter; i += 1) {
              await svc.record({
                tenantId: i % 5 === 0 ? other : tenant,
                action: 'test.concurrent',
                resourceType: 'thing',
                resourceId: `${w}-${i}`,
              });
            }
          })(),
        );
      }
      await Promise.all(writers);
      await sealerA.stop();
      await sealerB.stop();
      await sealerA.sealNow();
      await sealerB.sealNow();

      const { rows } = await owner.query<{ n: string; sealed: string; min: string; max: string }>(
        `SELECT count(*)::text AS n, count(c.audit_id)::text AS sealed, min(c.seq)::text AS min, max(c.seq)::text AS max
           FROM audit_logs l LEFT JOIN audit_chain c ON c.audit_id = l.id WHERE l.tenant_id = $1`,
        [tenant],
      );
      expect(rows[0]).toEqual({ n: '160', sealed: '160', min: '1', max: '160' });
      expect(await serviceA.verify(tenant)).toMatchObject({ valid: true, checked: 160, unsealed: 0 });
      expect(await serviceB.verify(other)).toMatchObject({ valid: true, checked: 40, unsealed: 0 });
      expect(sealerA.status().totalSealed + sealerB.status().totalSealed).toBeGreaterThan(0);
    } finally {
      await sealerA.stop();
      await sealerB.stop();
      await poolA.end();
      await poolB.end();
    }
  });

  it('when one connection keeps sealing while the tables grow, then every call is planned afresh and seals exactly the queued rows, in order', async () => {
    // PL/pgSQL would otherwise keep the plan made on the first, near-empty tables (scans
    // whose cost grew with the tables: migration 043).
    const { rows: cfg } = await owner.query<{ proconfig: string[] }>(
      "SELECT proconfig FROM pg_proc WHERE proname = 'audit_seal'",
    );
    expect(cfg[0]?.proconfig).toEqual(expect.arrayContaining(['plan_cache_mode=force_custom_plan']));

    const tenant = uniqueTenant();
    const app = appRolePool(1);
    try {
      const sealOnce = async (max: number): Promise<number> => {
        for (;;) {
          const { rows } = await app.query<{ n: number }>('SELECT audit_seal($1) AS n', [max]);
          const n = (rows[0] as { n: number }).n;
          if (n !== -1) return n;
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      // Warm the one connection up on a few rows (past PL/pgSQL's five custom plans).
      for (let i = 0; i < 8; i += 1) {
        await insertRawRows(app, tenant, [{ resourceId: `warm${i}` }]);
        await sealOnce(10);
      }
      const ids = await insertRawRows(
        app,
        tenant,
        Array.from({ length: 2500 }, (_, i) => ({ resourceId: `grow${i}` })),
      );
      while ((await sealOnce(1000)) > 0);
      const chain = (await chainOf(tenant)).sort((a, b) => Number(a.seq) - Number(b.seq));
      expect(chain.map((c) => c.seq)).toEqual(Array.from({ length: 2508 }, (_, i) => String(i + 1)));
      expect(chain.slice(8).map((c) => c.audit_id)).toEqual(ids);
      expect(await t.composition.services.audit.verify(tenant)).toMatchObject({
        valid: true,
        checked: 2508,
        unsealed: 0,
      });
    } finally {
      await app.end();
    }
  });

  it('when one sealer holds the lock, then another returns -1 at once instead of waiting', async () => {
    const lock = await owner.connect();
    const app = appRolePool(1);
    try {
      await lock.query('SELECT pg_advisory_lock($1)', [SEALER_LOCK]);
      const { rows } = await app.query<{ n: number }>('SELECT audit_seal(10) AS n');
      expect(rows[0]?.n).toBe(-1);
    } finally {
      await lock.query('SELECT pg_advisory_unlock($1)', [SEALER_LOCK]);
      lock.release();
      await app.end();
    }
  });
});

describe('the background sealer', () => {
  it('when started through the composition, then rows are sealed without anyone asking, and stop ends it', async () => {
    const app = await buildTestApp({ start: true });
    try {
      const tenant = uniqueTenant('bg');
      await app.composition.services.audit.record({
        tenantId: tenant,
        action: 'test.background',
        resourceType: 'thing',
      });
      let sealed = 0;
      for (let i = 0; i < 100 && sealed === 0; i += 1) {
        await new Promise((r) => setTimeout(r, 100));
        const { rows } = await owner.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM audit_chain WHERE tenant_id = $1',
          [tenant],
        );
        sealed = rows[0]?.n ?? 0;
      }
      expect(sealed).toBe(1);
      expect(app.composition.services.auditSealer.status().running).toBe(true);
    } finally {
      await app.close();
    }
    expect(app.composition.services.auditSealer.status().running).toBe(false);
  });

  it('when rows are inserted by a plain INSERT (as scripts do), then they are sealed like any other', async () => {
    const tenant = uniqueTenant('script');
    const ids = await insertRawRows(owner, tenant, [
      { action: 'system.backup', resourceType: 'database' },
      { action: 'system.backup', resourceType: 'database' },
    ]);
    await sealAll(owner);
    expect((await chainOf(tenant)).map((c) => c.audit_id)).toEqual(ids);
    expect(await t.composition.services.audit.verify(tenant)).toMatchObject({ valid: true, checked: 2 });
  });
});
