/** POST /audit/log: client-chosen severity is capped at high; critical belongs to the server's catalog actions. */
import type pg from 'pg';
import request from 'supertest';
import { buildTestApp, ownerPool, type TestApp } from '../helpers/app';
import { loginAs, type TestLogin } from '../helpers/auth';

const PATH = '/api/v1/security/audit/log';
let t: TestApp;
let owner: pg.Pool;
let user: TestLogin;
let admin: TestLogin;

beforeAll(async () => {
  t = await buildTestApp();
  owner = ownerPool();
  user = await loginAs(t, { role: 'user' });
  admin = await loginAs(t, { role: 'admin' });
});
afterAll(async () => {
  await owner.end();
  await t.close();
});

describe('client-supplied severity', () => {
  test.each(['user', 'admin'] as const)(
    'when a %s posts severity critical, then 400 VALIDATION_FAILED names body.severity and nothing is written',
    async (who) => {
      const login = who === 'user' ? user : admin;
      const res = await request(t.app)
        .post(PATH)
        .set('Authorization', login.authorization)
        .send({ action: 'vehicle.alarm', resourceType: 'vehicle', severity: 'critical' });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
      expect(res.body.error.details).toEqual([
        expect.objectContaining({ path: 'body.severity', message: expect.stringMatching(/reserved/) }),
      ]);
      const { rows } = await owner.query('SELECT 1 FROM audit_logs WHERE tenant_id = $1 AND action = $2', [
        login.tenantId,
        'vehicle.alarm',
      ]);
      expect(rows).toEqual([]);
    },
  );

  test('when a user posts low, medium or high, then each is stored as given', async () => {
    for (const severity of ['low', 'medium', 'high']) {
      const res = await request(t.app)
        .post(PATH)
        .set('Authorization', user.authorization)
        .send({ action: 'vehicle.note', resourceType: 'vehicle', severity });
      expect(res.status).toBe(200);
      const { rows } = await owner.query('SELECT severity FROM audit_logs WHERE id = $1', [res.body.id]);
      expect(rows).toEqual([{ severity }]);
    }
  });

  test.each([['CRITICAL'], [' critical'], [4], [null]])(
    'when severity is %j, then 400 (never 500)',
    async (severity) => {
      const res = await request(t.app)
        .post(PATH)
        .set('Authorization', user.authorization)
        .send({ action: 'vehicle.note', resourceType: 'vehicle', severity });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    },
  );
});
