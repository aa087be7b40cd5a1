import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import request from 'supertest';
import { ownerPool } from '../helpers/app';
import { loginAs, type TestLogin } from '../helpers/auth';
import { openSession } from '../helpers/session';
import { uniqueTenant } from '../helpers/env';
import {
  auditByRequest,
  buildAuthApp,
  expectGeneric401,
  loginThroughIssuer,
  provision,
  SECURITY,
  type AuthTestApp,
} from './helpers';
import { startIssuer, type TestIssuer } from './oidc-issuer';
import { withTenant } from '../../src/db/transaction';

let issuer: TestIssuer;
let t: AuthTestApp;
let owner: pg.Pool;

beforeAll(async () => {
  issuer = await startIssuer();
  t = await buildAuthApp(issuer);
  owner = ownerPool();
});
afterAll(async () => {
  await t.close();
  await owner.end();
  await issuer.stop();
});

/** A second session for the same user (another device). */
async function anotherSession(l: TestLogin, userAgent = 'device-2'): Promise<TestLogin> {
  const { sessionId } = await withTenant(t.composition.pool, l.tenantId, (c) =>
    openSession(t.composition, c, { userId: l.userId, tenantId: l.tenantId, ip: '192.0.2.7', userAgent }),
  );
  const { token } = t.composition.services.tokens.issue({ userId: l.userId, sessionId, tenantId: l.tenantId });
  return { ...l, token, authorization: `Bearer ${token}`, sessionId };
}

const getUser = (authorization: string) => request(t.app).get(`${SECURITY}/user`).set('Authorization', authorization);
const del = (authorization: string, id: string, rid = randomUUID()) =>
  request(t.app).delete(`${SECURITY}/sessions/${id}`).set('Authorization', authorization).set('X-Request-Id', rid);

describe('POST /logout', () => {
  test('when a user logs out, then 200, the session is revoked (access and refresh tokens stop working at once), the cookie is cleared and auth.logout is audited', async () => {
    const u = await provision(t);
    const l = await loginThroughIssuer(t, issuer, t.clock, u.email);
    const rid = randomUUID();
    const res = await request(t.app)
      .post(`${SECURITY}/logout`)
      .set('Authorization', l.authorization)
      .set('X-Request-Id', rid);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true });
    const cleared = ([] as string[])
      .concat(res.headers['set-cookie'] ?? [])
      .find((c) => c.startsWith('fleet_refresh='));
    expect(cleared).toMatch(
      /^fleet_refresh=; Path=\/api\/v1\/security\/refresh; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Strict$/,
    );
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({
        action: 'auth.logout',
        tenant_id: u.tenantId,
        user_id: u.id,
        resource_type: 'session',
        resource_id: l.sessionId,
        severity: 'low',
      }),
    ]);
    const s = await owner.query('SELECT revoked_reason FROM sessions WHERE id = $1', [l.sessionId]);
    expect(s.rows[0].revoked_reason).toBe('logout');

    expectGeneric401(await getUser(l.authorization));
    expectGeneric401(await request(t.app).post(`${SECURITY}/refresh`).send({ refreshToken: l.refreshToken }));
    expectGeneric401(await request(t.app).post(`${SECURITY}/logout`).set('Authorization', l.authorization));
  });

  test('when logout is called without a Bearer token, then 401', async () => {
    expectGeneric401(await request(t.app).post(`${SECURITY}/logout`));
  });

  test('when one session logs out, then the user’s other sessions stay live', async () => {
    const a = await loginAs(t);
    const b = await anotherSession(a);
    expect((await request(t.app).post(`${SECURITY}/logout`).set('Authorization', a.authorization)).status).toBe(200);
    expect((await getUser(b.authorization)).status).toBe(200);
  });
});

describe('GET /sessions', () => {
  test('when a user lists sessions, then only their own live sessions are returned, newest first, with the current one flagged', async () => {
    const a = await loginAs(t);
    t.clock.advance(1000); // distinct creation times for a stable order
    const a2 = await anotherSession(a, 'phone');
    const a3 = await anotherSession(a, 'revoked-laptop');
    t.clock.advance(-1000);
    await withTenant(t.composition.pool, a.tenantId, (c) =>
      t.composition.services.sessions.revoke(c, a3.sessionId, a.tenantId, 'test'),
    );
    await loginAs(t, { tenantId: a.tenantId }); // a colleague's session

    const res = await request(t.app).get(`${SECURITY}/sessions`).set('Authorization', a2.authorization);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({
      success: true,
      sessions: [
        {
          id: a2.sessionId,
          createdAt: expect.any(String),
          lastUsedAt: expect.any(String),
          ipAddress: '192.0.2.7',
          userAgent: 'phone',
          current: true,
        },
        {
          id: a.sessionId,
          createdAt: expect.any(String),
          lastUsedAt: expect.any(String),
          ipAddress: '127.0.0.1',
          userAgent: 'jest',
          current: false,
        },
      ],
    });
  });

  test('when sessions are listed without authentication, then 401', async () => {
    expectGeneric401(await request(t.app).get(`${SECURITY}/sessions`));
  });
});

describe('DELETE /sessions/:id', () => {
  test('when a user ends one of their own sessions, then 200, that session’s token stops working and session.revoked is audited', async () => {
    const a = await loginAs(t);
    const b = await anotherSession(a);
    const rid = randomUUID();
    const res = await del(a.authorization, b.sessionId, rid);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true });
    expectGeneric401(await getUser(b.authorization));
    expect((await getUser(a.authorization)).status).toBe(200);
    const rows = await auditByRequest(owner, rid);
    expect(rows).toEqual([
      expect.objectContaining({
        action: 'session.revoked',
        tenant_id: a.tenantId,
        user_id: a.userId,
        resource_id: b.sessionId,
        severity: 'medium',
      }),
    ]);
    expect(rows[0]?.after).toMatchObject({ ownerUserId: a.userId, scope: 'own' });
  });

  test('when the session id in the path is malformed percent-encoding (%FF), then 400 VALIDATION_FAILED naming params with code invalid_encoding', async () => {
    const a = await loginAs(t);
    const res = await del(a.authorization, '%FF');
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({
      code: 'VALIDATION_FAILED',
      details: [{ path: 'params', code: 'invalid_encoding' }],
    });
  });

  test('when DELETE /sessions/:id carries body keys, then 400 VALIDATION_FAILED and the session stays live', async () => {
    const a = await loginAs(t);
    const b = await anotherSession(a);
    const res = await del(a.authorization, b.sessionId).set('Content-Type', 'application/json').send('{"evil":1}');
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect((await getUser(b.authorization)).status).toBe(200);
  });

  test('when a non-admin targets a colleague’s session in the same tenant, then 404 and the session stays live', async () => {
    const a = await loginAs(t, { role: 'user' });
    const colleague = await loginAs(t, { tenantId: a.tenantId });
    const res = await del(a.authorization, colleague.sessionId);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('NOT_FOUND');
    expect((await getUser(colleague.authorization)).status).toBe(200);
  });

  test('when an admin ends a colleague’s session in the same tenant, then 200 and it is audited with the tenant scope', async () => {
    const admin = await loginAs(t, { role: 'admin' });
    const colleague = await loginAs(t, { tenantId: admin.tenantId, role: 'viewer' });
    const rid = randomUUID();
    expect((await del(admin.authorization, colleague.sessionId, rid)).status).toBe(200);
    expectGeneric401(await getUser(colleague.authorization));
    const rows = await auditByRequest(owner, rid);
    expect(rows[0]?.after).toMatchObject({ ownerUserId: colleague.userId, revokedBy: admin.userId, scope: 'tenant' });
  });

  test('when an admin targets a session of another tenant, then 404 exactly as for a session that does not exist, and it stays live', async () => {
    const admin = await loginAs(t, { role: 'admin' });
    const stranger = await loginAs(t, { tenantId: uniqueTenant(), role: 'admin' });
    const cross = await del(admin.authorization, stranger.sessionId);
    const missing = await del(admin.authorization, randomUUID());
    expect(cross.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(cross.body.error).toEqual(missing.body.error);
    expect((await getUser(stranger.authorization)).status).toBe(200);
  });

  test('when the session is already revoked, then 404', async () => {
    const a = await loginAs(t);
    const b = await anotherSession(a);
    expect((await del(a.authorization, b.sessionId)).status).toBe(200);
    expect((await del(a.authorization, b.sessionId)).status).toBe(404);
  });

  test.each([['not-a-uuid'], ["1' OR '1'='1"], ['%00'], [`${randomUUID()}x`]])(
    'when the id is %s, then 400 VALIDATION_FAILED',
    async (id) => {
      const a = await loginAs(t);
      const res = await del(a.authorization, encodeURIComponent(id));
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    },
  );
});

describe('GET /user', () => {
  test.each([
    [
      'admin',
      [
        'apikeys:manage',
        'audit:export',
        'audit:read:own',
        'audit:read:tenant',
        'audit:verify',
        'audit:write',
        'keys:read',
        'keys:rotate',
        'profile:read',
        'sessions:read:own',
        'sessions:revoke:own',
        'sessions:revoke:tenant',
        'siem:read',
        'siem:write',
        'tokens:introspect',
        'users:manage',
      ],
    ],
    ['user', ['audit:read:own', 'audit:write', 'profile:read', 'sessions:read:own', 'sessions:revoke:own']],
    ['viewer', ['audit:read:own', 'profile:read', 'sessions:read:own', 'sessions:revoke:own']],
  ] as const)('when the role is %s, then the permissions come from the one RBAC matrix', async (role, permissions) => {
    const l = await loginAs(t, { role });
    const res = await getUser(l.authorization);
    expect(res.status).toBe(200);
    expect(res.body.user).toEqual({
      id: l.userId,
      email: l.email,
      role,
      tenantId: l.tenantId,
      displayName: null,
      permissions,
    });
  });
});
