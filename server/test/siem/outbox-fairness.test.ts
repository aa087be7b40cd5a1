/**
 * The SIEM outbox bound is fair per tenant: while the SIEM is down, a tenant flooding the
 * shared outbox loses its own oldest events, never another tenant's.
 */
import { randomBytes } from 'node:crypto';
import { ManualClock } from '../../src/lib/clock';
import type { SiemEventInput } from '../../src/services/siem/types';
import { uniqueTenant } from '../helpers/env';
import { createIsolatedDatabase, type IsolatedDatabase } from './helpers/db';
import { buildStack, type Stack } from './helpers/harness';
import { startHecReceiver, type HecReceiver } from './helpers/receivers';

const TOKEN = `hec-${randomBytes(12).toString('hex')}`;
let db: IsolatedDatabase;
let hec: HecReceiver;
let env: Record<string, string>;
const stacks: Stack[] = [];

beforeAll(async () => {
  db = await createIsolatedDatabase('fairness');
  hec = await startHecReceiver(TOKEN);
  env = {
    SIEM_PROVIDER: 'splunk',
    SIEM_ENDPOINT_URL: hec.url,
    SIEM_API_KEY: TOKEN,
    SIEM_BATCH_SIZE: '10',
    SIEM_MAX_QUEUE: '100',
  };
});
afterAll(async () => {
  for (const s of stacks) await s.close().catch(() => undefined);
  await hec?.close();
  await db?.drop();
});
beforeEach(async () => {
  await db.owner.query('TRUNCATE siem_outbox, siem_dead_letter, siem_worker_state');
});

async function stack(): Promise<Stack> {
  const s = await buildStack(db, env, {}, new ManualClock(Date.now()));
  stacks.push(s);
  await s.monitoring.siem.syncSettings(); // high/critical audit rows are queued (start() does this)
  return s;
}

function inputs(tenantId: string, n: number, severity: SiemEventInput['severity']): SiemEventInput[] {
  return Array.from({ length: n }, (_, i) => ({
    tenantId,
    eventType: 'fleet.test.event',
    severity,
    message: `event ${i}`,
  }));
}

async function countsByTenant(table: 'siem_outbox' | 'siem_dead_letter'): Promise<Record<string, number>> {
  const { rows } = await db.owner.query<{ tenant_id: string; n: number }>(
    `SELECT tenant_id, count(*)::int AS n FROM ${table} GROUP BY tenant_id`,
  );
  return Object.fromEntries(rows.map((r) => [r.tenant_id, r.n]));
}

describe('SIEM outbox bound, per tenant', () => {
  test("when one tenant floods the outbox past the bound, then only that tenant's oldest low/medium events are evicted; the quiet tenant's older high events all stay", async () => {
    const s = await stack();
    const quiet = uniqueTenant('quiet');
    const noisy = uniqueTenant('noisy');
    const quietIds = await s.monitoring.siem.sendBatch(inputs(quiet, 30, 'high')); // older than the flood
    const noisyIds = await s.monitoring.siem.sendBatch(inputs(noisy, 70, 'low'));
    // The flood continues through audit rows (always queued, past the bound): 20 high events.
    for (let i = 0; i < 20; i++)
      await s.audit.record({ tenantId: noisy, action: 'user.role_changed', resourceType: 'user', severity: 'high' });
    expect(Object.values(await countsByTenant('siem_outbox')).reduce((a, b) => a + b, 0)).toBe(120);
    const moved = await s.monitoring.siem.trimQueue();
    expect([...moved].sort()).toEqual(noisyIds.slice(0, 20).sort());
    expect(await countsByTenant('siem_outbox')).toEqual({ [quiet]: 30, [noisy]: 70 });
    expect(await countsByTenant('siem_dead_letter')).toEqual({ [noisy]: 20 });
    const { rows } = await db.owner.query('SELECT event_id FROM siem_outbox WHERE tenant_id = $1', [quiet]);
    expect(rows.map((r) => r.event_id).sort()).toEqual([...quietIds].sort());
  });

  test("when the flooding tenant has only high events beyond its share, then its own high events go (oldest first), and the other tenant's low events stay", async () => {
    const s = await stack();
    const quiet = uniqueTenant('quiet');
    const noisy = uniqueTenant('noisy');
    await s.monitoring.siem.sendBatch(inputs(quiet, 10, 'low'));
    const noisyIds = await s.monitoring.siem.sendBatch(inputs(noisy, 90, 'high'));
    for (let i = 0; i < 5; i++)
      await s.audit.record({ tenantId: noisy, action: 'user.role_changed', resourceType: 'user', severity: 'high' });
    const moved = await s.monitoring.siem.trimQueue();
    expect([...moved].sort()).toEqual(noisyIds.slice(0, 5).sort());
    expect(await countsByTenant('siem_outbox')).toEqual({ [quiet]: 10, [noisy]: 90 });
  });

  test('when every tenant is within its share, then nothing is evicted even if critical events keep the queue over the bound', async () => {
    const s = await stack();
    const a = uniqueTenant('a');
    const b = uniqueTenant('b');
    await s.monitoring.siem.sendBatch(inputs(a, 50, 'low'));
    await s.monitoring.siem.sendBatch(inputs(b, 50, 'critical'));
    await s.audit.record({
      tenantId: b,
      action: 'session.revoked.bulk',
      resourceType: 'session',
      severity: 'critical',
    });
    // b holds 51 > its share of 50, but only critical events: nothing of b may go, nothing of a must go.
    expect(await s.monitoring.siem.trimQueue()).toEqual([]);
    expect(await countsByTenant('siem_outbox')).toEqual({ [a]: 50, [b]: 51 });
  });
});
