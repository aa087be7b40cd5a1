import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import express from 'express';
import type pg from 'pg';
import request from 'supertest';
import { secretId } from '../../src/config';
import { ManualClock } from '../../src/lib/clock';
import { errorHandler } from '../../src/middleware/error-handler';
import { requestContext } from '../../src/middleware/request-context';
import { ownerPool } from '../helpers/app';
import { TEST_SIGNING_KEY } from '../helpers/env';
import { generateSigningKey } from '../../src/lib/jws-keys';
import { loginAs } from '../helpers/auth';
import { openSession } from '../helpers/session';
import {
  auditByRequest,
  auditFor,
  buildAuthApp,
  expectGeneric401,
  SECURITY,
  uniqueIp,
  type AuthTestApp,
} from './helpers';
import { signJwt } from './oidc-issuer';
import { withTenant } from '../../src/db/transaction';

let owner: pg.Pool;
let t: AuthTestApp;
const secret = randomBytes(48).toString('base64');

beforeAll(async () => {
  owner = ownerPool();
  t = await buildAuthApp(null, { env: { JWT_SECRET: secret } });
});
afterAll(async () => {
  await t.close();
  await owner.end();
});

const getUser = (app: express.Express, authorization: string, rid = randomUUID()) =>
  request(app).get(`${SECURITY}/user`).set('Authorization', authorization).set('X-Request-Id', rid);
const payloadOf = (token: string) =>
  JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>;

describe('access tokens', () => {
  test('when a genuine access token of a live session is presented, then GET /user answers with the current user and permissions', async () => {
    const l = await loginAs(t, { role: 'viewer', displayName: 'Val Viewer' });
    const res = await getUser(t.app, l.authorization);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      success: true,
      user: {
        id: l.userId,
        email: l.email,
        role: 'viewer',
        tenantId: l.tenantId,
        displayName: 'Val Viewer',
        permissions: ['audit:read:own', 'profile:read', 'sessions:read:own', 'sessions:revoke:own'],
      },
    });
  });

  type Forge = (token: string, l: Awaited<ReturnType<typeof loginAs>>) => string;
  // Access tokens are ES256 now (CONTRACT §10): forgeries are signed as this service would
  // sign them, with the real key where the test is "a leaked key", or with the old HS256 secret.
  const realKey = () =>
    createPrivateKey({ key: Buffer.from(TEST_SIGNING_KEY, 'base64'), format: 'der', type: 'pkcs8' });
  const kid = () => t.composition.services.tokens.current.kid;
  const es = (p: Record<string, unknown>, key = realKey(), k = kid()) =>
    signJwt({ alg: 'ES256', typ: 'at+jwt', kid: k }, p, key);
  const forgeries: Array<[string, Forge, RegExp]> = [
    [
      'alg none',
      (tok) => signJwt({ alg: 'none', typ: 'at+jwt', kid: kid() }, payloadOf(tok), '', 'none'),
      /algorithm none not accepted/,
    ],
    [
      'a wrong key under the real kid',
      (tok) => es(payloadOf(tok), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
      /invalid signature/,
    ],
    ['an unknown kid', (tok) => es(payloadOf(tok), realKey(), 'unknown-kid'), /unknown key id/],
    [
      'HS256 keyed by the public key',
      (tok) =>
        signJwt(
          { alg: 'HS256', typ: 'JWT', kid: kid() },
          payloadOf(tok),
          createPublicKey(realKey()).export({ format: 'pem', type: 'spki' }) as string,
        ),
      /HS256|unknown key id/,
    ],
    [
      'HS256 with the JWT_SECRET issued after the switch',
      (tok) =>
        signJwt(
          { alg: 'HS256', typ: 'JWT', kid: secretId(secret) },
          { ...payloadOf(tok), iss: 'fleet-security-api', aud: 'fleet-security-api' },
          secret,
        ),
      /HS256/,
    ],
    [
      'an altered payload (another tenant)',
      (tok) => {
        const [h, , s] = tok.split('.');
        return `${h}.${Buffer.from(JSON.stringify({ ...payloadOf(tok), tid: 'someone-elses-tenant' })).toString('base64url')}.${s}`;
      },
      /invalid signature/,
    ],
    [
      'RS256 in the header',
      (tok) => signJwt({ alg: 'RS256', typ: 'JWT', kid: kid() }, payloadOf(tok), secret, 'HS256'),
      /algorithm RS256 not accepted/,
    ],
    [
      'EdDSA in the header under the ES256 kid',
      (tok) => signJwt({ alg: 'EdDSA', typ: 'at+jwt', kid: kid() }, payloadOf(tok), secret, 'HS256'),
      /EdDSA not accepted for key/,
    ],
    // Signed with the real key (as with a leaked one), but not as this service issues tokens.
    [
      'an iat an hour in the future',
      (tok) => {
        const p = payloadOf(tok) as { iat: number; exp: number };
        return es({ ...p, iat: p.iat + 3600, exp: p.exp + 3600 });
      },
      /issued in the future/,
    ],
    [
      'a three-year lifetime',
      (tok) => {
        const p = payloadOf(tok) as { iat: number };
        return es({ ...payloadOf(tok), exp: p.iat + 3 * 365 * 86400 });
      },
      /lifetime longer than JWT_EXPIRES_IN/,
    ],
  ];

  test.each(forgeries)(
    'when the access token has %s, then 401 and auth.token.rejected is audited under _unknown',
    async (_name, forge, reason) => {
      const l = await loginAs(t);
      const rid = randomUUID();
      // From its own address: identical rejections from one source within a minute are aggregated (failure-aggregator.ts).
      const res = await getUser(t.app, `Bearer ${forge(l.token, l)}`, rid).set('X-Forwarded-For', uniqueIp());
      expectGeneric401(res);
      const rows = await auditByRequest(owner, rid);
      expect(rows).toEqual([
        expect.objectContaining({
          action: 'auth.token.rejected',
          tenant_id: '_unknown',
          user_id: null,
          result: 'failure',
          severity: 'medium',
        }),
      ]);
      expect(rows[0]?.error_message).toMatch(reason);
    },
  );

  test('when the scheme is written bearer or BEARER, then the token is accepted (the scheme is case-insensitive)', async () => {
    const l = await loginAs(t);
    for (const scheme of ['bearer', 'BEARER']) expect((await getUser(t.app, `${scheme} ${l.token}`)).status).toBe(200);
  });

  test('when a correctly signed token names a session that does not exist, then 401 and the rejection is audited under its tenant', async () => {
    const l = await loginAs(t);
    const { token } = t.composition.services.tokens.issue({
      userId: l.userId,
      sessionId: randomUUID(),
      tenantId: l.tenantId,
    });
    const rid = randomUUID();
    expectGeneric401(await getUser(t.app, `Bearer ${token}`, rid));
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({
        action: 'auth.token.rejected',
        tenant_id: l.tenantId,
        user_id: l.userId,
        error_message: 'unknown session',
      }),
    ]);
  });

  test('when the access token is past its exp, then 401 and only the log records it (normal client behaviour, not audited)', async () => {
    const clock = new ManualClock(Date.now());
    const app = await buildAuthApp(null, { clock });
    try {
      const l = await loginAs(app);
      clock.advance(16 * 60_000);
      const rid = randomUUID();
      expectGeneric401(await getUser(app.app, l.authorization, rid));
      expect(await auditByRequest(owner, rid)).toEqual([]);
      expect(app.logs.join('\n')).toContain('access token expired');
    } finally {
      await app.close();
    }
  });

  test('when the Authorization header is missing or not a Bearer JWT, then 401 with WWW-Authenticate and nothing is audited', async () => {
    const rid = randomUUID();
    expectGeneric401(await request(t.app).get(`${SECURITY}/user`).set('X-Request-Id', rid));
    expectGeneric401(
      await request(t.app).get(`${SECURITY}/user`).set('Authorization', 'Basic dXNlcjpwYXNz').set('X-Request-Id', rid),
    );
    expectGeneric401(
      await request(t.app).get(`${SECURITY}/user`).set('Authorization', 'Bearer not-a-jwt').set('X-Request-Id', rid),
    );
    expect(await auditByRequest(owner, rid)).toEqual([]);
  });

  test('when a huge Bearer token is presented, then 401 and it is audited as rejected without being parsed', async () => {
    const rid = randomUUID();
    expectGeneric401(
      await request(t.app)
        .get(`${SECURITY}/user`)
        .set('Authorization', `Bearer eyJ${'A'.repeat(6000)}.b.c`)
        .set('X-Request-Id', rid),
    );
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({
        action: 'auth.token.rejected',
        tenant_id: '_unknown',
        error_message: 'token missing or too long',
      }),
    ]);
  });
});

describe('routes without input', () => {
  test('when POST /logout carries a body key or an array, or GET /user and /sessions carry a query, then 400 and the session still works', async () => {
    const l = await loginAs(t);
    for (const body of ['{"zzz":1}', '[]']) {
      const res = await request(t.app)
        .post(`${SECURITY}/logout`)
        .set('Authorization', l.authorization)
        .set('Content-Type', 'application/json')
        .send(body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    }
    for (const path of ['/user?debug=1', '/sessions?all=true']) {
      const res = await request(t.app).get(`${SECURITY}${path}`).set('Authorization', l.authorization);
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'query', code: 'unrecognized_keys' })]);
    }
    expect((await getUser(t.app, l.authorization)).status).toBe(200);
    expect((await request(t.app).post(`${SECURITY}/logout`).set('Authorization', l.authorization)).status).toBe(200);
    expectGeneric401(await getUser(t.app, l.authorization));
  });
});

describe('signing key rotation', () => {
  test('when JWT_SIGNING_KEY rotates and the old key is listed in JWT_PREVIOUS_SIGNING_KEYS, then tokens signed with it still work until its expiry; without it they do not', async () => {
    const old = generateSigningKey('ES256');
    const fresh = generateSigningKey('ES256');
    const until = new Date(Date.now() + 3600_000).toISOString();
    const before = await buildAuthApp(null, { env: { JWT_SIGNING_KEY: old } });
    const during = await buildAuthApp(null, {
      env: { JWT_SIGNING_KEY: fresh, JWT_PREVIOUS_SIGNING_KEYS: `${old}@${until}` },
    });
    const after = await buildAuthApp(null, { env: { JWT_SIGNING_KEY: fresh } });
    try {
      const l = await loginAs(before);
      expect((await getUser(during.app, l.authorization)).status).toBe(200);
      const rid = randomUUID();
      expectGeneric401(await getUser(after.app, l.authorization, rid));
      expect((await auditByRequest(owner, rid))[0]?.error_message).toBe('unknown key id');

      const reissued = during.composition.services.tokens.issue({
        userId: l.userId,
        sessionId: l.sessionId,
        tenantId: l.tenantId,
      });
      expect(JSON.parse(Buffer.from(reissued.token.split('.')[0] as string, 'base64url').toString()).kid).toBe(
        after.composition.services.tokens.current.kid,
      );
      expect((await getUser(after.app, `Bearer ${reissued.token}`)).status).toBe(200);

      // Past the previous key's expiry: its tokens are refused (and it leaves the JWKS).
      during.clock.set(Date.parse(until) + 1000);
      const rid2 = randomUUID();
      expectGeneric401(await getUser(during.app, l.authorization, rid2));
      expect((await auditByRequest(owner, rid2))[0]?.error_message).toBe('signing key retired');
    } finally {
      await Promise.all([before.close(), during.close(), after.close()]);
    }
  });
});

describe('live session checks', () => {
  test('when a user is demoted, then the very next request sees the new role and permissions', async () => {
    const l = await loginAs(t, { role: 'admin' });
    expect((await getUser(t.app, l.authorization)).body.user.role).toBe('admin');
    await t.composition.services.users.provision(
      { email: l.email, role: 'viewer', tenantId: l.tenantId },
      { source: 'test' },
    );
    const res = await getUser(t.app, l.authorization);
    expect(res.status).toBe(200);
    expect(res.body.user.role).toBe('viewer');
    expect(res.body.user.permissions).not.toContain('audit:read:tenant');
    expect(await auditFor(owner, { tenantId: l.tenantId, action: 'user.role_changed' })).toEqual([
      expect.objectContaining({
        severity: 'high',
        resource_id: l.userId,
        before: expect.objectContaining({ role: 'admin' }),
        after: expect.objectContaining({ role: 'viewer' }),
      }),
    ]);
  });

  test('when a user is deactivated, then all their sessions end at once and the next request is refused', async () => {
    const a = await loginAs(t);
    const sessionB = await withTenant(t.composition.pool, a.tenantId, (c) =>
      openSession(t.composition, c, {
        userId: a.userId,
        tenantId: a.tenantId,
        ip: null,
        userAgent: 'second device',
      }),
    );
    const b = t.composition.services.tokens.issue({
      userId: a.userId,
      sessionId: sessionB.sessionId,
      tenantId: a.tenantId,
    });
    const r = await t.composition.services.users.deactivate(
      { email: a.email, tenantId: a.tenantId },
      { source: 'test' },
    );
    expect(r.sessionsRevoked).toBe(2);
    expectGeneric401(await getUser(t.app, a.authorization));
    expectGeneric401(await getUser(t.app, `Bearer ${b.token}`));
    const revoked = await owner.query(
      'SELECT count(*)::int AS n FROM sessions WHERE user_id = $1 AND revoked_reason = $2',
      [a.userId, 'user deactivated'],
    );
    expect(revoked.rows[0].n).toBe(2);
    expect((await auditFor(owner, { tenantId: a.tenantId })).map((x) => x.action)).toEqual([
      'user.deactivated',
      'session.revoked.bulk',
      'auth.token.rejected',
      'auth.token.rejected',
    ]);
  });

  test('when the user row is marked inactive directly in the database, then the next request is refused and audited', async () => {
    const l = await loginAs(t);
    await owner.query('UPDATE users SET is_active = false WHERE id = $1', [l.userId]);
    const rid = randomUUID();
    expectGeneric401(await getUser(t.app, l.authorization, rid));
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({
        action: 'auth.token.rejected',
        tenant_id: l.tenantId,
        error_message: 'user deactivated',
      }),
    ]);
  });

  test('when a session stays idle past SESSION_IDLE_TIMEOUT (injected clock), then it ends, session.expired is written once, and activity before that slides the window', async () => {
    const clock = new ManualClock(Date.now());
    const app = await buildAuthApp(null, {
      clock,
      env: { JWT_EXPIRES_IN: '4h', SESSION_IDLE_TIMEOUT: '30m', SESSION_ABSOLUTE_TIMEOUT: '8h' },
    });
    try {
      const l = await loginAs(app);
      clock.advance(25 * 60_000);
      expect((await getUser(app.app, l.authorization)).status).toBe(200);
      clock.advance(25 * 60_000); // 50 min since login, 25 since last use
      expect((await getUser(app.app, l.authorization)).status).toBe(200);
      clock.advance(31 * 60_000);
      const rid = randomUUID();
      expectGeneric401(await getUser(app.app, l.authorization, rid));
      expect(await auditByRequest(owner, rid)).toEqual([
        expect.objectContaining({
          action: 'session.expired',
          tenant_id: l.tenantId,
          user_id: l.userId,
          resource_id: l.sessionId,
          severity: 'low',
          error_message: 'idle timeout',
        }),
      ]);
      const again = randomUUID();
      expectGeneric401(await getUser(app.app, l.authorization, again));
      expect(await auditByRequest(owner, again)).toEqual([]);
      const s = await owner.query('SELECT revoked_reason FROM sessions WHERE id = $1', [l.sessionId]);
      expect(s.rows[0].revoked_reason).toBe('idle timeout');
    } finally {
      await app.close();
    }
  });

  test('when a session passes SESSION_ABSOLUTE_TIMEOUT (injected clock), then it ends however active it was', async () => {
    const clock = new ManualClock(Date.now());
    const app = await buildAuthApp(null, {
      clock,
      env: { JWT_EXPIRES_IN: '4h', SESSION_IDLE_TIMEOUT: '30m', SESSION_ABSOLUTE_TIMEOUT: '1h' },
    });
    try {
      const l = await loginAs(app);
      for (let i = 0; i < 2; i++) {
        clock.advance(20 * 60_000);
        expect((await getUser(app.app, l.authorization)).status).toBe(200);
      }
      clock.advance(20 * 60_000);
      const rid = randomUUID();
      expectGeneric401(await getUser(app.app, l.authorization, rid));
      expect(await auditByRequest(owner, rid)).toEqual([
        expect.objectContaining({ action: 'session.expired', error_message: 'absolute timeout' }),
      ]);
    } finally {
      await app.close();
    }
  });
});

describe('authorization', () => {
  function guarded(app: AuthTestApp, permission: 'audit:write' | 'keys:rotate') {
    const e = express();
    e.use(requestContext({ logger: app.composition.logger, accessLog: false }));
    e.post(
      '/guarded',
      ...app.composition.guards.requireAuth,
      app.composition.guards.requirePermission(permission),
      (_req, res) => {
        res.json({ success: true });
      },
    );
    e.use(errorHandler());
    return e;
  }

  test('when a role lacks the permission a route requires, then 403 FORBIDDEN and access.denied is audited; a role that holds it passes', async () => {
    const viewer = await loginAs(t, { role: 'viewer' });
    const rid = randomUUID();
    const res = await request(guarded(t, 'audit:write'))
      .post('/guarded')
      .set('Authorization', viewer.authorization)
      .set('X-Request-Id', rid);
    expect(res.status).toBe(403);
    expect(res.body.error).toEqual({
      code: 'FORBIDDEN',
      message: 'You do not have permission to perform this action.',
    });
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({
        action: 'access.denied',
        result: 'denied',
        severity: 'medium',
        tenant_id: viewer.tenantId,
        user_id: viewer.userId,
        error_message: 'role viewer lacks audit:write',
      }),
    ]);
    const user = await loginAs(t, { role: 'user' });
    expect(
      (await request(guarded(t, 'audit:write')).post('/guarded').set('Authorization', user.authorization)).status,
    ).toBe(200);
    expect(
      (await request(guarded(t, 'keys:rotate')).post('/guarded').set('Authorization', user.authorization)).status,
    ).toBe(403);
  });

  test('when one user exceeds RATE_LIMIT_USER_MAX, then 429 with Retry-After, while another user is unaffected', async () => {
    const app = await buildAuthApp(null, { env: { RATE_LIMIT_USER_MAX: '3' } });
    try {
      const a = await loginAs(app);
      const b = await loginAs(app);
      for (let i = 0; i < 3; i++) expect((await getUser(app.app, a.authorization)).status).toBe(200);
      const limited = await getUser(app.app, a.authorization);
      expect(limited.status).toBe(429);
      expect(limited.body.error.code).toBe('RATE_LIMITED');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect((await getUser(app.app, b.authorization)).status).toBe(200);
    } finally {
      await app.close();
    }
  });
});
