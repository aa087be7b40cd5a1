/**
 * Each HTTP connector against a local receiver implementing that SIEM's ingestion API:
 * what goes over the wire, and how every answer is classified (delivered / retry / dead).
 * The Elastic partial-failure path is also driven through the outbox.
 */
import { randomBytes } from 'node:crypto';
import { ManualClock } from '../../src/lib/clock';
import { createDatadogConnector } from '../../src/services/siem/connectors/datadog';
import { createElasticConnector } from '../../src/services/siem/connectors/elastic';
import { createSplunkConnector } from '../../src/services/siem/connectors/splunk';
import { createWebhookConnector } from '../../src/services/siem/connectors/webhook';
import { normalizeEvent } from '../../src/services/siem/events';
import type { SiemConnector, SiemEvent } from '../../src/services/siem/types';
import { uniqueTenant } from '../helpers/env';
import { createIsolatedDatabase, type IsolatedDatabase } from './helpers/db';
import { buildStack, type Stack } from './helpers/harness';
import {
  startDatadogReceiver,
  startElasticReceiver,
  startHecReceiver,
  startWebhookReceiver,
  verifyWebhook,
  type DatadogReceiver,
  type ElasticReceiver,
  type HecReceiver,
  type WebhookReceiver,
} from './helpers/receivers';

const KEY = randomBytes(16).toString('hex');
const connectors: SiemConnector[] = [];

function track<T extends SiemConnector>(c: T): T {
  connectors.push(c);
  return c;
}

function events(n: number, over: Partial<SiemEvent> = {}): SiemEvent[] {
  const tenantId = uniqueTenant();
  return Array.from({ length: n }, (_, i) => ({
    ...normalizeEvent(
      {
        tenantId,
        eventType: 'fleet.test.event',
        severity: 'high',
        message: `event ${i}`,
        ipAddress: '198.51.100.4',
        userId: '11111111-2222-4333-8444-555555555555',
      },
      Date.now(),
    ),
    ...over,
  }));
}

function kinds(report: { outcomes: Map<string, { kind: string }> }, list: SiemEvent[]): string[] {
  return list.map((e) => report.outcomes.get(e.id)?.kind ?? 'missing');
}

afterAll(async () => {
  for (const c of connectors) await c.close();
});

describe('Datadog Logs v2', () => {
  let dd: DatadogReceiver;
  let c: SiemConnector;
  beforeAll(async () => {
    dd = await startDatadogReceiver(KEY);
    c = track(
      createDatadogConnector({ endpointUrl: dd.url, apiKey: KEY, hostname: 'fleet-host', environment: 'test' }),
    );
  });
  afterAll(() => dd.close());
  beforeEach(() => dd.reset());

  it('when events are sent, then one POST /api/v2/logs with DD-API-KEY carries a JSON array of log entries and 202 means delivered', async () => {
    const list = events(3);
    const r = await c.send(list);
    expect(kinds(r, list)).toEqual(['delivered', 'delivered', 'delivered']);
    expect(dd.requests).toHaveLength(1);
    expect(dd.requests[0]?.headers['dd-api-key']).toBe(KEY);
    expect(dd.requests[0]?.headers['content-type']).toBe('application/json');
    expect(dd.logs.map((l) => (l.evt as { id: string }).id)).toEqual(list.map((e) => e.id));
    expect(dd.logs[0]).toMatchObject({
      ddsource: 'fleet-security-api',
      service: 'fleet-security-api',
      hostname: 'fleet-host',
      status: 'error',
      message: 'event 0',
      network: { client: { ip: '198.51.100.4' } },
    });
    expect(String(dd.logs[0]?.ddtags)).toContain('env:test');
  });

  it('when 2500 events are sent, then they go in requests of at most 1000 entries', async () => {
    const list = events(2500);
    const r = await c.send(list);
    expect(kinds(r, list).every((k) => k === 'delivered')).toBe(true);
    expect(dd.batches.map((b) => b.entries)).toEqual([1000, 1000, 500]);
    expect(dd.logs).toHaveLength(2500);
  });

  it('when large events would exceed 5 MB per request, then requests are split by size', async () => {
    const list = events(400, { details: { blob: 'x'.repeat(15_000) } });
    const r = await c.send(list);
    expect(kinds(r, list).every((k) => k === 'delivered')).toBe(true);
    expect(dd.batches.length).toBeGreaterThanOrEqual(2);
    for (const b of dd.batches) expect(b.bytes).toBeLessThanOrEqual(5_000_000);
    expect(dd.logs).toHaveLength(400);
  });

  it.each([
    [429, 'retry'],
    [408, 'retry'],
    [500, 'retry'],
    [503, 'retry'],
    [400, 'dead'],
    [401, 'dead'],
    [413, 'dead'],
  ])('when the intake answers %i, then the events are %s', async (status, kind) => {
    dd.failNext(1, { status, headers: status === 429 ? { 'Retry-After': '7' } : {}, body: '{"errors":["x"]}' });
    const list = events(2);
    const r = await c.send(list);
    expect(kinds(r, list)).toEqual([kind, kind]);
    expect(r.error).toBe(`datadog: HTTP ${status}`);
    if (status === 429) expect(r.outcomes.get(list[0]?.id as string)).toMatchObject({ retryAfterMs: 7000 });
  });

  it('when the API key is wrong, then the receiver answers 403 and the events are dead', async () => {
    const bad = track(createDatadogConnector({ endpointUrl: dd.url, apiKey: 'nope', hostname: 'h' }));
    const list = events(1);
    const r = await bad.send(list);
    expect(kinds(r, list)).toEqual(['dead']);
    expect(dd.logs).toHaveLength(0);
    await expect(bad.healthCheck()).rejects.toThrow('datadog: health check answered HTTP 403');
  });

  it('when the intake does not answer in time, then the events are retried with a timeout reason', async () => {
    const slow = track(createDatadogConnector({ endpointUrl: dd.url, apiKey: KEY, timeoutMs: 200 }));
    dd.hang(true);
    const list = events(1);
    const r = await slow.send(list);
    expect(r.outcomes.get(list[0]?.id as string)).toEqual({ kind: 'retry', reason: 'datadog: timeout' });
  });

  it('when the health check runs against a working intake, then it resolves', async () => {
    await expect(c.healthCheck()).resolves.toBeUndefined();
  });
});

describe('Elasticsearch _bulk', () => {
  let es: ElasticReceiver;
  let c: SiemConnector;
  beforeAll(async () => {
    es = await startElasticReceiver(KEY);
    c = track(createElasticConnector({ endpointUrl: `${es.url}/fleet-sec`, apiKey: KEY, hostname: 'fleet-host' }));
  });
  afterAll(() => es.close());
  beforeEach(() => es.reset());

  it('when events are sent, then the body is NDJSON create actions with _id = event id and ECS documents', async () => {
    const list = events(2);
    const r = await c.send(list);
    expect(kinds(r, list)).toEqual(['delivered', 'delivered']);
    const req = es.requests[0];
    expect(req?.headers['content-type']).toBe('application/x-ndjson');
    expect(req?.headers.authorization).toBe(`ApiKey ${KEY}`);
    const lines = req?.body.toString('utf8').split('\n') ?? [];
    expect(lines).toHaveLength(5);
    expect(JSON.parse(lines[0] as string)).toEqual({ create: { _index: 'fleet-sec', _id: list[0]?.id } });
    expect(es.docs.get(`fleet-sec/${list[1]?.id}`)).toMatchObject({
      '@timestamp': list[1]?.time,
      event: { id: list[1]?.id, action: 'fleet.test.event' },
      message: 'event 1',
      source: { ip: '198.51.100.4' },
    });
  });

  it('when some items fail, then only 429/5xx items are retried, mapping errors are dead and the rest delivered', async () => {
    const list = events(5);
    const byId = new Map(list.map((e, i) => [e.id, i]));
    es.failItems((id) => {
      const i = byId.get(id);
      if (i === 1)
        return {
          status: 429,
          type: 'es_rejected_execution_exception',
          reason: 'rejected execution of coordinating operation',
        };
      if (i === 3)
        return {
          status: 400,
          type: 'document_parsing_exception',
          reason: '[1:2] failed to parse field [source.ip] of type [ip]',
        };
      if (i === 4) return { status: 503, type: 'unavailable_shards_exception', reason: 'primary shard is not active' };
      return null;
    });
    const r = await c.send(list);
    expect(kinds(r, list)).toEqual(['delivered', 'retry', 'delivered', 'dead', 'retry']);
    expect(r.outcomes.get(list[3]?.id as string)).toEqual({
      kind: 'dead',
      reason: 'elastic: item document_parsing_exception: [1:2] failed to parse field [source.ip] of type [ip]',
    });
  });

  it('when an event is replayed, then the 409 conflict of create counts as delivered and nothing is duplicated', async () => {
    const list = events(2);
    await c.send(list);
    const again = await c.send(list);
    expect(kinds(again, list)).toEqual(['delivered', 'delivered']);
    expect(es.docs.size).toBe(2);
  });

  it('when the API key is refused (401), then the events are dead-lettered', async () => {
    const bad = track(createElasticConnector({ endpointUrl: es.url, apiKey: 'wrong' }));
    const list = events(1);
    const r = await bad.send(list);
    expect(kinds(r, list)).toEqual(['dead']);
    expect(r.error).toBe('elastic: HTTP 401');
  });

  it('when the cluster is down, then the events are retried', async () => {
    await es.down();
    try {
      const list = events(1);
      const r = await c.send(list);
      expect(kinds(r, list)).toEqual(['retry']);
      await expect(c.healthCheck()).rejects.toThrow(/elastic: network error/);
    } finally {
      await es.up();
    }
    await expect(c.healthCheck()).resolves.toBeUndefined();
  });
});

describe('Elasticsearch partial failure through the outbox', () => {
  let db: IsolatedDatabase;
  let es: ElasticReceiver;
  let s: Stack;
  beforeAll(async () => {
    db = await createIsolatedDatabase('elastic');
    es = await startElasticReceiver(null);
    s = await buildStack(
      db,
      { SIEM_PROVIDER: 'elastic', SIEM_ENDPOINT_URL: es.url, SIEM_BATCH_SIZE: '10' },
      { random: () => 0.5 },
      new ManualClock(Date.now()),
    );
  });
  afterAll(async () => {
    await s.close();
    await es.close();
    await db.drop();
  });

  it('when two items of a bulk fail with 429, then the next flush sends only those two ids and all five end up indexed', async () => {
    const tenantId = uniqueTenant();
    const ids = await s.monitoring.siem.sendBatch(
      Array.from({ length: 5 }, (_, i) => ({
        tenantId,
        eventType: 'fleet.test.event',
        severity: 'high' as const,
        message: `e${i}`,
      })),
    );
    const failing = new Set([ids[1], ids[3]]);
    es.failItems((id) =>
      failing.has(id) ? { status: 429, type: 'es_rejected_execution_exception', reason: 'queue full' } : null,
    );
    expect(await s.monitoring.siem.flushOnce()).toEqual({ claimed: 5, delivered: 3, retried: 2, dead: 0 });
    const left = (await db.owner.query('SELECT event_id, attempts FROM siem_outbox ORDER BY seq')).rows;
    expect(left).toEqual([
      { event_id: ids[1], attempts: 1 },
      { event_id: ids[3], attempts: 1 },
    ]);
    es.failItems(null);
    es.seenIds.length = 0;
    s.clock.advance(1000);
    expect(await s.monitoring.siem.flushOnce()).toEqual({ claimed: 2, delivered: 2, retried: 0, dead: 0 });
    expect(es.seenIds).toEqual([ids[1], ids[3]]);
    expect(new Set([...es.docs.keys()].map((k) => k.split('/')[1]))).toEqual(new Set(ids));
  });

  it('when the acknowledgement of a bulk is lost, then the retry carries the same ids and the 409s make it idempotent', async () => {
    const tenantId = uniqueTenant();
    const ids = await s.monitoring.siem.sendBatch(
      Array.from({ length: 3 }, (_, i) => ({
        tenantId,
        eventType: 'fleet.test.event',
        severity: 'high' as const,
        message: `lost ${i}`,
      })),
    );
    es.seenIds.length = 0;
    es.acceptButReply(1, { status: 502, body: 'Bad Gateway' });
    expect(await s.monitoring.siem.flushOnce()).toMatchObject({ claimed: 3, retried: 3 });
    s.clock.advance(1000);
    expect(await s.monitoring.siem.flushOnce()).toEqual({ claimed: 3, delivered: 3, retried: 0, dead: 0 });
    expect(es.seenIds).toEqual([...ids, ...ids]);
    expect([...es.docs.keys()].filter((k) => ids.includes(k.split('/')[1] as string))).toHaveLength(3);
  });
});

describe('Splunk HEC connector', () => {
  let hec: HecReceiver;
  beforeAll(async () => {
    hec = await startHecReceiver(KEY);
  });
  afterAll(() => hec.close());
  beforeEach(() => hec.reset());

  it('when events are sent, then the envelopes arrive back to back with Authorization: Splunk <token>', async () => {
    const c = track(createSplunkConnector({ endpointUrl: hec.url, apiKey: KEY, hostname: 'h1' }));
    const list = events(3);
    const r = await c.send(list);
    expect(kinds(r, list)).toEqual(['delivered', 'delivered', 'delivered']);
    expect(hec.requests[0]?.headers.authorization).toBe(`Splunk ${KEY}`);
    expect(hec.envelopes.map((e) => [e.host, e.source, e.sourcetype, e.event.id])).toEqual(
      list.map((e) => ['h1', 'fleet-security-api', 'fleet:security', e.id]),
    );
  });

  it('when no token is configured, then HEC answers 401 code 2 and the events are dead', async () => {
    const c = track(createSplunkConnector({ endpointUrl: hec.url, apiKey: null }));
    const list = events(1);
    const r = await c.send(list);
    expect(hec.requests[0]?.headers.authorization).toBeUndefined();
    expect(r.outcomes.get(list[0]?.id as string)).toEqual({
      kind: 'dead',
      reason: 'splunk: HTTP 401 HEC code 2 Token is required',
    });
  });

  it('when HEC is healthy or its queues are full, then the health check resolves or rejects', async () => {
    const c = track(createSplunkConnector({ endpointUrl: hec.url, apiKey: KEY }));
    await expect(c.healthCheck()).resolves.toBeUndefined();
    hec.busy(true);
    await expect(c.healthCheck()).rejects.toThrow('splunk: health check answered HTTP 503');
  });
});

describe('signed webhook', () => {
  let wh: WebhookReceiver & { endpoint: string };
  beforeAll(async () => {
    wh = await startWebhookReceiver(KEY);
  });
  afterAll(() => wh.close());
  beforeEach(() => wh.reset());

  it('when events are posted, then the receiver verifies X-Fleet-Signature over timestamp.body and gets the array', async () => {
    const c = track(createWebhookConnector({ endpointUrl: wh.endpoint, apiKey: KEY }));
    const list = events(2);
    const r = await c.send(list);
    expect(kinds(r, list)).toEqual(['delivered', 'delivered']);
    expect(wh.refused()).toBe(0);
    const req = wh.requests[0];
    expect(req?.headers['x-fleet-timestamp']).toMatch(/^\d{10}$/);
    expect(req?.headers['x-fleet-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(req?.headers['x-fleet-delivery']).toMatch(/^[0-9a-f-]{36}$/);
    expect(verifyWebhook(KEY, req?.headers ?? {}, req?.body ?? Buffer.alloc(0))).toBe(true);
    expect(wh.events).toEqual(JSON.parse(JSON.stringify(list)));
  });

  it('when a delivered body is altered afterwards, then its signature no longer verifies', async () => {
    const c = track(createWebhookConnector({ endpointUrl: wh.endpoint, apiKey: KEY }));
    await c.send(events(1));
    const req = wh.requests[0];
    const body = Buffer.from(req?.body ?? Buffer.alloc(0));
    expect(verifyWebhook(KEY, req?.headers ?? {}, body)).toBe(true);
    body[body.length - 3] = body[body.length - 3] === 0x61 ? 0x62 : 0x61;
    expect(verifyWebhook(KEY, req?.headers ?? {}, body)).toBe(false);
  });

  it('when the connector signs with another key, then the receiver refuses with 401 and the events are dead', async () => {
    const c = track(createWebhookConnector({ endpointUrl: wh.endpoint, apiKey: 'other-key' }));
    const list = events(1);
    const r = await c.send(list);
    expect(kinds(r, list)).toEqual(['dead']);
    expect(wh.refused()).toBe(1);
    expect(wh.events).toHaveLength(0);
  });

  it('when the connector clock is skewed by an hour, then the receiver refuses the stale timestamp', async () => {
    const c = track(
      createWebhookConnector({ endpointUrl: wh.endpoint, apiKey: KEY, now: () => Date.now() - 3_600_000 }),
    );
    const list = events(1);
    const r = await c.send(list);
    expect(kinds(r, list)).toEqual(['dead']);
    expect(wh.refused()).toBe(1);
  });

  it('when the receiver fails with 500, then the events are retried; with a redirect, then they are not followed', async () => {
    const c = track(createWebhookConnector({ endpointUrl: wh.endpoint, apiKey: KEY }));
    wh.failNext(1, { status: 500, body: 'oops' });
    const list = events(1);
    expect(kinds(await c.send(list), list)).toEqual(['retry']);
    wh.failNext(1, { status: 302, headers: { Location: 'http://127.0.0.1:1/elsewhere' } });
    const r = await c.send(list);
    expect(r.outcomes.get(list[0]?.id as string)).toEqual({
      kind: 'dead',
      reason: 'webhook: HTTP 302 redirect not followed (check SIEM_ENDPOINT_URL)',
    });
  });

  it('when the health check probes the webhook, then any answer below 500 counts as reachable', async () => {
    const c = track(createWebhookConnector({ endpointUrl: wh.endpoint, apiKey: KEY }));
    await expect(c.healthCheck()).resolves.toBeUndefined();
    const gone = track(createWebhookConnector({ endpointUrl: 'http://127.0.0.1:1/none', apiKey: KEY }));
    await expect(gone.healthCheck()).rejects.toThrow(/webhook: network error/);
  });
});
