/**
 * Splunk indexer acknowledgement (SIEM_SPLUNK_ACK): a channel per connector, ackIds polled at
 * /services/collector/ack, events delivered only once acknowledged as indexed, unacknowledged
 * events resent after the timeout with the same event ids. The local HEC delays and drops acks.
 */
import { createSplunkConnector } from '../../src/services/siem/connectors/splunk';
import { normalizeEvent } from '../../src/services/siem/events';
import type { SiemEvent } from '../../src/services/siem/types';
import { uniqueTenant } from '../helpers/env';
import { createIsolatedDatabase, type IsolatedDatabase } from './helpers/db';
import { buildStack, type Stack } from './helpers/harness';
import { startHecReceiver, type HecReceiver } from './helpers/receivers';

const TOKEN = 'hec-ack-token';
let hec: HecReceiver;

beforeAll(async () => {
  hec = await startHecReceiver(TOKEN);
});
afterAll(() => hec.close());
beforeEach(() => hec.reset());

function events(n: number): SiemEvent[] {
  const tenantId = uniqueTenant();
  return Array.from({ length: n }, (_, i) =>
    normalizeEvent({ tenantId, eventType: 'fleet.ack.test', severity: 'high', message: `event ${i}` }, Date.now()),
  );
}

function kinds(r: { outcomes: Map<string, { kind: string }> }, list: SiemEvent[]): string[] {
  return list.map((e) => r.outcomes.get(e.id)?.kind ?? 'missing');
}

describe('connector', () => {
  it('when HEC acknowledges after a delay, then events are delivered once acked, on one channel for events and ack queries', async () => {
    hec.ackMode({ delayMs: 150 });
    const c = createSplunkConnector({ endpointUrl: hec.url, apiKey: TOKEN, ack: { timeoutMs: 5000, pollMs: 20 } });
    try {
      const list = events(3);
      const r = await c.send(list);
      expect(kinds(r, list)).toEqual(['delivered', 'delivered', 'delivered']);
      expect(r.error).toBeUndefined();
      const channel = hec.requests.find((q) => q.path === '/services/collector/event')?.headers[
        'x-splunk-request-channel'
      ];
      expect(channel).toMatch(/^[0-9a-f-]{36}$/);
      expect(hec.ackQueries.length).toBeGreaterThan(1); // polled until the delay passed
      expect(hec.ackQueries.every((q) => q.channel === channel && q.acks.join() === '0')).toBe(true);
    } finally {
      await c.close();
    }
  });

  it('when the acknowledgement never comes, then the events are not delivered but retried after the timeout (HEC did receive them)', async () => {
    hec.ackMode({ delayMs: 0, drop: () => true });
    const c = createSplunkConnector({ endpointUrl: hec.url, apiKey: TOKEN, ack: { timeoutMs: 300, pollMs: 20 } });
    try {
      const list = events(2);
      const r = await c.send(list);
      expect(kinds(r, list)).toEqual(['retry', 'retry']);
      expect(r.error).toMatch(/not acknowledged as indexed/);
      expect(hec.envelopes).toHaveLength(2);
    } finally {
      await c.close();
    }
  });

  it('when the token has acknowledgement disabled (no ackId), then events count as delivered and the report says indexing is unconfirmed', async () => {
    const c = createSplunkConnector({ endpointUrl: hec.url, apiKey: TOKEN, ack: { timeoutMs: 300, pollMs: 20 } });
    try {
      const list = events(1);
      const r = await c.send(list);
      expect(kinds(r, list)).toEqual(['delivered']);
      expect(r.error).toMatch(/no ackId/);
    } finally {
      await c.close();
    }
  });

  it('when HEC refuses an event in the middle of a request, then with acknowledgement the events before it are resent (nothing of that request was acknowledged)', async () => {
    hec.ackMode({ delayMs: 0 });
    hec.rejectWhen((e) => e.message === 'event 1');
    const c = createSplunkConnector({ endpointUrl: hec.url, apiKey: TOKEN, ack: { timeoutMs: 1000, pollMs: 20 } });
    try {
      const list = events(3);
      const r = await c.send(list);
      expect(kinds(r, list)).toEqual(['retry', 'dead', 'retry']);
    } finally {
      await c.close();
    }
  });
});

describe('through the outbox', () => {
  let db: IsolatedDatabase;
  let s: Stack;

  beforeAll(async () => {
    db = await createIsolatedDatabase('splunkack');
    s = await buildStack(db, {
      SIEM_PROVIDER: 'splunk',
      SIEM_ENDPOINT_URL: hec.url,
      SIEM_API_KEY: TOKEN,
      SIEM_SPLUNK_ACK: 'true',
      SIEM_SPLUNK_ACK_TIMEOUT_MS: '300',
      SIEM_BATCH_SIZE: '10',
    });
  }, 60_000);
  afterAll(async () => {
    await s?.close();
    await db?.drop();
  });

  it('when the first acknowledgement is lost, then the events stay queued, are resent later with the same ids and leave the outbox only once acknowledged', async () => {
    let first = true;
    hec.ackMode({
      delayMs: 0,
      drop: () => {
        const d = first;
        first = false;
        return d;
      },
    });
    const ids = await s.monitoring.siem.sendBatch(
      events(3).map((e) => ({
        tenantId: e.tenantId,
        eventType: e.eventType,
        severity: e.severity,
        message: e.message,
      })),
    );
    const r1 = await s.monitoring.siem.flushOnce();
    expect(r1).toMatchObject({ claimed: 3, delivered: 0, retried: 3 });
    const queued = await db.owner.query<{ n: number }>('SELECT count(*)::int AS n FROM siem_outbox');
    expect(queued.rows[0]?.n).toBe(3);
    expect((await s.monitoring.siem.getQueueStatus(null)).lastError).toMatch(/not acknowledged/);
    s.clock.advance(10 * 60_000);
    const r2 = await s.monitoring.siem.flushOnce();
    expect(r2).toMatchObject({ claimed: 3, delivered: 3 });
    const sent = hec.envelopes.map((x) => (x.event as { id: string }).id);
    expect(sent).toEqual([...ids, ...ids]);
    const left = await db.owner.query<{ n: number }>('SELECT count(*)::int AS n FROM siem_outbox');
    expect(left.rows[0]?.n).toBe(0);
  });
});
