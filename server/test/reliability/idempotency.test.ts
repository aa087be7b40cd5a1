/**
 * Idempotency-Key on POST /audit/log and POST /audit/siem (contract §6): a retry with the same
 * key and body answers the kept outcome and creates nothing; a different body is refused (422);
 * a retry while the first is in flight gets 409 + Retry-After; malformed keys get 400.
 */
import net from 'node:net';
import request from 'supertest';
import { withTenant } from '../../src/db/transaction';
import { ManualClock } from '../../src/lib/clock';
import { canonicalJson, createIdempotencyService, keyProblem } from '../../src/services/idempotency/service';
import type { TestApp } from '../helpers/app';
import { loginAs, type TestLogin } from '../helpers/auth';
import { withServer } from '../helpers/raw';
import { createIsolatedDatabase, type IsolatedDatabase } from '../siem/helpers/db';
import { buildSiemTestApp, eventually } from '../siem/helpers/harness';

const BASE = '/api/v1/security';
let db: IsolatedDatabase;
let t: TestApp;
let user: TestLogin;
let admin: TestLogin;

beforeAll(async () => {
  db = await createIsolatedDatabase('idem');
  // A SIEM destination is configured so POST /audit/siem enqueues; no worker runs here.
  t = await buildSiemTestApp(db, {
    SIEM_PROVIDER: 'webhook',
    SIEM_ENDPOINT_URL: 'http://127.0.0.1:9/unused',
    SIEM_API_KEY: 'webhook-secret-0123456789abcdef0123',
  });
  user = await loginAs(t, { role: 'user' });
  admin = await loginAs(t, { role: 'admin', tenantId: user.tenantId });
});

afterAll(async () => {
  await t?.close();
  await db?.drop();
});

let n = 0;
function uniqueKey(): string {
  n += 1;
  return `key-${Date.now().toString(36)}-${n}`;
}

function postLog(login: TestLogin, body: object, key?: string) {
  const r = request(t.app).post(`${BASE}/audit/log`).set('Authorization', login.authorization);
  if (key !== undefined) r.set('Idempotency-Key', key);
  return r.send(body);
}

async function rowsWithResource(resourceId: string): Promise<number> {
  return (await db.owner.query('SELECT count(*)::int AS n FROM audit_logs WHERE resource_id = $1', [resourceId]))
    .rows[0].n;
}

const errorShape = (code: string) => ({
  success: false,
  error: expect.objectContaining({ code, message: expect.any(String) }),
  requestId: expect.any(String),
  timestamp: expect.any(String),
});

describe('POST /audit/log with Idempotency-Key', () => {
  test('without the header, then nothing changes: two identical posts create two rows', async () => {
    const rid = uniqueKey();
    expect((await postLog(user, { action: 'vehicle.unlock', resourceType: 'vehicle', resourceId: rid })).status).toBe(
      200,
    );
    expect((await postLog(user, { action: 'vehicle.unlock', resourceType: 'vehicle', resourceId: rid })).status).toBe(
      200,
    );
    expect(await rowsWithResource(rid)).toBe(2);
  });

  test('when the same key and body are sent again, then the kept status and body come back with Idempotent-Replayed: true and one row exists', async () => {
    const key = uniqueKey();
    const body = { action: 'vehicle.unlock', resourceType: 'vehicle', resourceId: key, after: { a: 1, b: [1, 2] } };
    const first = await postLog(user, body, key);
    expect(first.status).toBe(200);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(first.body).toEqual({ success: true, id: expect.any(String) });
    // Same JSON, other key order and spacing: the same request.
    const again = await request(t.app)
      .post(`${BASE}/audit/log`)
      .set('Authorization', user.authorization)
      .set('Idempotency-Key', key)
      .set('Content-Type', 'application/json')
      .send(
        `{ "after": {"b":[1,2], "a":1}, "resourceId": "${key}", "resourceType":"vehicle", "action":"vehicle.unlock" }`,
      );
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toEqual(first.body);
    expect(await rowsWithResource(key)).toBe(1);
  });

  test('when the same key comes with a different body, then 422 IDEMPOTENCY_KEY_REUSED and nothing is created', async () => {
    const key = uniqueKey();
    expect(
      (await postLog(user, { action: 'vehicle.unlock', resourceType: 'vehicle', resourceId: key }, key)).status,
    ).toBe(200);
    const other = await postLog(user, { action: 'vehicle.lock', resourceType: 'vehicle', resourceId: key }, key);
    expect(other.status).toBe(422);
    expect(other.body).toEqual(errorShape('IDEMPOTENCY_KEY_REUSED'));
    expect(await rowsWithResource(key)).toBe(1);
  });

  test('a key is scoped to the caller and the route: another user, or the other route, with the same key is processed on its own', async () => {
    const key = uniqueKey();
    expect(
      (await postLog(user, { action: 'vehicle.unlock', resourceType: 'vehicle', resourceId: key }, key)).status,
    ).toBe(200);
    const byAdmin = await postLog(admin, { action: 'vehicle.unlock', resourceType: 'vehicle', resourceId: key }, key);
    expect(byAdmin.status).toBe(200);
    expect(byAdmin.headers['idempotent-replayed']).toBeUndefined();
    const otherTenant = await loginAs(t, { role: 'user' });
    const byOther = await postLog(
      otherTenant,
      { action: 'vehicle.unlock', resourceType: 'vehicle', resourceId: key },
      key,
    );
    expect(byOther.status).toBe(200);
    expect(byOther.headers['idempotent-replayed']).toBeUndefined();
    const siem = await request(t.app)
      .post(`${BASE}/audit/siem`)
      .set('Authorization', admin.authorization)
      .set('Idempotency-Key', key)
      .send({ events: [{ eventType: 'fleet.test.event', severity: 'low', message: 'm' }] });
    expect(siem.status).toBe(202);
    expect(siem.headers['idempotent-replayed']).toBeUndefined();
    expect(await rowsWithResource(key)).toBe(3);
  });

  test('when the first request with a key is still in flight, then a second gets 409 CONFLICT with Retry-After; after it commits, a retry gets its answer', async () => {
    const key = uniqueKey();
    const body = { action: 'vehicle.unlock', resourceType: 'vehicle', resourceId: key };
    // Hold the first request inside its transaction: keeping its outcome waits for this lock.
    const locker = await db.owner.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE idempotency_keys IN SHARE MODE');
      const first = postLog(user, body, key).then((r) => r);
      await eventually(
        async () =>
          (
            await db.owner.query(
              "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'idempotency_keys' AND NOT l.granted",
            )
          ).rowCount === 1,
        'the first request to wait',
      );
      const second = await postLog(user, body, key);
      expect(second.status).toBe(409);
      expect(second.headers['retry-after']).toBe('1');
      expect(second.body).toEqual(errorShape('CONFLICT'));
      await locker.query('COMMIT');
      const done = await first;
      expect(done.status).toBe(200);
      const third = await postLog(user, body, key);
      expect(third.status).toBe(200);
      expect(third.headers['idempotent-replayed']).toBe('true');
      expect(third.body).toEqual(done.body);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      locker.release();
    }
    expect(await rowsWithResource(key)).toBe(1);
  });

  test('when ten requests with one key race, then exactly one row is created and every answer is that row (200) or 409', async () => {
    const key = uniqueKey();
    const body = { action: 'vehicle.unlock', resourceType: 'vehicle', resourceId: key };
    const answers = await withServer(t.app, (port) =>
      Promise.all(
        Array.from({ length: 10 }, () =>
          fetch(`http://127.0.0.1:${port}${BASE}/audit/log`, {
            method: 'POST',
            headers: { Authorization: user.authorization, 'Idempotency-Key': key, 'Content-Type': 'application/json' },
            body: JSON.stringify(body),
          }).then(async (r) => ({
            status: r.status,
            replayed: r.headers.get('idempotent-replayed'),
            body: (await r.json()) as { id?: string },
          })),
        ),
      ),
    );
    expect(await rowsWithResource(key)).toBe(1);
    const ok = answers.filter((a) => a.status === 200);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    expect(answers.every((a) => a.status === 200 || a.status === 409)).toBe(true);
    expect(new Set(ok.map((a) => a.body.id)).size).toBe(1);
    expect(ok.filter((a) => a.replayed !== 'true')).toHaveLength(1);
  });

  test('when a request with a key fails validation, then nothing is kept and the key can be used with a valid body', async () => {
    const key = uniqueKey();
    expect((await postLog(user, { action: 'auth.login', resourceType: 'vehicle', resourceId: key }, key)).status).toBe(
      400,
    );
    const ok = await postLog(user, { action: 'vehicle.unlock', resourceType: 'vehicle', resourceId: key }, key);
    expect(ok.status).toBe(200);
    expect(ok.headers['idempotent-replayed']).toBeUndefined();
  });

  test('when the kept outcome expired (24 h), then the key is processed afresh; the periodic clean-up deletes expired entries of every tenant', async () => {
    const key = uniqueKey();
    expect(
      (await postLog(user, { action: 'vehicle.unlock', resourceType: 'vehicle', resourceId: key }, key)).status,
    ).toBe(200);
    const kept = await db.owner.query('SELECT created_at, expires_at FROM idempotency_keys WHERE idem_key = $1', [key]);
    expect(kept.rows[0].expires_at.getTime() - kept.rows[0].created_at.getTime()).toBe(24 * 3600_000);
    await db.owner.query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE idem_key = $1", [
      key,
    ]);
    const fresh = await postLog(user, { action: 'vehicle.lock', resourceType: 'vehicle', resourceId: key }, key);
    expect(fresh.status).toBe(200);
    expect(fresh.headers['idempotent-replayed']).toBeUndefined();
    expect(await rowsWithResource(key)).toBe(2);
    // The clean-up, 25 h later, as the application role (row-level security does not hide other tenants from it).
    const later = createIdempotencyService({
      pool: t.composition.pool,
      clock: new ManualClock(Date.now() + 25 * 3600_000),
      logger: t.composition.logger,
    });
    expect(await later.pruneNow()).toBeGreaterThanOrEqual(1);
    expect(
      (await db.owner.query('SELECT count(*)::int AS n FROM idempotency_keys WHERE created_at <= now()')).rows[0].n,
    ).toBe(0);
  });

  test("row-level security: the application sees only its tenant's keys", async () => {
    const key = uniqueKey();
    expect(
      (await postLog(user, { action: 'vehicle.unlock', resourceType: 'vehicle', resourceId: key }, key)).status,
    ).toBe(200);
    const other = await loginAs(t, { role: 'user' });
    const seen = await withTenant(
      t.composition.pool,
      other.tenantId,
      async (c) =>
        (await c.query('SELECT count(*)::int AS n FROM idempotency_keys WHERE idem_key = $1', [key])).rows[0].n,
    );
    expect(seen).toBe(0);
    const own = await withTenant(
      t.composition.pool,
      user.tenantId,
      async (c) =>
        (await c.query('SELECT count(*)::int AS n FROM idempotency_keys WHERE idem_key = $1', [key])).rows[0].n,
    );
    expect(own).toBe(1);
  });
});

describe('hostile Idempotency-Key values', () => {
  const body = { action: 'vehicle.unlock', resourceType: 'vehicle' };

  test.each([
    ['empty', ''],
    ['256 characters', 'k'.repeat(256)],
    ['a space inside', 'a b'],
    ['non-ASCII (latin1 byte)', 'clé'],
  ])('when the key is %s, then 400 VALIDATION_FAILED naming the header, and nothing is written', async (_what, key) => {
    const before = (await db.owner.query('SELECT count(*)::int AS n FROM audit_logs')).rows[0].n;
    const res = await postLog(user, body, key);
    expect(res.status).toBe(400);
    expect(res.body).toEqual(errorShape('VALIDATION_FAILED'));
    expect(res.body.error.details[0]).toMatchObject({
      path: 'headers.idempotency-key',
      code: 'invalid_idempotency_key',
    });
    expect((await db.owner.query('SELECT count(*)::int AS n FROM audit_logs')).rows[0].n).toBe(before);
  });

  test('a key of exactly 255 visible characters is accepted, with every visible ASCII character', async () => {
    const visible = Array.from({ length: 94 }, (_, i) => String.fromCharCode(0x21 + i)).join('');
    const key = (visible + visible + visible).slice(0, 255);
    const res = await postLog(user, body, key);
    expect(res.status).toBe(200);
  });

  test('when the header is sent twice, then 400', async () => {
    const res = await withServer(t.app, (port) =>
      rawPost(
        port,
        [`Authorization: ${user.authorization}`, 'Idempotency-Key: one', 'Idempotency-Key: two'],
        JSON.stringify(body),
      ),
    );
    expect(res).toMatch(/^HTTP\/1\.1 400 /);
    expect(res).toContain('invalid_idempotency_key');
  });

  test('when the key holds a control character, then 400 (never a 500), whoever refuses it first', async () => {
    const res = await withServer(t.app, (port) =>
      rawPost(port, [`Authorization: ${user.authorization}`, 'Idempotency-Key: a\u0001b'], JSON.stringify(body)),
    );
    expect(res).toMatch(/^HTTP\/1\.1 400 /);
  });

  test('key checks', () => {
    expect(keyProblem(undefined)).toBeNull();
    expect(keyProblem('abc-123_~!')).toBeNull();
    expect(keyProblem(['a', 'b'])).toMatch(/once/);
    expect(keyProblem('a\tb')).toMatch(/visible ASCII/);
    expect(keyProblem('a\u007fb')).toMatch(/visible ASCII/);
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: null }], u: undefined })).toBe('{"a":[{"c":null,"d":2}],"b":1}');
  });
});

describe('POST /audit/siem with Idempotency-Key', () => {
  test('when retried with the same key and body, then the same event ids come back (202, replayed) and the events are queued once', async () => {
    const key = uniqueKey();
    const body = { events: [{ eventType: 'fleet.test.event', severity: 'high', message: key }] };
    const first = await request(t.app)
      .post(`${BASE}/audit/siem`)
      .set('Authorization', admin.authorization)
      .set('Idempotency-Key', key)
      .send(body);
    expect(first.status).toBe(202);
    const again = await request(t.app)
      .post(`${BASE}/audit/siem`)
      .set('Authorization', admin.authorization)
      .set('Idempotency-Key', key)
      .send(body);
    expect(again.status).toBe(202);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toEqual(first.body);
    const queued = await db.owner.query("SELECT count(*)::int AS n FROM siem_outbox WHERE payload->>'message' = $1", [
      key,
    ]);
    expect(queued.rows[0].n).toBe(1);
    const audited = await db.owner.query(
      "SELECT count(*)::int AS n FROM audit_logs WHERE action = 'audit.siem.submitted' AND resource_id = $1",
      [first.body.eventIds[0]],
    );
    expect(audited.rows[0].n).toBe(1);
    const reused = await request(t.app)
      .post(`${BASE}/audit/siem`)
      .set('Authorization', admin.authorization)
      .set('Idempotency-Key', key)
      .send({ events: [{ eventType: 'fleet.test.event', severity: 'low', message: key }] });
    expect(reused.status).toBe(422);
    expect(reused.body).toEqual(errorShape('IDEMPOTENCY_KEY_REUSED'));
  });
});

function rawPost(port: number, headers: string[], body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(
        Buffer.from(
          [
            `POST ${BASE}/audit/log HTTP/1.1`,
            'Host: 127.0.0.1',
            'Content-Type: application/json',
            `Content-Length: ${Buffer.byteLength(body)}`,
            'Connection: close',
            ...headers,
            '',
            body,
          ].join('\r\n'),
          'latin1',
        ),
      );
    });
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    s.on('error', reject);
  });
}
