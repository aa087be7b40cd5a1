/**
 * The durable SIEM outbox end to end: POST /audit/siem and GET /siem/status, automatic
 * forwarding of high/critical audit events in the audit row's transaction, and the worker
 * against a local Splunk HEC receiver (failures, backoff, dead letter, restarts, several
 * workers, the queue bound, clean stop).
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { withSiemWorker, withTenant } from '../../src/db/transaction';
import { ManualClock } from '../../src/lib/clock';
import { auditEventId } from '../../src/services/siem/event-id';
import { claimBatch } from '../../src/services/siem/repository';
import type { SiemEventInput } from '../../src/services/siem/types';
import type { TestApp } from '../helpers/app';
import { loginAs, type TestLogin } from '../helpers/auth';
import { buildTestApp } from '../helpers/app';
import { uniqueTenant } from '../helpers/env';
import { createIsolatedDatabase, type IsolatedDatabase } from './helpers/db';
import { buildSiemTestApp, buildStack, eventually, type Stack } from './helpers/harness';
import { startHecReceiver, type HecReceiver } from './helpers/receivers';

const TOKEN = `hec-${randomBytes(12).toString('hex')}`;
const BASE = '/api/v1/security';

let db: IsolatedDatabase;
let hec: HecReceiver;
let env: Record<string, string>;
let clock: ManualClock;
let t: TestApp;
const stacks: Stack[] = [];

beforeAll(async () => {
  db = await createIsolatedDatabase('outbox');
  hec = await startHecReceiver(TOKEN);
  env = { SIEM_PROVIDER: 'splunk', SIEM_ENDPOINT_URL: hec.url, SIEM_API_KEY: TOKEN, SIEM_BATCH_SIZE: '10' };
  clock = new ManualClock(Date.now());
  t = await buildSiemTestApp(db, env, { clock });
  // start() does this; these tests drive the worker by hand (flushOnce) instead.
  await t.composition.services.monitoring.siem.syncSettings();
});

afterAll(async () => {
  for (const s of stacks) await s.close().catch(() => undefined);
  await t?.close();
  await hec?.close();
  await db?.drop();
});

beforeEach(async () => {
  await db.owner.query('TRUNCATE siem_outbox, siem_dead_letter, siem_worker_state');
  hec.reset();
});

function siem() {
  return t.composition.services.monitoring.siem;
}

async function stack(
  over: Record<string, string> = {},
  deps: Parameters<typeof buildStack>[2] = {},
  c = new ManualClock(Date.now()),
): Promise<Stack> {
  const s = await buildStack(db, { ...env, ...over }, deps, c);
  stacks.push(s);
  return s;
}

async function outbox(): Promise<
  Array<{
    seq: string;
    event_id: string;
    tenant_id: string;
    audit_log_id: string | null;
    event_type: string;
    attempts: number;
    next_attempt_at: Date;
    last_error: string | null;
    severity: string;
    payload: Record<string, unknown> | null;
    claimed_by: string | null;
  }>
> {
  // Rows the audit trigger queued store no id; it is derived from the audit row id.
  return (
    await db.owner.query(
      'SELECT *, coalesce(event_id, siem_audit_event_id(audit_log_id)) AS event_id FROM siem_outbox ORDER BY seq',
    )
  ).rows;
}

async function deadLetters(): Promise<
  Array<{
    event_id: string;
    tenant_id: string;
    audit_log_id: string | null;
    reason: string;
    attempts: number;
    payload: Record<string, unknown>;
  }>
> {
  return (await db.owner.query('SELECT * FROM siem_dead_letter ORDER BY dead_at, event_id')).rows;
}

async function drain(s: { flushOnce(): Promise<{ claimed: number }> }): Promise<void> {
  for (let i = 0; i < 50; i++) if ((await s.flushOnce()).claimed === 0) return;
  throw new Error('outbox did not drain');
}

function receivedIds(): string[] {
  return hec.envelopes.map((e) => e.event.id as string);
}

function inputs(tenantId: string, n: number, over: Partial<SiemEventInput> = {}): SiemEventInput[] {
  return Array.from({ length: n }, (_, i) => ({
    tenantId,
    eventType: 'fleet.test.event',
    severity: 'medium' as const,
    message: `event ${i}`,
    ...over,
  }));
}

describe('POST /audit/siem', () => {
  let admin: TestLogin;
  beforeEach(async () => {
    admin = await loginAs(t, { role: 'admin' });
  });

  it('when an admin submits events, then 202 returns their ids, the outbox holds them for the tenant and an audit.siem.submitted row is written', async () => {
    const res = await request(t.app)
      .post(`${BASE}/audit/siem`)
      .set('Authorization', admin.authorization)
      .send({
        events: [
          {
            eventType: 'vehicle.geofence.breach',
            severity: 'high',
            message: 'left the depot',
            details: { vehicle: 'V-1' },
          },
          { eventType: 'vehicle.door.open', severity: 'low', message: 'door' },
        ],
      });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({
      success: true,
      queued: 2,
      eventIds: [expect.stringMatching(/^[0-9a-f-]{36}$/), expect.stringMatching(/^[0-9a-f-]{36}$/)],
    });
    const rows = await outbox();
    expect(rows.map((r) => r.event_id)).toEqual(res.body.eventIds);
    expect(rows[0]).toMatchObject({ tenant_id: admin.tenantId, severity: 'high', attempts: 0 });
    expect(rows[0]?.payload).toMatchObject({
      id: res.body.eventIds[0],
      tenantId: admin.tenantId,
      eventType: 'vehicle.geofence.breach',
      origin: 'api',
      userId: admin.userId,
      details: { vehicle: 'V-1' },
      message: 'left the depot',
    });
    const audit = await db.owner.query(
      "SELECT * FROM audit_logs WHERE tenant_id = $1 AND action = 'audit.siem.submitted'",
      [admin.tenantId],
    );
    expect(audit.rows).toHaveLength(1);
    expect(audit.rows[0]).toMatchObject({ user_id: admin.userId, severity: 'low', result: 'success' });
    expect(audit.rows[0].after).toMatchObject({ count: 2, eventIds: res.body.eventIds });
  });

  it('when the queued events are flushed, then the HEC receiver gets each once with its id and the outbox is empty', async () => {
    const res = await request(t.app)
      .post(`${BASE}/audit/siem`)
      .set('Authorization', admin.authorization)
      .send({ events: [{ eventType: 'vehicle.a.b', severity: 'medium', message: 'm1' }] });
    expect(res.status).toBe(202);
    const r = await siem().flushOnce();
    expect(r).toEqual({ claimed: 1, delivered: 1, retried: 0, dead: 0 });
    expect(receivedIds()).toEqual(res.body.eventIds);
    expect(hec.requests[0]?.headers.authorization).toBe(`Splunk ${TOKEN}`);
    expect(await outbox()).toEqual([]);
  });

  it('when strings look like SQL or HTML injection, then they are stored and forwarded verbatim', async () => {
    const nasty = `'; DROP TABLE siem_outbox; -- <script>alert(1)</script> $1 \\x00 ${'"'}`;
    const res = await request(t.app)
      .post(`${BASE}/audit/siem`)
      .set('Authorization', admin.authorization)
      .send({ events: [{ eventType: 'app.inject.test', severity: 'low', message: nasty, resourceId: nasty }] });
    expect(res.status).toBe(202);
    expect((await outbox())[0]?.payload).toMatchObject({ message: nasty, resourceId: nasty });
    await siem().flushOnce();
    expect(hec.envelopes[0]?.event).toMatchObject({ message: nasty, resourceId: nasty });
  });

  it('when odd Unicode is submitted, then it round-trips to the receiver', async () => {
    const msg = 'Ünïcödé 漢字 🚀 \u200b zero-width \u202e rtl';
    const res = await request(t.app)
      .post(`${BASE}/audit/siem`)
      .set('Authorization', admin.authorization)
      .send({ events: [{ eventType: 'app.unicode.test', severity: 'low', message: msg }] });
    expect(res.status).toBe(202);
    await siem().flushOnce();
    expect(hec.envelopes[0]?.event.message).toBe(msg);
  });

  it.each([
    ['unknown top-level key', { events: [{ eventType: 'a.b', severity: 'low', message: 'm' }], extra: 1 }],
    [
      'identity field in an event',
      { events: [{ eventType: 'a.b', severity: 'low', message: 'm', tenantId: 'other' }] },
    ],
    ['user id in an event', { events: [{ eventType: 'a.b', severity: 'low', message: 'm', userId: 'x' }] }],
    ['wrong severity', { events: [{ eventType: 'a.b', severity: 'urgent', message: 'm' }] }],
    ['wrong type for message', { events: [{ eventType: 'a.b', severity: 'low', message: 42 }] }],
    ['reserved prefix', { events: [{ eventType: 'security.alert.fake', severity: 'critical', message: 'm' }] }],
    ['reserved prefix auth.', { events: [{ eventType: 'auth.login.success', severity: 'low', message: 'm' }] }],
    ['event type without a dot', { events: [{ eventType: 'nodot', severity: 'low', message: 'm' }] }],
    ['upper-case event type', { events: [{ eventType: 'App.Event', severity: 'low', message: 'm' }] }],
    ['empty event list', { events: [] }],
    ['events not an array', { events: 'x' }],
    [
      'too many events',
      { events: Array.from({ length: 101 }, () => ({ eventType: 'a.b', severity: 'low', message: 'm' })) },
    ],
    ['message too long', { events: [{ eventType: 'a.b', severity: 'low', message: 'x'.repeat(2001) }] }],
    ['empty message', { events: [{ eventType: 'a.b', severity: 'low', message: '' }] }],
    [
      'details too large',
      { events: [{ eventType: 'a.b', severity: 'low', message: 'm', details: { blob: 'x'.repeat(17_000) } }] },
    ],
    ['details not an object', { events: [{ eventType: 'a.b', severity: 'low', message: 'm', details: [1, 2] }] }],
    [
      'occurredAt not a date',
      { events: [{ eventType: 'a.b', severity: 'low', message: 'm', occurredAt: 'yesterday' }] },
    ],
    ['NUL byte in message', { events: [{ eventType: 'a.b', severity: 'low', message: 'a\u0000b' }] }],
  ])('when the body has %s, then 400 VALIDATION_FAILED and nothing is queued', async (_name, body) => {
    const res = await request(t.app).post(`${BASE}/audit/siem`).set('Authorization', admin.authorization).send(body);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({
      success: false,
      error: { code: 'VALIDATION_FAILED' },
      requestId: expect.any(String),
    });
    expect(await outbox()).toEqual([]);
  });

  it('when the body is malformed JSON, then 400 MALFORMED_JSON', async () => {
    const res = await request(t.app)
      .post(`${BASE}/audit/siem`)
      .set('Authorization', admin.authorization)
      .set('Content-Type', 'application/json')
      .send('{"events": [');
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('MALFORMED_JSON');
    expect(await outbox()).toEqual([]);
  });

  it('when the body is not JSON, then 415', async () => {
    const res = await request(t.app)
      .post(`${BASE}/audit/siem`)
      .set('Authorization', admin.authorization)
      .set('Content-Type', 'text/plain')
      .send('events');
    expect(res.status).toBe(415);
    expect(res.body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it.each(['user', 'viewer'] as const)(
    'when a %s submits events, then 403 and an access.denied row, nothing queued',
    async (role) => {
      const who = await loginAs(t, { role });
      const res = await request(t.app)
        .post(`${BASE}/audit/siem`)
        .set('Authorization', who.authorization)
        .send({ events: [{ eventType: 'a.b', severity: 'low', message: 'm' }] });
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('FORBIDDEN');
      const denied = await db.owner.query(
        "SELECT * FROM audit_logs WHERE tenant_id = $1 AND action = 'access.denied'",
        [who.tenantId],
      );
      expect(denied.rows).toHaveLength(1);
      expect(await outbox()).toEqual([]);
    },
  );

  it('when no token is sent, then 401 with WWW-Authenticate', async () => {
    const res = await request(t.app)
      .post(`${BASE}/audit/siem`)
      .send({ events: [{ eventType: 'a.b', severity: 'low', message: 'm' }] });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(await outbox()).toEqual([]);
  });
});

describe('GET /siem/status', () => {
  it('when events are queued for two tenants, then an admin sees the counts of their own tenant and the forwarder state', async () => {
    const a = await loginAs(t, { role: 'admin' });
    const other = uniqueTenant();
    await siem().sendBatch([...inputs(a.tenantId, 2), ...inputs(other, 3)]);
    const res = await request(t.app).get(`${BASE}/siem/status`).set('Authorization', a.authorization);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      success: true,
      queuedEvents: 2,
      deadLetter: 0,
      lastFlushAt: null,
      lastError: null,
      healthy: true,
    });
  });

  it('when a flush succeeded, then lastFlushAt is its time', async () => {
    const a = await loginAs(t, { role: 'admin' });
    await siem().sendBatch(inputs(a.tenantId, 1));
    await siem().flushOnce();
    const res = await request(t.app).get(`${BASE}/siem/status`).set('Authorization', a.authorization);
    expect(res.body).toMatchObject({
      queuedEvents: 0,
      lastFlushAt: new Date(clock.now()).toISOString(),
      lastError: null,
      healthy: true,
    });
  });

  it('when a viewer asks, then 403', async () => {
    const v = await loginAs(t, { role: 'viewer' });
    const res = await request(t.app).get(`${BASE}/siem/status`).set('Authorization', v.authorization);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('FORBIDDEN');
  });

  it('when no SIEM is configured, then status is unhealthy with the reason and submissions answer 503', async () => {
    const plain = await buildTestApp();
    try {
      const a = await loginAs(plain, { role: 'admin' });
      const status = await request(plain.app).get(`${BASE}/siem/status`).set('Authorization', a.authorization);
      expect(status.status).toBe(200);
      expect(status.body).toMatchObject({
        success: true,
        healthy: false,
        lastError: 'SIEM_PROVIDER is not configured',
      });
      const post = await request(plain.app)
        .post(`${BASE}/audit/siem`)
        .set('Authorization', a.authorization)
        .send({ events: [{ eventType: 'a.b', severity: 'low', message: 'm' }] });
      expect(post.status).toBe(503);
      expect(post.body.error.code).toBe('SERVICE_UNAVAILABLE');
    } finally {
      await plain.close();
    }
  });

  it('when metrics are scraped, then the SIEM counters are exposed', async () => {
    await siem().sendBatch(inputs(uniqueTenant(), 1));
    const res = await request(t.app).get('/metrics');
    expect(res.status).toBe(200);
    expect(res.text).toContain('fleet_siem_events_enqueued_total');
    expect(res.text).toContain('fleet_siem_events_delivered_total');
    expect(res.text).toContain('fleet_http_request_duration_seconds');
  });
});

describe('the enqueued counter', () => {
  /** fleet_siem_events_enqueued_total summed over its labels, as /metrics shows it. */
  async function enqueuedTotal(): Promise<number> {
    const res = await request(t.app).get('/metrics');
    return res.text
      .split('\n')
      .filter((l) => l.startsWith('fleet_siem_events_enqueued_total'))
      .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
  }

  it('when the transaction that enqueued events rolls back, then they are not counted; once one commits, they are', async () => {
    const tenantId = uniqueTenant();
    const before = await enqueuedTotal();
    await expect(
      withTenant(t.composition.pool, tenantId, async (c) => {
        await siem().sendBatch(inputs(tenantId, 3), c);
        throw new Error('the change is undone');
      }),
    ).rejects.toThrow('the change is undone');
    expect(await outbox()).toHaveLength(0);
    expect(await enqueuedTotal()).toBe(before);

    await withTenant(t.composition.pool, tenantId, (c) => siem().sendBatch(inputs(tenantId, 2), c));
    expect(await outbox()).toHaveLength(2);
    expect(await enqueuedTotal()).toBe(before + 2);
    await siem().sendBatch(inputs(tenantId, 1));
    expect(await enqueuedTotal()).toBe(before + 3);
  });
});

describe('automatic forwarding from the audit trail', () => {
  it('when a high-severity audit row commits, then an outbox event with the id derived from the row refers to it, and the sent event carries the row', async () => {
    const tenantId = uniqueTenant();
    const rec = await t.composition.services.audit.record({
      tenantId,
      action: 'user.deactivated',
      resourceType: 'user',
      resourceId: 'u-1',
      severity: 'high',
      result: 'success',
      ipAddress: '203.0.113.5',
      after: { isActive: false },
    });
    const rows = await outbox();
    expect(rows).toHaveLength(1);
    // Only a reference is queued: audit contents are not copied into the cross-tenant outbox.
    expect(rows[0]).toMatchObject({
      event_id: auditEventId(rec.id),
      tenant_id: tenantId,
      severity: 'high',
      audit_log_id: rec.id,
      payload: null,
    });
    await siem().flushOnce();
    expect(hec.envelopes[0]?.event).toEqual({
      id: auditEventId(rec.id),
      time: rec.createdAt.toISOString(),
      tenantId,
      eventType: 'user.deactivated',
      severity: 'high',
      message: 'user.deactivated (success)',
      origin: 'audit',
      outcome: 'success',
      userId: null,
      ipAddress: '203.0.113.5',
      userAgent: null,
      requestId: null,
      resourceType: 'user',
      resourceId: 'u-1',
      auditLogId: rec.id,
      details: { after: { isActive: false } },
    });
  });

  it('when the audit row an event refers to is gone (retention purge), then the event is dead-lettered with that reason', async () => {
    const tenantId = uniqueTenant();
    const rec = await t.composition.services.audit.record({
      tenantId,
      action: 'user.deactivated',
      resourceType: 'user',
      severity: 'high',
    });
    // Point the queued reference at an id no row has (the append-only trail cannot be edited here).
    await db.owner.query('UPDATE siem_outbox SET audit_log_id = audit_log_id + 1000000000 WHERE audit_log_id = $1', [
      rec.id,
    ]);
    expect(await siem().flushOnce()).toEqual({ claimed: 1, delivered: 0, retried: 0, dead: 1 });
    const gone = String(BigInt(rec.id) + 1_000_000_000n);
    expect((await deadLetters())[0]).toMatchObject({
      event_id: auditEventId(gone),
      audit_log_id: gone,
      reason: `audit row ${gone} not found`,
    });
  });

  it('when the transaction of a critical audit row rolls back, then neither the row nor the outbox event exists', async () => {
    const tenantId = uniqueTenant();
    await expect(
      withTenant(t.composition.pool, tenantId, async (c) => {
        await t.composition.services.audit.record(
          { tenantId, action: 'session.revoked.bulk', resourceType: 'session', severity: 'critical' },
          c,
        );
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    expect(
      (await db.owner.query('SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1', [tenantId])).rows[0].n,
    ).toBe(0);
    expect(await outbox()).toEqual([]);
  });

  it('when the database derives an audit event id, then it is the same v5 UUID the service computes', async () => {
    const ids = ['1', '42', '9007199254740993'];
    const { rows } = await db.owner.query<{ id: string }>(
      'SELECT siem_audit_event_id(x)::text AS id FROM unnest($1::bigint[]) AS x',
      [ids],
    );
    expect(rows.map((r) => r.id)).toEqual(ids.map(auditEventId));
  });

  it('when a script inserts a critical audit row with plain SQL, then it is queued too', async () => {
    const tenantId = uniqueTenant();
    const { rows } = await db.owner.query<{ id: string }>(
      "INSERT INTO audit_logs (tenant_id, action, resource_type, result, severity) VALUES ($1, 'system.restore', 'database', 'success', 'critical') RETURNING id::text",
      [tenantId],
    );
    const id = (rows[0] as { id: string }).id;
    expect((await outbox()).map((r) => [r.event_id, r.audit_log_id, r.event_type])).toEqual([
      [auditEventId(id), id, 'system.restore'],
    ]);
  });

  it('when forwarding is switched off (an instance without SIEM_PROVIDER starts), then high rows are not queued', async () => {
    const off = await stack({ SIEM_PROVIDER: '', SIEM_ENDPOINT_URL: '', SIEM_API_KEY: '' });
    try {
      await off.monitoring.siem.syncSettings();
      await off.audit.record({
        tenantId: uniqueTenant(),
        action: 'user.deactivated',
        resourceType: 'user',
        severity: 'high',
      });
      expect(await outbox()).toEqual([]);
      expect((await db.owner.query('SELECT forwarding FROM siem_settings')).rows).toEqual([{ forwarding: false }]);
    } finally {
      await siem().syncSettings();
    }
    expect((await db.owner.query('SELECT forwarding FROM siem_settings')).rows).toEqual([{ forwarding: true }]);
  });

  it('when the audit forwarder writes its own rows (audit.siem.*), then they are not queued', async () => {
    await t.composition.services.audit.record({
      tenantId: uniqueTenant(),
      action: 'audit.siem.dead_letter',
      resourceType: 'siem_event',
      severity: 'high',
      result: 'failure',
    });
    expect(await outbox()).toEqual([]);
  });

  it('when low and medium audit rows are written, then nothing is forwarded', async () => {
    const tenantId = uniqueTenant();
    await t.composition.services.audit.record({
      tenantId,
      action: 'auth.logout',
      resourceType: 'session',
      severity: 'low',
    });
    await t.composition.services.audit.record({
      tenantId,
      action: 'session.revoked',
      resourceType: 'session',
      severity: 'medium',
    });
    expect(await outbox()).toEqual([]);
  });
});

describe('the worker', () => {
  it('when the receiver is down, then events stay queued with a backoff, and after recovery each is delivered exactly once', async () => {
    const a = await loginAs(t, { role: 'admin' });
    const ids = await siem().sendBatch(inputs(a.tenantId, 3));
    await hec.down();
    try {
      expect(await siem().flushOnce()).toEqual({ claimed: 3, delivered: 0, retried: 3, dead: 0 });
      const rows = await outbox();
      for (const r of rows) {
        expect(r.attempts).toBe(1);
        expect(r.claimed_by).toBeNull();
        expect(r.last_error).toMatch(/^splunk: network error \((ECONNREFUSED|ECONNRESET)\)$/);
        expect(r.next_attempt_at.getTime()).toBeGreaterThanOrEqual(clock.now());
        expect(r.next_attempt_at.getTime()).toBeLessThanOrEqual(clock.now() + 2000);
      }
      const status = await request(t.app).get(`${BASE}/siem/status`).set('Authorization', a.authorization);
      expect(status.body).toMatchObject({
        queuedEvents: 3,
        healthy: false,
        lastError: expect.stringMatching(/^splunk: network error/),
      });
    } finally {
      await hec.up();
    }
    clock.advance(2001);
    await drain(siem());
    expect(receivedIds().sort()).toEqual([...ids].sort());
    expect(await outbox()).toEqual([]);
    const status = await request(t.app).get(`${BASE}/siem/status`).set('Authorization', a.authorization);
    expect(status.body).toMatchObject({ queuedEvents: 0, healthy: true, lastError: null });
  });

  it('when retries fail again, then the delay ceiling doubles, Retry-After is honoured and the cap is 5 minutes', async () => {
    const c = new ManualClock(Date.now());
    const s = await stack({}, { random: () => 0.5 }, c);
    const tenantId = uniqueTenant();
    const [id] = await s.monitoring.siem.sendBatch(inputs(tenantId, 1));
    const busy = {
      status: 503,
      headers: { 'Content-Type': 'application/json' },
      body: '{"text":"Server is busy","code":9}',
    };
    hec.failNext(1, busy);
    expect((await s.monitoring.siem.flushOnce()).retried).toBe(1);
    expect((await outbox())[0]).toMatchObject({
      attempts: 1,
      next_attempt_at: new Date(c.now() + 1000),
      last_error: 'splunk: HTTP 503 HEC code 9',
    });
    c.advance(999);
    expect((await s.monitoring.siem.flushOnce()).claimed).toBe(0);
    c.advance(1);
    hec.failNext(1, busy);
    expect((await s.monitoring.siem.flushOnce()).retried).toBe(1);
    expect((await outbox())[0]).toMatchObject({ attempts: 2, next_attempt_at: new Date(c.now() + 2000) });
    c.advance(2000);
    hec.failNext(1, { status: 429, headers: { 'Retry-After': '120' }, body: '' });
    await s.monitoring.siem.flushOnce();
    expect((await outbox())[0]).toMatchObject({ attempts: 3, next_attempt_at: new Date(c.now() + 120_000) });
    await db.owner.query('UPDATE siem_outbox SET attempts = 20');
    c.advance(120_000);
    hec.failNext(1, busy);
    await s.monitoring.siem.flushOnce();
    expect((await outbox())[0]).toMatchObject({ attempts: 21, next_attempt_at: new Date(c.now() + 150_000) });
    c.advance(150_000);
    await s.monitoring.siem.flushOnce();
    expect(receivedIds()).toEqual([id]);
  });

  it('when the SIEM refuses permanently (4xx), then the events go to the dead letter with the reason and an audit.siem.dead_letter row', async () => {
    const s = await stack({ SIEM_API_KEY: 'wrong-token' });
    const tenantId = uniqueTenant();
    const ids = await s.monitoring.siem.sendBatch(inputs(tenantId, 2));
    expect(await s.monitoring.siem.flushOnce()).toEqual({ claimed: 2, delivered: 0, retried: 0, dead: 2 });
    expect(await outbox()).toEqual([]);
    const dead = await deadLetters();
    expect(dead.map((d) => d.event_id).sort()).toEqual([...ids].sort());
    expect(dead[0]).toMatchObject({
      tenant_id: tenantId,
      attempts: 1,
      reason: 'splunk: HTTP 403 HEC code 4 Invalid token',
    });
    const audit = await db.owner.query(
      "SELECT * FROM audit_logs WHERE tenant_id = $1 AND action = 'audit.siem.dead_letter'",
      [tenantId],
    );
    expect(audit.rows).toHaveLength(1);
    expect(audit.rows[0]).toMatchObject({
      severity: 'high',
      result: 'failure',
      error_message: 'splunk: HTTP 403 HEC code 4 Invalid token',
    });
    expect([...audit.rows[0].after.eventIds].sort()).toEqual([...ids].sort());
    const st = await s.monitoring.siem.getQueueStatus(tenantId);
    expect(st).toMatchObject({ queuedEvents: 0, deadLetter: 2, healthy: false });
    expect(hec.envelopes).toHaveLength(0);
  });

  it('when an operator replays dead letters with the documented SQL after fixing the token, then they are delivered with their ids', async () => {
    const bad = await stack({ SIEM_API_KEY: 'revoked-token' });
    const tenantId = uniqueTenant();
    const submitted = await bad.monitoring.siem.sendBatch(inputs(tenantId, 1));
    const rec = await bad.audit.record({
      tenantId,
      action: 'user.deactivated',
      resourceType: 'user',
      severity: 'high',
    });
    expect((await bad.monitoring.siem.flushOnce()).dead).toBe(2);
    await db.owner.query(`WITH moved AS (DELETE FROM siem_dead_letter WHERE reason LIKE 'splunk: HTTP 403%' RETURNING *)
      INSERT INTO siem_outbox (event_id, tenant_id, audit_log_id, event_type, severity, payload, enqueued_at, next_attempt_at)
      SELECT event_id, tenant_id, audit_log_id, event_type, severity, payload, enqueued_at, now() FROM moved`);
    await drain(siem());
    expect(receivedIds().sort()).toEqual([...submitted, auditEventId(rec.id)].sort());
    expect(await deadLetters()).toEqual([]);
  });

  it('when HEC rejects one event of a batch (invalid-event-number), then earlier ones count as delivered, it is dead-lettered and later ones are re-sent', async () => {
    const tenantId = uniqueTenant();
    hec.rejectWhen((e) => e.message === 'bad one');
    const ids = await siem().sendBatch([
      ...inputs(tenantId, 1, { message: 'first' }),
      ...inputs(tenantId, 1, { message: 'bad one' }),
      ...inputs(tenantId, 1, { message: 'third' }),
    ]);
    expect(await siem().flushOnce()).toEqual({ claimed: 3, delivered: 1, retried: 1, dead: 1 });
    expect((await outbox())[0]).toMatchObject({ event_id: ids[2], attempts: 0 });
    expect((await deadLetters())[0]).toMatchObject({
      event_id: ids[1],
      reason: 'splunk: HEC code 6 Invalid data format',
    });
    expect(await siem().flushOnce()).toEqual({ claimed: 1, delivered: 1, retried: 0, dead: 0 });
    expect(receivedIds()).toEqual([ids[0], ids[2]]);
  });

  it('when HEC reports busy (503 code 9), then the batch is retried, not dead-lettered', async () => {
    const tenantId = uniqueTenant();
    hec.busy(true);
    await siem().sendBatch(inputs(tenantId, 2));
    expect(await siem().flushOnce()).toEqual({ claimed: 2, delivered: 0, retried: 2, dead: 0 });
    expect(await deadLetters()).toEqual([]);
    expect((await outbox()).every((r) => r.last_error === 'splunk: HTTP 503 HEC code 9')).toBe(true);
  });

  it('when a process dies after claiming a batch, then another instance delivers it once the lease ends and nothing is lost', async () => {
    const c = new ManualClock(Date.now());
    const a = await stack({}, {}, c);
    const ids = await a.monitoring.siem.sendBatch(inputs(uniqueTenant(), 5));
    // Instance A claims the batch and crashes before delivering (no release, no answer).
    const claimed = await withSiemWorker(a.pool, (w) =>
      claimBatch(w, a.monitoring.siem.instanceId, new Date(c.now()), new Date(c.now() + 5 * 60_000), 10),
    );
    expect(claimed).toHaveLength(5);
    await a.pool.end();
    stacks.splice(stacks.indexOf(a), 1);
    const b = await stack({}, {}, new ManualClock(c.now()));
    expect((await b.monitoring.siem.flushOnce()).claimed).toBe(0);
    b.clock.advance(5 * 60_000 + 1);
    await drain(b.monitoring.siem);
    expect(receivedIds().sort()).toEqual([...ids].sort());
    expect(await outbox()).toEqual([]);
  });

  it('when the application restarts with events queued, then the new process delivers them', async () => {
    const a = await stack();
    const ids = await a.monitoring.siem.sendBatch(inputs(uniqueTenant(), 4));
    await a.close();
    stacks.splice(stacks.indexOf(a), 1);
    const b = await stack();
    await drain(b.monitoring.siem);
    expect(receivedIds().sort()).toEqual([...ids].sort());
  });

  it('when two workers flush concurrently, then no event is sent twice', async () => {
    const a = await stack();
    const b = await stack();
    const ids = await a.monitoring.siem.sendBatch(inputs(uniqueTenant(), 60));
    hec.delay(20);
    await Promise.all([
      drain(a.monitoring.siem),
      drain(b.monitoring.siem),
      drain(a.monitoring.siem),
      drain(b.monitoring.siem),
    ]);
    const got = receivedIds();
    expect(got).toHaveLength(60);
    expect(new Set(got).size).toBe(60);
    expect(new Set(got)).toEqual(new Set(ids));
    expect(hec.requests.filter((r) => r.method === 'POST').length).toBeGreaterThanOrEqual(6);
  });

  it('when the worker is started, then it delivers on its own; when stopped, then it sends nothing more', async () => {
    const w = await buildSiemTestApp(db, { ...env, SIEM_FLUSH_INTERVAL_MS: '50' }, { start: true });
    try {
      const ids = await siem().sendBatch(inputs(uniqueTenant(), 3));
      await eventually(() => receivedIds().length === 3, 'automatic delivery');
      expect(receivedIds().sort()).toEqual([...ids].sort());
      await w.composition.stop();
      await siem().sendBatch(inputs(uniqueTenant(), 2));
      await new Promise((r) => setTimeout(r, 400));
      expect(receivedIds()).toHaveLength(3);
      expect(await outbox()).toHaveLength(2);
      expect(
        (await db.owner.query('SELECT count(*)::int AS n FROM siem_outbox WHERE claimed_by IS NOT NULL')).rows[0].n,
      ).toBe(0);
    } finally {
      await w.close();
    }
  });

  it('when the health check runs, then it reports the receiver reachable, and unreachable while it is down', async () => {
    expect(await siem().healthCheck()).toMatchObject({
      provider: 'splunk',
      reachable: true,
      healthy: true,
      error: null,
    });
    await hec.down();
    try {
      expect(await siem().healthCheck()).toMatchObject({
        reachable: false,
        healthy: false,
        error: expect.stringMatching(/^splunk: network error \((ECONNREFUSED|ECONNRESET)\)$/),
      });
    } finally {
      await hec.up();
    }
  });
});

describe('the queue bound (SIEM_MAX_QUEUE)', () => {
  it('when an API submission would exceed the bound, then 503 with Retry-After and nothing of it is queued', async () => {
    const full = await buildSiemTestApp(db, { ...env, SIEM_MAX_QUEUE: '100', SIEM_FLUSH_INTERVAL_MS: '30000' });
    try {
      const a = await loginAs(full, { role: 'admin' });
      await full.composition.services.monitoring.siem.sendBatch(inputs(a.tenantId, 99));
      const ok = await request(full.app)
        .post(`${BASE}/audit/siem`)
        .set('Authorization', a.authorization)
        .send({ events: [{ eventType: 'a.b', severity: 'low', message: 'fits' }] });
      expect(ok.status).toBe(202);
      const res = await request(full.app)
        .post(`${BASE}/audit/siem`)
        .set('Authorization', a.authorization)
        .send({ events: [{ eventType: 'a.b', severity: 'low', message: 'too many' }] });
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('30');
      expect(res.body.error).toMatchObject({
        code: 'SERVICE_UNAVAILABLE',
        message: 'The SIEM queue is full; try again later.',
      });
      expect(await outbox()).toHaveLength(100);
      const status = await request(full.app).get(`${BASE}/siem/status`).set('Authorization', a.authorization);
      expect(status.body).toMatchObject({ healthy: false, lastError: 'queue full' });
    } finally {
      await full.close();
    }
  });

  it('when audit rows push the queue over the bound, then the worker trims the oldest non-critical events to the dead letter', async () => {
    const s = await stack({ SIEM_MAX_QUEUE: '100' });
    const tenantId = uniqueTenant();
    const ids = await s.monitoring.siem.sendBatch(inputs(tenantId, 100, { severity: 'low' }));
    // The audit write never waits for the bound: the row is queued (101 now).
    const rec = await s.audit.record({ tenantId, action: 'user.deactivated', resourceType: 'user', severity: 'high' });
    expect(await outbox()).toHaveLength(101);
    expect(await s.monitoring.siem.trimQueue()).toEqual([ids[0]]);
    const rows = await outbox();
    expect(rows).toHaveLength(100);
    expect(rows.some((r) => r.event_id === auditEventId(rec.id))).toBe(true);
    expect(await deadLetters()).toMatchObject([
      { event_id: ids[0], reason: 'queue_full: evicted to make room for newer events' },
    ]);
    expect((await db.owner.query('SELECT count(*)::int AS n FROM audit_logs WHERE id = $1', [rec.id])).rows[0].n).toBe(
      1,
    );
  });

  it('when the queue is over the bound with critical events and alerts, then those are never evicted', async () => {
    const s = await stack({ SIEM_MAX_QUEUE: '100' });
    const tenantId = uniqueTenant();
    await s.monitoring.siem.sendBatch(inputs(tenantId, 100, { severity: 'critical' }));
    const high = await s.audit.record({ tenantId, action: 'user.deactivated', resourceType: 'user', severity: 'high' });
    const crit = await s.audit.record({
      tenantId,
      action: 'session.revoked.bulk',
      resourceType: 'session',
      severity: 'critical',
    });
    const alert = await s.audit.record({
      tenantId,
      action: 'security.alert.denied_burst',
      resourceType: 'user',
      severity: 'high',
    });
    expect(await s.monitoring.siem.trimQueue()).toEqual([auditEventId(high.id)]);
    const rows = await outbox();
    expect(rows).toHaveLength(102);
    expect(rows.some((r) => r.event_id === auditEventId(crit.id))).toBe(true);
    expect(rows.some((r) => r.event_id === auditEventId(alert.id))).toBe(true);
    expect((await deadLetters()).find((d) => d.event_id === auditEventId(high.id))).toMatchObject({
      reason: 'queue_full: evicted to make room for newer events',
    });
  });
});
