import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type pg from 'pg';
import request from 'supertest';
import { ownerPool } from '../helpers/app';
import {
  auditByRequest,
  buildAuthApp,
  expectGeneric401,
  loginThroughIssuer,
  provision,
  SECURITY,
  uniqueIp,
  type AuthTestApp,
} from './helpers';
import { startIssuer, type TestIssuer } from './oidc-issuer';

let issuer: TestIssuer;
let t: AuthTestApp;
let owner: pg.Pool;

beforeAll(async () => {
  issuer = await startIssuer();
  t = await buildAuthApp(issuer, { env: { JWT_EXPIRES_IN: '4h' } });
  owner = ownerPool();
});
afterAll(async () => {
  await t.close();
  await owner.end();
  await issuer.stop();
});

const hash = (s: string) => createHash('sha256').update(s).digest();
const postRefresh = (body: object | undefined, rid = randomUUID()) => {
  const r = request(t.app).post(`${SECURITY}/refresh`).set('X-Request-Id', rid).set('X-Forwarded-For', uniqueIp());
  return body === undefined ? r : r.send(body);
};
const getUser = (authorization: string) => request(t.app).get(`${SECURITY}/user`).set('Authorization', authorization);

async function freshLogin() {
  const u = await provision(t);
  return { u, l: await loginThroughIssuer(t, issuer, t.clock, u.email) };
}

describe('POST /refresh — rotation', () => {
  test('when a live refresh token is sent in the body, then 200 returns a new access token and a new refresh token, the old one is spent and replaced, and auth.refresh is audited', async () => {
    const { u, l } = await freshLogin();
    const rid = randomUUID();
    const res = await postRefresh({ refreshToken: l.refreshToken }, rid);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      success: true,
      token: expect.any(String),
      refreshToken: expect.stringMatching(/^[\w-]{43}$/),
      tokenType: 'Bearer',
      expiresIn: 4 * 3600,
      user: expect.objectContaining({ id: u.id, email: u.email, tenantId: u.tenantId, role: 'user' }),
    });
    expect(res.body.refreshToken).not.toBe(l.refreshToken);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(
      ([] as string[])
        .concat(res.headers['set-cookie'] ?? [])
        .some((c) => c.startsWith(`fleet_refresh=${res.body.refreshToken};`)),
    ).toBe(true);

    const rows = await owner.query(
      'SELECT id, token_hash, used_at, replaced_by FROM refresh_tokens WHERE session_id = $1 ORDER BY created_at, used_at NULLS LAST',
      [l.sessionId],
    );
    expect(rows.rows).toHaveLength(2);
    const old = rows.rows.find((r) => Buffer.compare(r.token_hash, hash(l.refreshToken)) === 0);
    const neu = rows.rows.find((r) => Buffer.compare(r.token_hash, hash(res.body.refreshToken)) === 0);
    expect(old.used_at).not.toBeNull();
    expect(old.replaced_by).toBe(neu.id);
    expect(neu.used_at).toBeNull();
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({
        action: 'auth.refresh',
        tenant_id: u.tenantId,
        user_id: u.id,
        resource_id: l.sessionId,
        severity: 'low',
        result: 'success',
      }),
    ]);
    expect((await getUser(`Bearer ${res.body.token}`)).status).toBe(200);
  });

  test('when a spent refresh token is presented again, then 401, the whole session is revoked (every access and refresh token of it dies) and reuse is audited as critical with a security alert', async () => {
    const { u, l } = await freshLogin();
    const second = await postRefresh({ refreshToken: l.refreshToken });
    expect(second.status).toBe(200);
    t.clock.advance(10_001); // past REFRESH_REUSE_GRACE_SECONDS (default 10; the grace has its own tests)
    const rid = randomUUID();
    expectGeneric401(await postRefresh({ refreshToken: l.refreshToken }, rid));

    const rows = await auditByRequest(owner, rid);
    expect(rows.map((r) => [r.action, r.severity, r.tenant_id, r.user_id, r.resource_id])).toEqual([
      ['auth.refresh.reuse', 'critical', u.tenantId, u.id, l.sessionId],
      ['security.alert.refresh_reuse', 'critical', u.tenantId, u.id, l.sessionId],
    ]);
    expect(rows[0]?.after).toMatchObject({ sessionRevoked: true });
    const s = await owner.query('SELECT revoked_at, revoked_reason FROM sessions WHERE id = $1', [l.sessionId]);
    expect(s.rows[0].revoked_reason).toBe('refresh token reuse');
    expect(s.rows[0].revoked_at).not.toBeNull();

    expectGeneric401(await postRefresh({ refreshToken: second.body.refreshToken }));
    expectGeneric401(await getUser(`Bearer ${second.body.token}`));
    expectGeneric401(await getUser(l.authorization));
  });

  test('when two refreshes race with the same token, then both get the same successor pair (reuse grace) and the session stays live', async () => {
    const { l } = await freshLogin();
    const [a, b] = await Promise.all([
      postRefresh({ refreshToken: l.refreshToken }),
      postRefresh({ refreshToken: l.refreshToken }),
    ]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(a.body.refreshToken).toBe(b.body.refreshToken);
    expect(a.body.token).toBe(b.body.token);
    const s = await owner.query('SELECT revoked_reason FROM sessions WHERE id = $1', [l.sessionId]);
    expect(s.rows[0].revoked_reason).toBeNull();
  });

  test('when the session ended by logout, then its refresh token is refused and the attempt audited', async () => {
    const { u, l } = await freshLogin();
    expect((await request(t.app).post(`${SECURITY}/logout`).set('Authorization', l.authorization)).status).toBe(200);
    const rid = randomUUID();
    expectGeneric401(await postRefresh({ refreshToken: l.refreshToken }, rid));
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({
        action: 'auth.token.rejected',
        tenant_id: u.tenantId,
        resource_type: 'refresh_token',
        error_message: 'refresh token of a revoked session (logout)',
      }),
    ]);
  });

  test('when the user was deactivated, then the refresh token is refused', async () => {
    const { u, l } = await freshLogin();
    await t.composition.services.users.deactivate({ email: u.email, tenantId: u.tenantId }, { source: 'test' });
    expectGeneric401(await postRefresh({ refreshToken: l.refreshToken }));
  });

  test('when the session has been idle past SESSION_IDLE_TIMEOUT (injected clock), then refresh is refused and session.expired is written', async () => {
    const { u, l } = await freshLogin();
    t.clock.advance(31 * 60_000);
    try {
      const rid = randomUUID();
      expectGeneric401(await postRefresh({ refreshToken: l.refreshToken }, rid));
      expect(await auditByRequest(owner, rid)).toEqual([
        expect.objectContaining({ action: 'session.expired', tenant_id: u.tenantId, error_message: 'idle timeout' }),
      ]);
    } finally {
      t.clock.advance(-31 * 60_000);
    }
  });

  test('when a refresh happens within the idle timeout, then it counts as activity and extends the session', async () => {
    const { l } = await freshLogin();
    t.clock.advance(20 * 60_000);
    try {
      const r1 = await postRefresh({ refreshToken: l.refreshToken });
      expect(r1.status).toBe(200);
      t.clock.advance(20 * 60_000); // 40 min after login, 20 after the refresh
      const r2 = await postRefresh({ refreshToken: r1.body.refreshToken });
      expect(r2.status).toBe(200);
    } finally {
      t.clock.advance(-40 * 60_000);
    }
  });
});

describe('POST /refresh — cookie and CSRF', () => {
  async function csrfPair(): Promise<{ token: string; cookie: string }> {
    const res = await request(t.app).get(`${SECURITY}/csrf-token`);
    const cookie = ([] as string[])
      .concat(res.headers['set-cookie'] ?? [])
      .map((c) => c.split(';')[0])
      .join('; ');
    return { token: res.body.csrfToken, cookie };
  }

  test('when the refresh token comes from the fleet_refresh cookie without a CSRF token, then 403 CSRF_FAILED and the token is not spent', async () => {
    const { l } = await freshLogin();
    const res = await request(t.app)
      .post(`${SECURITY}/refresh`)
      .set('Cookie', l.cookie.split(';')[0] as string);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('CSRF_FAILED');
    const rows = await owner.query('SELECT used_at FROM refresh_tokens WHERE token_hash = $1', [hash(l.refreshToken)]);
    expect(rows.rows[0].used_at).toBeNull();
  });

  test('when the cookie comes with a forged CSRF token, then 403 CSRF_FAILED', async () => {
    const { l } = await freshLogin();
    const { cookie } = await csrfPair();
    const res = await request(t.app)
      .post(`${SECURITY}/refresh`)
      .set('Cookie', `${l.cookie.split(';')[0]}; ${cookie}`)
      .set('X-CSRF-Token', randomBytes(32).toString('hex'));
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('CSRF_FAILED');
  });

  test('when the cookie comes with a valid CSRF token, then 200 and a rotated cookie is set', async () => {
    const { l } = await freshLogin();
    const csrf = await csrfPair();
    const res = await request(t.app)
      .post(`${SECURITY}/refresh`)
      .set('Cookie', `${l.cookie.split(';')[0]}; ${csrf.cookie}`)
      .set('X-CSRF-Token', csrf.token);
    expect(res.status).toBe(200);
    const set = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('fleet_refresh='));
    expect(set).toContain(`fleet_refresh=${res.body.refreshToken};`);
    expect(set).toMatch(/HttpOnly/);
    expect(set).toMatch(/SameSite=Strict/);
  });

  test('when a cookie refresh is refused, then the cookie is cleared', async () => {
    const csrf = await csrfPair();
    const res = await request(t.app)
      .post(`${SECURITY}/refresh`)
      .set('Cookie', `fleet_refresh=${randomBytes(32).toString('base64url')}; ${csrf.cookie}`)
      .set('X-CSRF-Token', csrf.token);
    expectGeneric401(res);
    const set = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('fleet_refresh='));
    expect(set).toMatch(/^fleet_refresh=; Path=\/api\/v1\/security\/refresh; Expires=Thu, 01 Jan 1970/);
  });
});

describe('POST /refresh — bad input', () => {
  test('when no refresh token is presented at all, then 401', async () => {
    expectGeneric401(await postRefresh(undefined));
  });

  test('when an unknown but well-formed refresh token is presented, then 401 and auth.token.rejected is audited under _unknown', async () => {
    const rid = randomUUID();
    expectGeneric401(await postRefresh({ refreshToken: randomBytes(32).toString('base64url') }, rid));
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({
        action: 'auth.token.rejected',
        tenant_id: '_unknown',
        error_message: 'unknown refresh token',
      }),
    ]);
  });

  test('when a malformed or injection-string refresh token is presented, then 401 and the rejection is audited under _unknown', async () => {
    const rid = randomUUID();
    expectGeneric401(await postRefresh({ refreshToken: "' OR 1=1 --" }, rid));
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({
        action: 'auth.token.rejected',
        tenant_id: '_unknown',
        error_message: 'malformed refresh token',
      }),
    ]);
  });

  test.each([
    ['an unknown key', { refreshToken: 'x', sessionId: 'y' }],
    ['a number', { refreshToken: 42 }],
    ['an oversized token', { refreshToken: 'a'.repeat(1000) }],
    ['an empty token', { refreshToken: '' }],
    ['a NUL byte', { refreshToken: `abc\u0000def` }],
  ])('when the body has %s, then 400 VALIDATION_FAILED', async (_name, body) => {
    const res = await postRefresh(body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
  });

  test('when the body is malformed JSON, then 400 MALFORMED_JSON', async () => {
    const res = await request(t.app)
      .post(`${SECURITY}/refresh`)
      .set('Content-Type', 'application/json')
      .send('{"refreshToken":');
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('MALFORMED_JSON');
  });
});
