/**
 * RFC 7662 introspection and RFC 7009 revocation (CONTRACT §10): form-encoded, API-key
 * authenticated introspection, `{ active: false }` for every dead or foreign token, revocation
 * that ends the session and answers 200 whatever the token, RFC 6749 §5.2 errors, hostile input.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import request from 'supertest';
import { ownerPool } from '../helpers/app';
import { loginAs, type TestLogin } from '../helpers/auth';
import {
  auditByRequest,
  buildAuthApp,
  expectGeneric401,
  loginThroughIssuer,
  provision,
  type AuthTestApp,
} from '../auth/helpers';
import { startIssuer, type TestIssuer } from '../auth/oidc-issuer';
import { SECURITY } from './helpers';

let t: AuthTestApp;
let owner: pg.Pool;
let issuer: TestIssuer;
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

async function introspector(admin?: TestLogin, scopes = ['tokens:introspect']) {
  const a = admin ?? (await loginAs(t, { role: 'admin' }));
  const r = await request(t.app)
    .post(`${SECURITY}/api-keys`)
    .set('Authorization', a.authorization)
    .send({ name: 'gateway', scopes });
  if (r.status !== 201) throw new Error(JSON.stringify(r.body));
  return { admin: a, key: r.body.key as string };
}
const introspect = (key: string | null, form: string | Record<string, string>) => {
  const r = request(t.app).post('/oauth/introspect').type('form');
  return (key ? r.set('Authorization', `Bearer ${key}`) : r).send(form);
};
const revoke = (form: string | Record<string, string>, rid = randomUUID()) =>
  request(t.app).post('/oauth/revoke').set('X-Request-Id', rid).type('form').send(form);
const getUser = (token: string) => request(t.app).get(`${SECURITY}/user`).set('Authorization', `Bearer ${token}`);

describe('POST /oauth/introspect', () => {
  test('when a live access token of the tenant is introspected, then active with sub, tenant_id, role, sid, exp, iat, token_type', async () => {
    const { admin, key } = await introspector();
    const user = await loginAs(t, { tenantId: admin.tenantId, role: 'viewer' });
    const res = await introspect(key, { token: user.token });
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const p = JSON.parse(Buffer.from(user.token.split('.')[1] as string, 'base64url').toString());
    expect(res.body).toEqual({
      active: true,
      sub: user.userId,
      tenant_id: admin.tenantId,
      role: 'viewer',
      sid: user.sessionId,
      exp: p.exp,
      iat: p.iat,
      token_type: 'access_token',
      iss: 'fleet-security-api',
      aud: 'fleet-security-api',
    });
  });

  test('when a refresh token is introspected, then active as refresh_token until spent', async () => {
    const { admin, key } = await introspector();
    const u = await provision(t, { tenantId: admin.tenantId });
    const l = await loginThroughIssuer(t, issuer, t.clock, u.email);
    const res = await introspect(key, { token: l.refreshToken, token_type_hint: 'refresh_token' });
    expect(res.body).toMatchObject({
      active: true,
      sub: u.id,
      sid: l.sessionId,
      token_type: 'refresh_token',
      role: 'user',
    });
    expect((await request(t.app).post(`${SECURITY}/refresh`).send({ refreshToken: l.refreshToken })).status).toBe(200);
    expect((await introspect(key, { token: l.refreshToken })).body).toEqual({ active: false });
  });

  test('when the session is logged out, revoked, the user deactivated (or demoted to inactive), idle, or the token expired or of another tenant, then { active: false }', async () => {
    const { admin, key } = await introspector();
    const tenant = admin.tenantId;
    const loggedOut = await loginAs(t, { tenantId: tenant });
    await request(t.app).post(`${SECURITY}/logout`).set('Authorization', loggedOut.authorization);
    const revoked = await loginAs(t, { tenantId: tenant });
    await request(t.app).delete(`${SECURITY}/sessions/${revoked.sessionId}`).set('Authorization', admin.authorization);
    const deactivated = await loginAs(t, { tenantId: tenant });
    await owner.query('UPDATE users SET is_active = false WHERE id = $1', [deactivated.userId]);
    const foreign = await loginAs(t);
    for (const l of [loggedOut, revoked, deactivated, foreign])
      expect((await introspect(key, { token: l.token })).body).toEqual({ active: false });
    const fresh = await loginAs(t, { tenantId: tenant });
    expect((await introspect(key, { token: fresh.token })).body.active).toBe(true);
    t.clock.advance(31 * 60_000);
    expect((await introspect(key, { token: fresh.token })).body).toEqual({ active: false });
    t.clock.set(Date.now());
  });

  test.each([
    ['garbage', 'not-a-token'],
    ['a forged JWT', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.'],
    ['an injection string', "' OR 1=1 --"],
    ['a 4096-character token', 'a'.repeat(4096)],
  ])('when %s is introspected, then { active: false }', async (_n, token) => {
    const { key } = await introspector();
    const res = await introspect(key, { token });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ active: false });
  });

  test('when the caller has no API key, a bad one, a Bearer access token, or a key without tokens:introspect, then invalid_client (401 / 403) in the RFC 6749 shape', async () => {
    const { key } = await introspector(undefined, ['audit:write']);
    const user = await loginAs(t, { role: 'admin' });
    const none = await introspect(null, { token: user.token });
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(none.body).toEqual({ error: 'invalid_client', error_description: expect.any(String) });
    const bearer = await request(t.app)
      .post('/oauth/introspect')
      .set('Authorization', user.authorization)
      .type('form')
      .send({ token: user.token });
    expect(bearer.body.error).toBe('invalid_client');
    const bad = await introspect(`fsk_aaaaaaaaaaaa_${'B'.repeat(43)}`, { token: user.token });
    expect([bad.status, bad.body.error]).toEqual([401, 'invalid_client']);
    const scoped = await introspect(key, { token: user.token });
    expect([scoped.status, scoped.body.error]).toEqual([403, 'invalid_client']);
  });

  test.each([
    ['no token', {}],
    ['an empty token', { token: '' }],
    ['the token twice', 'token=a&token=b'],
    ['a token over 4096 characters', { token: 'a'.repeat(4097) }],
  ])('when the form has %s, then 400 invalid_request', async (_n, form) => {
    const { key } = await introspector();
    const res = await introspect(key, form as Record<string, string>);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_request', error_description: expect.any(String) });
  });

  test('when the body is JSON instead of a form, or over 8 kB, then invalid_request (400 / 413), never a 500', async () => {
    const { key } = await introspector();
    const json = await request(t.app)
      .post('/oauth/introspect')
      .set('Authorization', `Bearer ${key}`)
      .send({ token: 'x' });
    expect([json.status, json.body.error]).toEqual([400, 'invalid_request']);
    const big = await introspect(key, { token: 'a', pad: 'x'.repeat(9000) });
    expect([big.status, big.body.error]).toEqual([413, 'invalid_request']);
    const broken = await request(t.app)
      .post('/oauth/introspect')
      .set('Authorization', `Bearer ${key}`)
      .type('form')
      .send('token=%E0%A4%A');
    expect(broken.status).toBeLessThan(500);
  });
});

describe('POST /oauth/revoke', () => {
  test('when a live access token is revoked, then 200, its session ends (access and refresh tokens die) and auth.token.revoked is audited', async () => {
    const u = await provision(t);
    const l = await loginThroughIssuer(t, issuer, t.clock, u.email);
    const rid = randomUUID();
    const res = await revoke({ token: l.token }, rid);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({
        action: 'auth.token.revoked',
        tenant_id: u.tenantId,
        user_id: u.id,
        resource_id: l.sessionId,
      }),
    ]);
    expectGeneric401(await getUser(l.token));
    expectGeneric401(await request(t.app).post(`${SECURITY}/refresh`).send({ refreshToken: l.refreshToken }));
  });

  test('when a refresh token is revoked (with or without hint), then its session ends', async () => {
    const u = await provision(t);
    const l = await loginThroughIssuer(t, issuer, t.clock, u.email);
    expect((await revoke({ token: l.refreshToken, token_type_hint: 'access_token' })).status).toBe(200);
    expectGeneric401(await getUser(l.token));
  });

  test.each([
    ['an unknown token', 'nope'],
    ['an already revoked token', null],
    ['a forged JWT', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.'],
    ['an unknown refresh token', 'A'.repeat(43)],
  ])('when %s is presented, then 200 all the same', async (_n, token) => {
    const l = await loginAs(t);
    if (token === null) await revoke({ token: l.token });
    expect((await revoke({ token: token ?? l.token })).status).toBe(200);
  });

  test('when the hint is unknown, then 400 unsupported_token_type; no token 400 invalid_request', async () => {
    const l = await loginAs(t);
    const res = await revoke({ token: l.token, token_type_hint: 'id_token' });
    expect([res.status, res.body.error]).toEqual([400, 'unsupported_token_type']);
    expect((await getUser(l.token)).status).toBe(200);
    const none = await revoke({});
    expect([none.status, none.body.error]).toEqual([400, 'invalid_request']);
  });
});
