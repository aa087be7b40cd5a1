/** The retention purge: owner only, contiguous sealed prefix, anchored, itself audited. */
import type pg from 'pg';
import { buildTestApp, ownerPool, type TestApp } from '../helpers/app';
import { uniqueTenant } from '../helpers/env';
import { insertRawRows, sealAll } from './helpers';

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

const daysAgo = (d: number): string => new Date(Date.now() - d * 86_400_000).toISOString();

async function purge(
  tenant: string,
  beforeDays: number,
  reason = 'retention policy: 30 days',
): Promise<{ purged_rows: string; through_seq: string | null }> {
  const { rows } = await owner.query(
    'SELECT purged_rows::text, through_seq::text FROM audit_purge($1, now() - make_interval(days => $2), $3)',
    [tenant, beforeDays, reason],
  );
  return rows[0];
}

describe('audit_purge()', () => {
  it('when old sealed rows are purged, then they are gone, an anchor and a critical audit.purge row remain, and the rest still verifies', async () => {
    const tenant = uniqueTenant('purge');
    const old = await insertRawRows(owner, tenant, [
      { createdAt: daysAgo(90) },
      { createdAt: daysAgo(80) },
      { createdAt: daysAgo(70) },
    ]);
    await sealAll(owner);
    const recent = await insertRawRows(owner, tenant, [{ createdAt: daysAgo(5) }, {}]);
    await sealAll(owner);

    expect(await purge(tenant, 30)).toEqual({ purged_rows: '3', through_seq: '3' });
    const { rows: left } = await owner.query<{ id: string }>(
      "SELECT id::text FROM audit_logs WHERE tenant_id = $1 AND action <> 'audit.purge' ORDER BY id",
      [tenant],
    );
    expect(left.map((r) => r.id)).toEqual(recent);
    const { rows: chain } = await owner.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM audit_chain WHERE audit_id = ANY($1::bigint[])',
      [old],
    );
    expect(chain[0]?.n).toBe(0);
    const { rows: anchors } = await owner.query(
      'SELECT seq::text, purged_rows::text, reason FROM audit_chain_anchors WHERE tenant_id = $1',
      [tenant],
    );
    expect(anchors).toEqual([{ seq: '3', purged_rows: '3', reason: 'retention policy: 30 days' }]);
    const { rows: purgeRow } = await owner.query(
      "SELECT severity, after FROM audit_logs WHERE tenant_id = $1 AND action = 'audit.purge'",
      [tenant],
    );
    expect(purgeRow).toEqual([
      {
        severity: 'critical',
        after: expect.objectContaining({ purgedRows: 3, throughSeq: 3, reason: 'retention policy: 30 days' }),
      },
    ]);

    await sealAll(owner);
    const r = await t.composition.services.audit.verify(tenant);
    expect(r).toMatchObject({ valid: true, checked: 3, unsealed: 0, resumedFrom: { seq: '3' } });
  });

  it('when an old row sits after a newer one in the chain, then only the contiguous prefix is purged', async () => {
    const tenant = uniqueTenant('purge');
    const [first] = await insertRawRows(owner, tenant, [{ createdAt: daysAgo(60) }]);
    await sealAll(owner);
    await insertRawRows(owner, tenant, [{ createdAt: daysAgo(2) }]);
    await sealAll(owner);
    await insertRawRows(owner, tenant, [{ createdAt: daysAgo(50) }]); // backdated, sealed last
    await sealAll(owner);
    expect(await purge(tenant, 30)).toEqual({ purged_rows: '1', through_seq: '1' });
    const { rows } = await owner.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_logs WHERE id = $1', [
      first,
    ]);
    expect(rows[0]?.n).toBe(0);
    await sealAll(owner);
    expect(await t.composition.services.audit.verify(tenant)).toMatchObject({ valid: true, checked: 3 });
  });

  it('when everything is purged, then new rows continue the chain from the anchor', async () => {
    const tenant = uniqueTenant('purge');
    await insertRawRows(owner, tenant, [{ createdAt: daysAgo(40) }, { createdAt: daysAgo(39) }]);
    await sealAll(owner);
    expect(await purge(tenant, 30)).toEqual({ purged_rows: '2', through_seq: '2' });
    await sealAll(owner);
    const { rows } = await owner.query(
      "SELECT c.seq::text FROM audit_chain c JOIN audit_logs l ON l.id = c.audit_id WHERE l.tenant_id = $1 AND l.action = 'audit.purge'",
      [tenant],
    );
    expect(rows).toEqual([{ seq: '3' }]);
    expect(await t.composition.services.audit.verify(tenant)).toMatchObject({
      valid: true,
      checked: 1,
      resumedFrom: { seq: '2' },
    });
  });

  it('when rows newer than one day are asked for, or no reason is given, then the purge is refused and nothing changes', async () => {
    const tenant = uniqueTenant('purge');
    await insertRawRows(owner, tenant, [{}]);
    await sealAll(owner);
    await expect(owner.query("SELECT * FROM audit_purge($1, now(), 'too eager')", [tenant])).rejects.toMatchObject({
      message: expect.stringMatching(/newer than one day/),
    });
    await expect(
      owner.query("SELECT * FROM audit_purge($1, now() - interval '30 days', '')", [tenant]),
    ).rejects.toMatchObject({ message: expect.stringMatching(/reason/) });
    const { rows } = await owner.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1',
      [tenant],
    );
    expect(rows[0]?.n).toBe(1);
  });

  it('when unsealed old rows exist, then they are not purged', async () => {
    const tenant = uniqueTenant('purge');
    const lock = await owner.connect();
    try {
      // Hold the sealers' lock (advisory locks of one session do not block each other, so the
      // purge below, run on this connection, still gets it while no sealer can run).
      await lock.query('SELECT pg_advisory_lock($1)', ['7308325827335103841']);
      const [old] = await insertRawRows(owner, tenant, [{ createdAt: daysAgo(100) }]);
      const { rows } = await lock.query(
        "SELECT purged_rows::text, through_seq::text FROM audit_purge($1, now() - interval '30 days', 'retention')",
        [tenant],
      );
      expect(rows[0]).toEqual({ purged_rows: '0', through_seq: null });
      const { rows: still } = await lock.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM audit_logs WHERE id = $1',
        [old],
      );
      expect(still[0]?.n).toBe(1);
    } finally {
      await lock.query('SELECT pg_advisory_unlock($1)', ['7308325827335103841']);
      lock.release();
    }
  });
});
