/**
 * Tenant audit streams (CONTRACT §13): the routes, encrypted credentials, the SSRF policy,
 * per-stream delivery (own tenant only, severity floor, schema, backoff, dead letter, status)
 * and isolation: a blackholed stream delays neither other tenants' streams nor the platform SOC.
 */
import net from 'node:net';
import request from 'supertest';
import { randomBytes } from 'node:crypto';
import { checkDestination, forbiddenRange, guardedLookup } from '../../src/services/siem/streams/destinations';
import { ManualClock } from '../../src/lib/clock';
import { createStreamWorker } from '../../src/services/siem/streams/worker';
import * as streamRepo from '../../src/services/siem/streams/repository';
import type { TestApp } from '../helpers/app';
import { loginAs, type TestLogin } from '../helpers/auth';
import { uniqueTenant } from '../helpers/env';
import { createIsolatedDatabase, type IsolatedDatabase } from './helpers/db';
import { buildSiemTestApp, eventually } from './helpers/harness';
import {
  startHecReceiver,
  startWebhookReceiver,
  verifyWebhook,
  type HecReceiver,
  type WebhookReceiver,
} from './helpers/receivers';

const BASE = '/api/v1/security';
const SECRET = randomBytes(16).toString('hex');

let db: IsolatedDatabase;
let t: TestApp;
let admin: TestLogin;
let wh: WebhookReceiver & { endpoint: string };

beforeAll(async () => {
  db = await createIsolatedDatabase('streams');
  wh = await startWebhookReceiver(SECRET);
  t = await buildSiemTestApp(db, { SIEM_ALLOW_PRIVATE_DESTINATIONS: 'true', SIEM_FLUSH_INTERVAL_MS: '100' });
  admin = await loginAs(t, { role: 'admin' });
}, 60_000);

afterAll(async () => {
  await t?.close();
  await wh?.close();
  await db?.drop();
});

beforeEach(() => wh.reset());

function put(login: TestLogin, name: string, body: unknown) {
  return request(t.app)
    .put(`${BASE}/audit/streams/${name}`)
    .set('Authorization', login.authorization)
    .send(body as object);
}

function webhookStream(over: Record<string, unknown> = {}) {
  return {
    provider: 'webhook',
    endpointUrl: wh.endpoint,
    schema: 'native',
    minSeverity: 'low',
    credentials: { secret: SECRET },
    ...over,
  };
}

/** Runs a worker until no stream is due any more (each tick claims as many as its concurrency allows). */
async function runUntilIdle(w: { tick(): Promise<number>; drain(): Promise<void> }): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const claimed = await w.tick();
    await w.drain();
    if (claimed === 0) return;
  }
  throw new Error('stream worker never became idle');
}

async function deliverNow(): Promise<void> {
  const w = t.composition.services.monitoring.streamWorker;
  if (!w) throw new Error('no stream worker');
  await runUntilIdle(w);
}

describe('stream configuration', () => {
  it('when an admin PUTs a stream, then 200 returns it without credentials, GET lists it, the credential is stored encrypted and an audit row is written', async () => {
    const res = await put(admin, 'soc-main', webhookStream({ schema: 'ocsf', minSeverity: 'medium' }));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      success: true,
      stream: {
        name: 'soc-main',
        provider: 'webhook',
        endpointUrl: wh.endpoint,
        schema: 'ocsf',
        minSeverity: 'medium',
        createdAt: expect.any(String),
      },
    });
    expect(JSON.stringify(res.body)).not.toContain(SECRET);
    const list = await request(t.app).get(`${BASE}/audit/streams`).set('Authorization', admin.authorization);
    expect(list.status).toBe(200);
    expect(list.body.streams.map((s: { name: string }) => s.name)).toContain('soc-main');
    expect(JSON.stringify(list.body)).not.toContain(SECRET);
    const { rows } = await db.owner.query<{ credentials: string }>(
      `SELECT credentials FROM audit_streams WHERE tenant_id = $1 AND name = 'soc-main'`,
      [admin.tenantId],
    );
    expect(rows[0]?.credentials).toMatch(/^v1:/);
    expect(rows[0]?.credentials).not.toContain(SECRET);
    const audit = await db.owner.query(
      `SELECT severity, after FROM audit_logs WHERE tenant_id = $1 AND action = 'audit.stream.created' AND resource_id = 'soc-main'`,
      [admin.tenantId],
    );
    expect(audit.rows).toHaveLength(1);
    expect(JSON.stringify(audit.rows[0])).not.toContain(SECRET);
  });

  it('when a stored credential is copied to another stream or tenant, then it does not decrypt (AAD bound to tenant and stream)', async () => {
    await put(admin, 'aad-a', webhookStream()).expect(200);
    await put(admin, 'aad-b', webhookStream({ credentials: { secret: 'other' } })).expect(200);
    await db.owner.query(
      `UPDATE audit_streams SET credentials = (SELECT credentials FROM audit_streams WHERE tenant_id = $1 AND name = 'aad-a') WHERE tenant_id = $1 AND name = 'aad-b'`,
      [admin.tenantId],
    );
    const { rows } = await db.owner.query<streamRepo.StreamRow>(
      `SELECT id::text AS id, tenant_id, name, provider, endpoint_url, schema, min_severity, credentials, created_at, updated_at FROM audit_streams WHERE tenant_id = $1 AND name IN ('aad-a', 'aad-b') ORDER BY name`,
      [admin.tenantId],
    );
    const streams = t.composition.services.monitoring.streams;
    await expect(streams?.credentialsOf(rows[0] as streamRepo.StreamRow)).resolves.toEqual({ secret: SECRET });
    await expect(streams?.credentialsOf(rows[1] as streamRepo.StreamRow)).rejects.toThrow();
    await request(t.app).delete(`${BASE}/audit/streams/aad-a`).set('Authorization', admin.authorization).expect(200);
    await request(t.app).delete(`${BASE}/audit/streams/aad-b`).set('Authorization', admin.authorization).expect(200);
  });

  it.each([
    ['an upper-case name', 'Bad', () => webhookStream()],
    ['a name of 65 characters', 'a'.repeat(65), () => webhookStream()],
    ['an unknown key', 'x1', () => ({ ...webhookStream(), extra: 1 })],
    ['an unknown provider', 'x2', () => webhookStream({ provider: 'ftp' })],
    ['an unknown schema', 'x3', () => webhookStream({ schema: 'cef' })],
    ['a webhook without a secret', 'x4', () => webhookStream({ credentials: undefined })],
    [
      'splunk with a secret instead of an apiKey',
      'x5',
      () => webhookStream({ provider: 'splunk', credentials: { secret: 's' } }),
    ],
    ['a javascript: URL', 'x6', () => webhookStream({ endpointUrl: 'javascript:alert(1)' })],
    ['credentials in the URL', 'x7', () => webhookStream({ endpointUrl: 'https://user:pw@siem.example.com/hook' })],
    ['a number as URL', 'x8', () => webhookStream({ endpointUrl: 42 })],
  ])('when the PUT has %s, then 400 VALIDATION_FAILED and nothing is stored', async (_what, name, body) => {
    const res = await put(admin, encodeURIComponent(name), body());
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ success: false, error: { code: 'VALIDATION_FAILED' } });
    const { rows } = await db.owner.query(`SELECT 1 FROM audit_streams WHERE tenant_id = $1 AND name = $2`, [
      admin.tenantId,
      name,
    ]);
    expect(rows).toHaveLength(0);
  });

  it('when a tenant already has 10 streams, then an 11th is refused with 409 and updating an existing one still works', async () => {
    const a = await loginAs(t, { role: 'admin' });
    for (let i = 0; i < 10; i++) await put(a, `s-${i}`, webhookStream()).expect(200);
    const res = await put(a, 's-10', webhookStream());
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('CONFLICT');
    await put(a, 's-3', webhookStream({ minSeverity: 'critical', credentials: undefined })).expect(200);
  });

  it('when a non-admin calls the stream routes, then 403; without a token 401', async () => {
    const user = await loginAs(t, { role: 'user' });
    expect((await put(user, 'mine', webhookStream())).status).toBe(403);
    expect((await request(t.app).get(`${BASE}/audit/streams`).set('Authorization', user.authorization)).status).toBe(
      403,
    );
    expect((await request(t.app).get(`${BASE}/audit/streams/status`)).status).toBe(401);
  });

  it("when a stream is deleted, then 404 afterwards; another tenant's stream of the same name is untouched", async () => {
    const other = await loginAs(t, { role: 'admin' });
    await put(admin, 'shared-name', webhookStream()).expect(200);
    await put(other, 'shared-name', webhookStream()).expect(200);
    await request(t.app)
      .delete(`${BASE}/audit/streams/shared-name`)
      .set('Authorization', admin.authorization)
      .expect(200);
    expect(
      (await request(t.app).delete(`${BASE}/audit/streams/shared-name`).set('Authorization', admin.authorization))
        .status,
    ).toBe(404);
    expect(
      (await request(t.app).post(`${BASE}/audit/streams/shared-name/test`).set('Authorization', admin.authorization))
        .status,
    ).toBe(404);
    const list = await request(t.app).get(`${BASE}/audit/streams`).set('Authorization', other.authorization);
    expect(list.body.streams.map((s: { name: string }) => s.name)).toEqual(['shared-name']);
  });
});

describe('SSRF: destinations', () => {
  const policy = { production: false, allowPrivate: false };

  it.each([
    ['loopback IPv4', 'http://127.0.0.1:8080/x'],
    ['loopback IPv4 (other)', 'http://127.10.0.1/x'],
    ['private 10/8', 'https://10.1.2.3/x'],
    ['private 172.16/12', 'https://172.16.5.4/x'],
    ['private 192.168/16', 'https://192.168.1.1/x'],
    ['shared 100.64/10', 'https://100.64.0.1/x'],
    ['link-local (cloud metadata)', 'http://169.254.169.254/latest/meta-data'],
    ['multicast IPv4', 'https://224.0.0.1/x'],
    ['unspecified IPv4', 'http://0.0.0.0:80/x'],
    ['loopback IPv6', 'http://[::1]:8080/x'],
    ['unspecified IPv6', 'http://[::]/x'],
    ['link-local IPv6', 'https://[fe80::1]/x'],
    ['unique-local IPv6', 'https://[fd12:3456::1]/x'],
    ['multicast IPv6', 'https://[ff02::1]/x'],
    ['IPv4-mapped loopback', 'https://[::ffff:127.0.0.1]/x'],
    ['IPv4-mapped private (hex)', 'https://[::ffff:a00:1]/x'],
    ['a name resolving to loopback (localhost)', 'http://localhost:9/x'],
    ['decimal-encoded loopback', 'http://2130706433/x'],
  ])('when the destination is %s, then PUT answers 400 VALIDATION_FAILED', async (_what, url) => {
    await expect(checkDestination(url, policy)).rejects.toThrow(/address|resolve/);
    const strict = await buildSiemTestApp(db, {});
    try {
      const a = await loginAs(strict, { role: 'admin' });
      const res = await request(strict.app)
        .put(`${BASE}/audit/streams/ssrf`)
        .set('Authorization', a.authorization)
        .send(webhookStream({ endpointUrl: url }));
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
      expect(JSON.stringify(res.body.error.details)).toContain('endpointUrl');
    } finally {
      await strict.close();
    }
  });

  it('when a name resolves to any forbidden address among public ones, then it is refused; public addresses pass', async () => {
    await expect(
      checkDestination('https://siem.example.com/x', { ...policy, resolve: async () => ['203.0.113.10', '10.0.0.5'] }),
    ).rejects.toThrow(/private/);
    await expect(
      checkDestination('https://siem.example.com/x', {
        ...policy,
        resolve: async () => ['203.0.113.10', '2001:db8::10'],
      }),
    ).resolves.toBeUndefined();
    expect(forbiddenRange('8.8.8.8')).toBeNull();
  });

  it('when in production, then only https:// is accepted (even to a public address)', async () => {
    await expect(checkDestination('http://203.0.113.10/x', { production: true, allowPrivate: false })).rejects.toThrow(
      /https/,
    );
    await expect(
      checkDestination('https://203.0.113.10/x', { production: true, allowPrivate: false }),
    ).resolves.toBeUndefined();
    await expect(checkDestination('http://127.0.0.1/x', { production: true, allowPrivate: true })).rejects.toThrow(
      /https/,
    );
  });

  it('when connecting, then the lookup refuses a name that resolves to loopback (DNS rebinding after the PUT check)', async () => {
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) =>
      guardedLookup('localhost', {}, (e) => resolve(e)),
    );
    expect(err?.code).toBe('DESTINATION_REFUSED');
  });

  it('when a stream saved while private destinations were allowed is delivered by a worker that refuses them, then nothing is sent and the stream reports the refusal', async () => {
    const a = await loginAs(t, { role: 'admin' });
    // By name (resolved at connect time) and by literal address (refused before connecting).
    await put(a, 'by-name', webhookStream({ endpointUrl: wh.endpoint.replace('127.0.0.1', 'localhost') })).expect(200);
    await put(a, 'by-ip', webhookStream()).expect(200);
    const strictConfig = { ...t.config, siem: { ...t.config.siem, allowPrivateDestinations: false } };
    const monitoring = t.composition.services.monitoring;
    const worker = createStreamWorker({
      pool: t.composition.pool,
      config: strictConfig,
      logger: t.composition.logger,
      clock: t.clock,
      audit: t.composition.services.audit,
      streams: monitoring.streams!,
      random: () => 0,
      concurrency: 50,
    });
    try {
      await request(t.app).post(`${BASE}/audit/streams/by-name/test`).set('Authorization', a.authorization).expect(202);
      await request(t.app).post(`${BASE}/audit/streams/by-ip/test`).set('Authorization', a.authorization).expect(202);
      await worker.tick();
      await worker.drain();
    } finally {
      await worker.stop();
    }
    expect(wh.requests.filter((r) => r.method === 'POST')).toHaveLength(0);
    const status = await request(t.app)
      .get(`${BASE}/audit/streams/status`)
      .set('Authorization', a.authorization)
      .expect(200);
    for (const s of status.body.streams as Array<{ healthy: boolean; lastError: string; queued: number }>) {
      expect(s).toMatchObject({ healthy: false, lastError: expect.stringContaining('destination refused') });
      expect(s.queued).toBeGreaterThan(0);
    }
  });
});

describe('stream delivery', () => {
  it("when audit rows are written, then a stream receives only its own tenant's rows at or above its floor, in its schema, signed with its secret", async () => {
    const a = await loginAs(t, { role: 'admin' });
    const other = uniqueTenant();
    await put(a, 'floor', webhookStream({ minSeverity: 'medium', schema: 'ocsf' })).expect(200);
    await deliverNow(); // the stream's own audit.stream.created row
    wh.reset();
    const audit = t.composition.services.audit;
    await audit.record({
      tenantId: a.tenantId,
      action: 'fleet.device.viewed',
      resourceType: 'device',
      severity: 'low',
    });
    const med = await audit.record({
      tenantId: a.tenantId,
      action: 'fleet.device.updated',
      resourceType: 'device',
      resourceId: 'd1',
      severity: 'medium',
    });
    const high = await audit.record({
      tenantId: a.tenantId,
      action: 'fleet.device.deleted',
      resourceType: 'device',
      resourceId: 'd2',
      severity: 'high',
    });
    await audit.record({
      tenantId: other,
      action: 'fleet.device.deleted',
      resourceType: 'device',
      severity: 'critical',
    });
    await deliverNow();
    expect(wh.refused()).toBe(0);
    const posts = wh.requests.filter((r) => r.method === 'POST');
    expect(posts.every((r) => verifyWebhook(SECRET, r.headers, r.body))).toBe(true);
    const got = wh.events.map((e) => (e.unmapped as { audit_log_id: string }).audit_log_id);
    expect(got).toEqual([med.id, high.id]);
    expect(
      wh.events.every((e) => (e.metadata as { tenant_uid: string }).tenant_uid === a.tenantId && e.class_uid === 6003),
    ).toBe(true);
    const status = await request(t.app)
      .get(`${BASE}/audit/streams/status`)
      .set('Authorization', a.authorization)
      .expect(200);
    expect(status.body).toEqual({
      success: true,
      streams: [
        {
          name: 'floor',
          queued: 0,
          deadLetter: 0,
          lastDeliveredAt: expect.any(String),
          lastError: null,
          healthy: true,
        },
      ],
    });
  });

  it('when the test route is called, then 202 and the test event reaches that stream only', async () => {
    const a = await loginAs(t, { role: 'admin' });
    await put(a, 'one', webhookStream({ minSeverity: 'critical' })).expect(200);
    await put(a, 'two', webhookStream({ minSeverity: 'critical', endpointUrl: `${wh.endpoint}?two` })).expect(200);
    await deliverNow();
    wh.reset();
    const res = await request(t.app).post(`${BASE}/audit/streams/one/test`).set('Authorization', a.authorization);
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ success: true, eventId: expect.any(String) });
    await deliverNow();
    expect(wh.events.map((e) => [e.eventType, e.id])).toEqual([['audit.stream.test', res.body.eventId]]);
    expect(wh.requests.filter((r) => r.method === 'POST').map((r) => r.path)).toEqual(['/hooks/siem']);
  });

  it('when the SIEM fails, then the stream backs off and reports the error; a permanent refusal moves events to its dead letter with an audit row', async () => {
    const a = await loginAs(t, { role: 'admin' });
    await put(a, 'flaky', webhookStream({ minSeverity: 'critical' })).expect(200);
    wh.failNext(1, { status: 503, headers: { 'Retry-After': '120' } });
    await request(t.app).post(`${BASE}/audit/streams/flaky/test`).set('Authorization', a.authorization).expect(202);
    await deliverNow();
    let status = (await request(t.app).get(`${BASE}/audit/streams/status`).set('Authorization', a.authorization)).body
      .streams[0];
    expect(status).toMatchObject({ name: 'flaky', queued: 1, healthy: false, lastError: 'webhook: HTTP 503' });
    const { rows } = await db.owner.query<{ next_attempt_at: Date; attempts: number }>(
      `SELECT st.next_attempt_at, st.attempts FROM audit_stream_state st JOIN audit_streams s ON s.id = st.stream_id WHERE s.tenant_id = $1`,
      [a.tenantId],
    );
    expect(rows[0]?.attempts).toBe(1);
    expect((rows[0]?.next_attempt_at.getTime() ?? 0) - Date.now()).toBeGreaterThan(100_000); // Retry-After honoured
    await deliverNow(); // not due: nothing is sent
    expect(wh.events).toHaveLength(0);
    await db.owner.query(`UPDATE audit_stream_state SET next_attempt_at = now() WHERE tenant_id = $1`, [a.tenantId]);
    wh.failNext(1, { status: 400, body: 'bad payload' });
    await deliverNow();
    // The app's own stream worker may have claimed the now-due stream first: wait for whichever
    // delivered it to finish (the outcome is the same).
    status = await eventually(async () => {
      const s = (await request(t.app).get(`${BASE}/audit/streams/status`).set('Authorization', a.authorization)).body
        .streams[0];
      return s.deadLetter === 1 ? s : null;
    }, 'the refused event to reach the dead letter');
    expect(status).toMatchObject({ queued: 0, deadLetter: 1 });
    const dl = await db.owner.query(
      `SELECT error_message FROM audit_logs WHERE tenant_id = $1 AND action = 'audit.stream.dead_letter'`,
      [a.tenantId],
    );
    expect(dl.rows).toEqual([{ error_message: 'webhook: HTTP 400' }]);
  });
});

describe('isolation', () => {
  let blackhole: net.Server;
  let held: net.Socket[];
  let soc: HecReceiver;
  let good2: WebhookReceiver & { endpoint: string };
  let app: TestApp;

  beforeAll(async () => {
    held = [];
    blackhole = net.createServer((s) => {
      held.push(s); // accept, read, never answer
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
    soc = await startHecReceiver('soc-token');
    good2 = await startWebhookReceiver(SECRET);
  });
  afterAll(async () => {
    await app?.close();
    for (const s of held) s.destroy();
    await new Promise((r) => blackhole.close(r));
    await soc.close();
    await good2.close();
  });

  it('when one tenant stream is blackholed, then the other tenants\u2019 streams and the platform SOC still get their events while its request hangs', async () => {
    app = await buildSiemTestApp(
      db,
      {
        SIEM_ALLOW_PRIVATE_DESTINATIONS: 'true',
        SIEM_FLUSH_INTERVAL_MS: '100',
        SIEM_PROVIDER: 'splunk',
        SIEM_ENDPOINT_URL: soc.url,
        SIEM_API_KEY: 'soc-token',
      },
      { start: true },
    );
    const [bad, ok1, ok2] = [
      await loginAs(app, { role: 'admin' }),
      await loginAs(app, { role: 'admin' }),
      await loginAs(app, { role: 'admin' }),
    ];
    const port = (blackhole.address() as net.AddressInfo).port;
    const putOn = (l: TestLogin, body: unknown) =>
      request(app.app)
        .put(`${BASE}/audit/streams/iso`)
        .set('Authorization', l.authorization)
        .send(body as object);
    await putOn(bad, webhookStream({ endpointUrl: `http://127.0.0.1:${port}/hook`, minSeverity: 'critical' })).expect(
      200,
    );
    await putOn(ok1, webhookStream({ minSeverity: 'critical' })).expect(200);
    await putOn(ok2, webhookStream({ minSeverity: 'critical', endpointUrl: good2.endpoint })).expect(200);
    wh.reset();
    const audit = app.composition.services.audit;
    for (const l of [bad, ok1, ok2])
      await audit.record({
        tenantId: l.tenantId,
        action: 'fleet.fleet.wiped',
        resourceType: 'fleet',
        severity: 'critical',
      });
    await eventually(() => held.length > 0, 'the blackholed stream to connect');
    await eventually(
      () => wh.events.some((e) => e.tenantId === ok1.tenantId && e.eventType === 'fleet.fleet.wiped'),
      'tenant 1 stream',
    );
    await eventually(
      () => good2.events.some((e) => e.tenantId === ok2.tenantId && e.eventType === 'fleet.fleet.wiped'),
      'tenant 2 stream',
    );
    await eventually(
      () => soc.envelopes.filter((x) => x.event.eventType === 'fleet.fleet.wiped').length === 3,
      'the platform SOC (all three tenants)',
    );
    // Meanwhile the blackholed stream's request is still pending: its event is queued, no error yet.
    const status = (await request(app.app).get(`${BASE}/audit/streams/status`).set('Authorization', bad.authorization))
      .body.streams[0];
    expect(status).toMatchObject({ name: 'iso', lastDeliveredAt: null, lastError: null });
    expect(status.queued).toBeGreaterThan(0);
  }, 30_000);
});

describe('stream lease', () => {
  it('when batches are slow, then a task stops taking batches before its lease (never renewed) runs out and releases the stream', async () => {
    const a = await loginAs(t, { role: 'admin' });
    await put(a, 'slow', webhookStream({ minSeverity: 'critical' })).expect(200);
    const { rows } = await db.owner.query<{ id: string }>(
      `SELECT id::text AS id FROM audit_streams WHERE tenant_id = $1 AND name = 'slow'`,
      [a.tenantId],
    );
    const streamId = (rows[0] as { id: string }).id;
    await db.owner.query(
      `INSERT INTO audit_stream_outbox (stream_id, tenant_id, payload, enqueued_at)
       SELECT $1, $2, json_build_object('id', gen_random_uuid()), now() FROM generate_series(1, 250)`,
      [streamId, a.tenantId],
    );
    const clock = new ManualClock();
    const sent: number[] = [];
    const monitoring = t.composition.services.monitoring;
    const worker = createStreamWorker({
      pool: t.composition.pool,
      config: t.config,
      logger: t.composition.logger,
      clock,
      audit: t.composition.services.audit,
      streams: monitoring.streams!,
      connectorTimeoutMs: 10_000,
      leaseMs: 40_000,
      random: () => 0,
      concurrency: 50,
      connectorFactory: (row) => ({
        provider: 'webhook',
        async send(events) {
          if (row.id !== streamId)
            return { outcomes: new Map(events.map((e) => [e.id, { kind: 'delivered' as const }])) };
          sent.push(events.length);
          clock.advance(15_000); // each batch takes 15 s: two fit in the 40 s lease, not three
          return { outcomes: new Map(events.map((e) => [e.id, { kind: 'delivered' as const }])) };
        },
        async healthCheck() {},
        async close() {},
      }),
    });
    try {
      await worker.tick();
      await worker.drain();
      expect(sent).toEqual([100, 100]);
      const st = await db.owner.query<{ claimed_by: string | null }>(
        `SELECT claimed_by FROM audit_stream_state WHERE stream_id = $1`,
        [streamId],
      );
      expect(st.rows[0]?.claimed_by).toBeNull();
      // The next claim delivers the rest.
      await worker.tick();
      await worker.drain();
      expect(sent).toEqual([100, 100, 50]);
    } finally {
      await worker.stop();
    }
  });
});

describe('queue bound', () => {
  it('when a stream stays down with more events than its bound, then the oldest move to its dead letter (queue_full) with an audit row', async () => {
    const a = await loginAs(t, { role: 'admin' });
    await put(a, 'bounded', webhookStream({ minSeverity: 'critical' })).expect(200);
    const monitoring = t.composition.services.monitoring;
    const worker = createStreamWorker({
      pool: t.composition.pool,
      config: t.config,
      logger: t.composition.logger,
      clock: t.clock,
      audit: t.composition.services.audit,
      streams: monitoring.streams!,
      maxQueue: 3,
      random: () => 0,
      concurrency: 50,
    });
    try {
      for (let i = 0; i < 5; i++)
        await request(t.app)
          .post(`${BASE}/audit/streams/bounded/test`)
          .set('Authorization', a.authorization)
          .expect(202);
      wh.failNext(1, { status: 503 });
      await worker.tick();
      await worker.drain();
    } finally {
      await worker.stop();
    }
    const status = (await request(t.app).get(`${BASE}/audit/streams/status`).set('Authorization', a.authorization)).body
      .streams[0];
    expect(status).toMatchObject({ queued: 3, deadLetter: 2, healthy: false });
    const { rows } = await db.owner.query<{ reason: string }>(
      `SELECT d.reason FROM audit_stream_dead_letter d JOIN audit_streams s ON s.id = d.stream_id WHERE s.tenant_id = $1`,
      [a.tenantId],
    );
    expect(rows.every((r) => r.reason.startsWith('queue_full'))).toBe(true);
    const audit = await db.owner.query(
      `SELECT 1 FROM audit_logs WHERE tenant_id = $1 AND action = 'audit.stream.dead_letter' AND error_message LIKE 'queue_full%'`,
      [a.tenantId],
    );
    expect(audit.rows).toHaveLength(1);
  });
});
