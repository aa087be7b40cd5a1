/**
 * SIEM outbox claims are short leases, renewed by the delivering worker while its batch is in
 * flight: a slow SIEM keeps its batch (no second delivery), and the claims of an instance that
 * died are taken over within one lease by another instance's worker.
 */
import { ManualClock } from '../../src/lib/clock';
import { withSiemWorker } from '../../src/db/transaction';
import { claimBatch } from '../../src/services/siem/repository';
import { DEFAULT_LEASE_MS } from '../../src/services/siem/service';
import type { DeliveryReport, SiemConnector, SiemEvent } from '../../src/services/siem/types';
import { uniqueTenant } from '../helpers/env';
import { createIsolatedDatabase, type IsolatedDatabase } from './helpers/db';
import { buildStack, eventually, type Stack } from './helpers/harness';

let db: IsolatedDatabase;
const stacks: Stack[] = [];
const ENV = {
  SIEM_PROVIDER: 'webhook',
  SIEM_ENDPOINT_URL: 'http://127.0.0.1:9/unused',
  SIEM_API_KEY: 'webhook-secret-0123456789abcdef0123',
  SIEM_BATCH_SIZE: '10',
};

/** A connector that records what it was given and, while gated, holds every send until opened. */
function gatedConnector(): SiemConnector & { sent: string[][]; gate(): void; open(): void; waiting(): number } {
  const sent: string[][] = [];
  let gate: Promise<void> | null = null;
  let release: (() => void) | null = null;
  let waiting = 0;
  return {
    provider: 'webhook',
    sent,
    gate() {
      gate = new Promise((r) => (release = r));
    },
    open() {
      release?.();
      gate = null;
    },
    waiting: () => waiting,
    async send(events: readonly SiemEvent[]): Promise<DeliveryReport> {
      waiting += 1;
      if (gate) await gate;
      waiting -= 1;
      sent.push(events.map((e) => e.id));
      return { outcomes: new Map(events.map((e) => [e.id, { kind: 'delivered' as const }])) };
    },
    async healthCheck() {},
    async close() {},
  };
}

beforeAll(async () => {
  db = await createIsolatedDatabase('lease');
});

afterAll(async () => {
  for (const s of stacks) await s.close().catch(() => undefined);
  await db?.drop();
});

beforeEach(async () => {
  await db.owner.query('TRUNCATE siem_outbox, siem_dead_letter, siem_worker_state');
});

async function stack(
  env: Record<string, string>,
  deps: Parameters<typeof buildStack>[2],
  clock: ManualClock,
): Promise<Stack> {
  const s = await buildStack(db, { ...ENV, ...env }, deps, clock);
  stacks.push(s);
  return s;
}

function inputs(tenantId: string, n: number) {
  return Array.from({ length: n }, (_, i) => ({
    tenantId,
    eventType: 'fleet.test.event',
    severity: 'high' as const,
    message: `event ${i}`,
  }));
}

async function claims(): Promise<Array<{ claimed_by: string | null; claimed_until: Date | null }>> {
  return (await db.owner.query('SELECT claimed_by, claimed_until FROM siem_outbox ORDER BY seq')).rows;
}

describe('SIEM outbox leases', () => {
  test('the default lease is 30 seconds', () => {
    expect(DEFAULT_LEASE_MS).toBe(30_000);
  });

  test('when a batch is in flight longer than the lease, then the worker renews its claim, no other worker claims the batch, and it is delivered once', async () => {
    const clock = new ManualClock(Date.now());
    const leaseMs = 300;
    const connA = gatedConnector();
    const a = await stack({}, { connector: connA, leaseMs }, clock);
    const b = await stack({}, { connector: gatedConnector(), leaseMs }, clock);
    const ids = await a.monitoring.siem.sendBatch(inputs(uniqueTenant(), 4));
    connA.gate();
    const flushing = a.monitoring.siem.flushOnce();
    await eventually(() => connA.waiting() === 1, 'A to hold the batch');
    const first = (await claims())[0]?.claimed_until as Date;
    expect(first.getTime()).toBe(clock.now() + leaseMs);
    // Time passes beyond the original lease; the worker renews from the clock's time.
    clock.advance(leaseMs * 2);
    await eventually(
      async () =>
        (await claims()).every((c) => c.claimed_until !== null && c.claimed_until.getTime() === clock.now() + leaseMs),
      'the lease to be renewed',
    );
    expect((await claims()).every((c) => c.claimed_by === a.monitoring.siem.instanceId)).toBe(true);
    expect((await b.monitoring.siem.flushOnce()).claimed).toBe(0);
    connA.open();
    expect(await flushing).toEqual({ claimed: 4, delivered: 4, retried: 0, dead: 0 });
    expect(connA.sent).toEqual([ids]);
    expect(await claims()).toEqual([]);
    // Renewal stopped with the batch: nothing is left claimed or renewed afterwards.
    expect(a.logs.filter((l) => l.includes('renewal'))).toEqual([]);
  });

  test('when an instance dies holding a claim, then another instance takes the events over once the lease ran out (not before)', async () => {
    const clock = new ManualClock(Date.now());
    const connB = gatedConnector();
    const a = await stack({}, {}, clock);
    const b = await stack({}, { connector: connB }, clock);
    const ids = await a.monitoring.siem.sendBatch(inputs(uniqueTenant(), 5));
    // A claims with the default lease and dies: no delivery, no release.
    expect(
      await withSiemWorker(a.pool, (c) =>
        claimBatch(
          c,
          a.monitoring.siem.instanceId,
          new Date(clock.now()),
          new Date(clock.now() + DEFAULT_LEASE_MS),
          10,
        ),
      ),
    ).toHaveLength(5);
    clock.advance(DEFAULT_LEASE_MS - 1);
    expect((await b.monitoring.siem.flushOnce()).claimed).toBe(0);
    clock.advance(2);
    expect(await b.monitoring.siem.flushOnce()).toEqual({ claimed: 5, delivered: 5, retried: 0, dead: 0 });
    expect(connB.sent.flat().sort()).toEqual([...ids].sort());
  });

  test("when a dead instance's claim runs out, then a running worker notices within its fill check and delivers, without waiting for its flush interval", async () => {
    const t0 = Date.now();
    const clock = new ManualClock(t0);
    const connB = gatedConnector();
    const dead = await stack({}, {}, clock);
    // The running worker's flush interval (10 min) is far away: only its fill check can act.
    const b = await stack({ SIEM_FLUSH_INTERVAL_MS: '600000' }, { connector: connB }, clock);
    const ids = await dead.monitoring.siem.sendBatch(inputs(uniqueTenant(), 3));
    // Claimed, as by an instance that then died.
    expect(
      await withSiemWorker(dead.pool, (c) =>
        claimBatch(c, 'dead-instance', new Date(t0), new Date(t0 + DEFAULT_LEASE_MS), 10),
      ),
    ).toHaveLength(3);
    await b.monitoring.start();
    // Its start-up tick (at once) finds nothing it may claim; let it finish.
    await new Promise((r) => setTimeout(r, 300));
    expect(connB.sent).toEqual([]);
    clock.advance(DEFAULT_LEASE_MS + 1);
    await eventually(() => connB.sent.flat().length === 3, 'the takeover delivery', 10_000);
    expect(connB.sent.flat().sort()).toEqual([...ids].sort());
    await eventually(async () => (await claims()).length === 0, 'the delivered events to leave the outbox');
  });
});
