/**
 * Tenant audit streams need a step-up for changes (CONTRACT §11, §13): PUT, DELETE and the test
 * route answer 403 STEP_UP_REQUIRED (audited access.step_up_required) to an admin with TOTP whose
 * token has no recent step-up, and work with a step-up token; reads (GET list/status) do not ask.
 * With MFA_REQUIRED_FOR_ADMINS=true an admin without TOTP is told to enroll.
 */
import request from 'supertest';
import { ManualClock } from '../../src/lib/clock';
import type { TestApp } from '../helpers/app';
import { loginAs, type TestLogin } from '../helpers/auth';
import { enableTotp, stepUp } from '../identity/helpers';
import { createIsolatedDatabase, type IsolatedDatabase } from './helpers/db';
import { buildSiemTestApp } from './helpers/harness';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/receivers';

const BASE = '/api/v1/security';
const SECRET = 'step-up-stream-secret-0123456789';

let db: IsolatedDatabase;
let t: TestApp & { clock: ManualClock };
let strict: TestApp & { clock: ManualClock };
let wh: WebhookReceiver & { endpoint: string };

beforeAll(async () => {
  db = await createIsolatedDatabase('streamstepup');
  wh = await startWebhookReceiver(SECRET);
  const clock = new ManualClock(Date.now());
  t = Object.assign(await buildSiemTestApp(db, { SIEM_ALLOW_PRIVATE_DESTINATIONS: 'true' }, { clock }), { clock });
  const clock2 = new ManualClock(Date.now());
  strict = Object.assign(
    await buildSiemTestApp(
      db,
      { SIEM_ALLOW_PRIVATE_DESTINATIONS: 'true', MFA_REQUIRED_FOR_ADMINS: 'true' },
      { clock: clock2 },
    ),
    { clock: clock2 },
  );
}, 60_000);

afterAll(async () => {
  await t?.close();
  await strict?.close();
  await wh?.close();
  await db?.drop();
});

const stream = () => ({
  provider: 'webhook',
  endpointUrl: wh.endpoint,
  schema: 'native',
  minSeverity: 'low',
  credentials: { secret: SECRET },
});
const put = (app: TestApp, auth: string, name: string) =>
  request(app.app).put(`${BASE}/audit/streams/${name}`).set('Authorization', auth).send(stream());
const del = (app: TestApp, auth: string, name: string) =>
  request(app.app).delete(`${BASE}/audit/streams/${name}`).set('Authorization', auth);
const test_ = (app: TestApp, auth: string, name: string) =>
  request(app.app).post(`${BASE}/audit/streams/${name}/test`).set('Authorization', auth);

function expectStepUpRequired(res: request.Response): void {
  expect(res.status).toBe(403);
  expect(res.body.error.code).toBe('STEP_UP_REQUIRED');
  expect(res.body.error.message).toMatch(/mfa\/step-up/);
}

describe('audit stream changes need a step-up', () => {
  test('when an admin with TOTP changes a stream without a step-up, then 403 STEP_UP_REQUIRED (audited); with a step-up token PUT, test and DELETE work', async () => {
    const a: TestLogin = await loginAs(t, { role: 'admin' });
    const u = await enableTotp(t, a);
    expectStepUpRequired(await put(t, a.authorization, 'needs-step-up'));
    expectStepUpRequired(await test_(t, a.authorization, 'needs-step-up'));
    expectStepUpRequired(await del(t, a.authorization, 'needs-step-up'));
    const denied = await db.owner.query(
      "SELECT resource_id FROM audit_logs WHERE tenant_id = $1 AND action = 'access.step_up_required' ORDER BY created_at",
      [a.tenantId],
    );
    expect(denied.rows.map((r: { resource_id: string }) => r.resource_id)).toEqual([
      'PUT /api/v1/security/audit/streams/:name',
      'POST /api/v1/security/audit/streams/:name/test',
      'DELETE /api/v1/security/audit/streams/:name',
    ]);
    // Nothing was created by the refused PUT; reads need no step-up.
    const list = await request(t.app).get(`${BASE}/audit/streams`).set('Authorization', a.authorization);
    expect(list.status).toBe(200);
    expect(list.body.streams).toEqual([]);
    expect(
      (await request(t.app).get(`${BASE}/audit/streams/status`).set('Authorization', a.authorization)).status,
    ).toBe(200);

    const fresh = `Bearer ${await stepUp(t, a, u)}`;
    const created = await put(t, fresh, 'needs-step-up');
    expect(created.status).toBe(200);
    expect(created.body.stream.name).toBe('needs-step-up');
    expect((await test_(t, fresh, 'needs-step-up')).status).toBe(202);
    expect((await del(t, fresh, 'needs-step-up')).status).toBe(200);

    // The step-up is good for 10 minutes only.
    t.clock.advance(11 * 60_000);
    expectStepUpRequired(await put(t, fresh, 'needs-step-up'));
  });

  test('when an admin has no TOTP, then no step-up is asked; with MFA_REQUIRED_FOR_ADMINS=true the admin is told to enroll', async () => {
    const a = await loginAs(t, { role: 'admin' });
    expect((await put(t, a.authorization, 'no-totp')).status).toBe(200);
    const b = await loginAs(strict, { role: 'admin' });
    const res = await put(strict, b.authorization, 'no-totp');
    expectStepUpRequired(res);
    expect(res.body.error.message).toMatch(/mfa\/totp\/enroll/);
  });

  test('when a non-admin calls a changing route, then 403 FORBIDDEN before any step-up question', async () => {
    const u = await loginAs(t, { role: 'user' });
    const res = await put(t, u.authorization, 'not-mine');
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('FORBIDDEN');
  });
});
