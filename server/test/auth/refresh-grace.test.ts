/**
 * Refresh reuse grace (CONTRACT §10, REFRESH_REUSE_GRACE_SECONDS): a spent refresh token
 * presented again within the grace gets the same successor pair back from stored (encrypted)
 * state and revokes nothing; after the grace it is reuse and the family is revoked.
 */
import { createHash, randomUUID } from 'node:crypto';
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
  t = await buildAuthApp(issuer, { env: { REFRESH_REUSE_GRACE_SECONDS: '10' } });
  owner = ownerPool();
});
afterAll(async () => {
  await t.close();
  await owner.end();
  await issuer.stop();
});

const hash = (s: string) => createHash('sha256').update(s).digest();
const postRefresh = (app: AuthTestApp, refreshToken: string, rid = randomUUID()) =>
  request(app.app)
    .post(`${SECURITY}/refresh`)
    .set('X-Request-Id', rid)
    .set('X-Forwarded-For', uniqueIp())
    .send({ refreshToken });
const getUser = (app: AuthTestApp, token: string) =>
  request(app.app).get(`${SECURITY}/user`).set('Authorization', `Bearer ${token}`);
const revokedReason = async (sessionId: string) =>
  (await owner.query('SELECT revoked_reason FROM sessions WHERE id = $1', [sessionId])).rows[0].revoked_reason as
    string | null;

async function freshLogin(app: AuthTestApp) {
  const u = await provision(app);
  return { u, l: await loginThroughIssuer(app, issuer, app.clock, u.email) };
}

describe('refresh reuse grace', () => {
  test('when 10 refreshes run at once with one token, then all get the same successor pair, one successor row exists and nothing is revoked', async () => {
    const { l } = await freshLogin(t);
    const res = await Promise.all(Array.from({ length: 10 }, () => postRefresh(t, l.refreshToken)));
    expect(res.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(new Set(res.map((r) => r.body.refreshToken)).size).toBe(1);
    expect(new Set(res.map((r) => r.body.token)).size).toBe(1);
    const rows = await owner.query('SELECT id FROM refresh_tokens WHERE session_id = $1', [l.sessionId]);
    expect(rows.rows).toHaveLength(2);
    expect(await revokedReason(l.sessionId)).toBeNull();
    expect((await getUser(t, res[0]!.body.token)).status).toBe(200);
    const audit = await owner.query(
      "SELECT action, count(*)::int AS n FROM audit_logs WHERE resource_id = $1 AND action LIKE 'auth.refresh%' GROUP BY action ORDER BY action",
      [l.sessionId],
    );
    expect(audit.rows).toEqual([
      { action: 'auth.refresh', n: 1 },
      { action: 'auth.refresh.grace', n: 9 },
    ]);
  });

  test('when a spent token is presented again at exactly the grace (moved clock), then the same pair is returned and audited as auth.refresh.grace; one millisecond later it is reuse and the family dies', async () => {
    const { u, l } = await freshLogin(t);
    const first = await postRefresh(t, l.refreshToken);
    expect(first.status).toBe(200);
    t.clock.advance(10_000);
    const rid = randomUUID();
    const again = await postRefresh(t, l.refreshToken, rid);
    expect(again.status).toBe(200);
    expect([again.body.token, again.body.refreshToken]).toEqual([first.body.token, first.body.refreshToken]);
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({
        action: 'auth.refresh.grace',
        tenant_id: u.tenantId,
        user_id: u.id,
        severity: 'low',
        result: 'success',
      }),
    ]);

    t.clock.advance(1);
    const rid2 = randomUUID();
    expectGeneric401(await postRefresh(t, l.refreshToken, rid2));
    expect((await auditByRequest(owner, rid2)).map((r) => r.action)).toEqual([
      'auth.refresh.reuse',
      'security.alert.refresh_reuse',
    ]);
    expect(await revokedReason(l.sessionId)).toBe('refresh token reuse');
    expectGeneric401(await getUser(t, first.body.token));
    expectGeneric401(await postRefresh(t, first.body.refreshToken));
  });

  test('when the pair is stored, then the row holds neither token in plaintext, and a sealed pair copied to another row does not open (AAD): refused, nothing revoked', async () => {
    const { l } = await freshLogin(t);
    const first = await postRefresh(t, l.refreshToken);
    const row = (
      await owner.query('SELECT id, successor_sealed FROM refresh_tokens WHERE token_hash = $1', [hash(l.refreshToken)])
    ).rows[0];
    expect(typeof row.successor_sealed).toBe('string');
    expect(row.successor_sealed).not.toContain(first.body.refreshToken);
    expect(row.successor_sealed).not.toContain(first.body.token.split('.')[1]);

    const { l: other } = await freshLogin(t);
    expect((await postRefresh(t, other.refreshToken)).status).toBe(200);
    await owner.query('UPDATE refresh_tokens SET successor_sealed = $1 WHERE token_hash = $2', [
      row.successor_sealed,
      hash(other.refreshToken),
    ]);
    const rid = randomUUID();
    expectGeneric401(await postRefresh(t, other.refreshToken, rid));
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({
        action: 'auth.token.rejected',
        error_message: 'the kept successor of a spent refresh token could not be decrypted',
      }),
    ]);
    expect(await revokedReason(other.sessionId)).toBeNull();
  });

  test('when the session was logged out within the grace, then the spent token is refused without a reuse alert', async () => {
    const { l } = await freshLogin(t);
    const first = await postRefresh(t, l.refreshToken);
    expect(
      (await request(t.app).post(`${SECURITY}/logout`).set('Authorization', `Bearer ${first.body.token}`)).status,
    ).toBe(200);
    const rid = randomUUID();
    expectGeneric401(await postRefresh(t, l.refreshToken, rid));
    expect((await auditByRequest(owner, rid)).map((r) => r.action)).toEqual(['auth.token.rejected']);
    expect(await revokedReason(l.sessionId)).toBe('logout');
  });

  test('when the grace is over and the family rotated again, then the kept pair of the older token is erased', async () => {
    const { l } = await freshLogin(t);
    const first = await postRefresh(t, l.refreshToken);
    t.clock.advance(11_000);
    expect((await postRefresh(t, first.body.refreshToken)).status).toBe(200);
    const row = (
      await owner.query('SELECT successor_sealed FROM refresh_tokens WHERE token_hash = $1', [hash(l.refreshToken)])
    ).rows[0];
    expect(row.successor_sealed).toBeNull();
  });

  test('when REFRESH_REUSE_GRACE_SECONDS=0, then a second presentation at once is reuse', async () => {
    const strict = await buildAuthApp(issuer, { env: { REFRESH_REUSE_GRACE_SECONDS: '0' } });
    try {
      const { l } = await freshLogin(strict);
      const [a, b] = await Promise.all([postRefresh(strict, l.refreshToken), postRefresh(strict, l.refreshToken)]);
      expect([a.status, b.status].sort()).toEqual([200, 401]);
      expect(await revokedReason(l.sessionId)).toBe('refresh token reuse');
    } finally {
      await strict.close();
    }
  });

  test.each(['-1', '61', '1.5', 'ten'])(
    'when REFRESH_REUSE_GRACE_SECONDS=%s, then configuration refuses it',
    async (v) => {
      await expect(buildAuthApp(null, { env: { REFRESH_REUSE_GRACE_SECONDS: v } })).rejects.toThrow(
        /REFRESH_REUSE_GRACE_SECONDS/,
      );
    },
  );
});
