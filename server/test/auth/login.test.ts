import { createHash, randomUUID } from 'node:crypto';
import type pg from 'pg';
import request from 'supertest';
import { ownerPool } from '../helpers/app';
import { uniqueEmail, uniqueTenant } from '../helpers/env';
import {
  auditByRequest,
  buildAuthApp,
  expectGeneric401,
  postLogin,
  provision,
  SECURITY,
  uniqueIp,
  type AuthTestApp,
} from './helpers';
import { makeKey, signJwt, startIssuer, type TestIssuer } from './oidc-issuer';

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

describe('POST /login — happy path', () => {
  test('when a provisioned user presents a valid ID token, then 200 returns tokens, the user, an HttpOnly refresh cookie, and the session, refresh token and audit rows are written in one go', async () => {
    const u = await provision(t, { role: 'admin', name: 'Ada Admin' });
    const ip = uniqueIp();
    const rid = randomUUID();
    const res = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, ip, rid).set(
      'User-Agent',
      'login-test/1.0',
    );

    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      success: true,
      token: expect.stringMatching(/^eyJ[\w-]+\.[\w-]+\.[\w-]+$/),
      refreshToken: expect.stringMatching(/^[\w-]{43}$/),
      tokenType: 'Bearer',
      expiresIn: 900,
      user: {
        id: u.id,
        email: u.email,
        role: 'admin',
        tenantId: u.tenantId,
        displayName: 'Ada Admin',
        permissions: expect.arrayContaining(['profile:read', 'audit:read:tenant', 'sessions:revoke:tenant']),
      },
    });
    expect(res.headers['cache-control']).toBe('no-store');
    const cookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('fleet_refresh='));
    expect(cookie).toBeDefined();
    expect(cookie).toContain(`fleet_refresh=${res.body.refreshToken}`);
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; SameSite=Strict/);
    expect(cookie).toMatch(/; Path=\/api\/v1\/security\/refresh/);
    expect(cookie).toMatch(/; Expires=/);
    expect(cookie).not.toMatch(/; Secure/); // Secure only in production

    const claims = JSON.parse(Buffer.from(res.body.token.split('.')[1], 'base64url').toString());
    expect(claims).toMatchObject({ sub: u.id, tid: u.tenantId, iss: 'fleet-security-api', aud: 'fleet-security-api' });
    const session = await owner.query(
      'SELECT user_id, tenant_id, host(ip_address) AS ip, user_agent, revoked_at FROM sessions WHERE id = $1',
      [claims.sid],
    );
    expect(session.rows).toEqual([
      { user_id: u.id, tenant_id: u.tenantId, ip, user_agent: 'login-test/1.0', revoked_at: null },
    ]);
    const tokens = await owner.query('SELECT token_hash, used_at FROM refresh_tokens WHERE session_id = $1', [
      claims.sid,
    ]);
    expect(tokens.rows).toHaveLength(1);
    expect(Buffer.compare(tokens.rows[0].token_hash, createHash('sha256').update(res.body.refreshToken).digest())).toBe(
      0,
    );
    expect(tokens.rows[0].used_at).toBeNull();
    const rows = await auditByRequest(owner, rid);
    expect(rows).toEqual([
      expect.objectContaining({
        action: 'auth.login.success',
        tenant_id: u.tenantId,
        user_id: u.id,
        resource_type: 'user',
        resource_id: u.email,
        result: 'success',
        severity: 'low',
        ip_address: ip,
      }),
    ]);
    expect(rows[0]?.after).toMatchObject({ sessionId: claims.sid, role: 'admin' });
    const bound = await owner.query('SELECT auth0_sub FROM users WHERE id = $1', [u.id]);
    expect(bound.rows[0].auth0_sub).toBe(`auth0|${u.email}`);

    const me = await request(t.app).get(`${SECURITY}/user`).set('Authorization', `Bearer ${res.body.token}`);
    expect(me.status).toBe(200);
    expect(me.body.user).toEqual(res.body.user);
  });

  test('when the body e-mail differs from the token e-mail only in letter case, then the login succeeds', async () => {
    const u = await provision(t);
    const upper = u.email.toUpperCase();
    const res = await postLogin(
      t,
      {
        email: upper,
        idToken: issuer.idToken(
          t.clock,
          u.email.replace(/^./, (c) => c.toUpperCase()),
        ),
      },
      uniqueIp(),
    );
    expect(res.status).toBe(200);
    expect(res.body.user.email).toBe(u.email);
  });

  test('when the token is ES256 or PS256 from a published key, then the login succeeds', async () => {
    const es = makeKey('ES256');
    const ps = makeKey('PS256');
    issuer.published.push(es, ps);
    for (const key of [es, ps]) {
      const u = await provision(t);
      const res = await postLogin(
        t,
        { email: u.email, idToken: issuer.idToken(t.clock, u.email, { key }) },
        uniqueIp(),
      );
      expect(res.status).toBe(200);
      expect(res.body.user.id).toBe(u.id);
    }
  });

  test('when the token has several audiences and azp names this client, then the login succeeds', async () => {
    const u = await provision(t);
    const idToken = issuer.idToken(t.clock, u.email, {
      claims: { aud: [issuer.clientId, 'https://api.example.com'], azp: issuer.clientId },
    });
    const res = await postLogin(t, { email: u.email, idToken }, uniqueIp());
    expect(res.status).toBe(200);
  });

  test('when the token expired less than the 60 s skew ago, then it is still accepted', async () => {
    const u = await provision(t);
    const now = Math.floor(t.clock.now() / 1000);
    const res = await postLogin(
      t,
      { email: u.email, idToken: issuer.idToken(t.clock, u.email, { claims: { exp: now - 30, iat: now - 630 } }) },
      uniqueIp(),
    );
    expect(res.status).toBe(200);
  });
});

describe('POST /login — rejected ID tokens', () => {
  const now = () => Math.floor(t.clock.now() / 1000);
  type Build = (email: string) => string;
  const cases: Array<[string, Build, RegExp]> = [
    [
      'alg none with an empty signature',
      (e) => signJwt({ alg: 'none', typ: 'JWT', kid: issuer.key.kid }, issuer.claims(t.clock, e), '', 'none'),
      /not a signed compact JWT/,
    ],
    [
      'alg none with a signature segment',
      (e) => `${signJwt({ alg: 'none', typ: 'JWT', kid: issuer.key.kid }, issuer.claims(t.clock, e), '', 'none')}AAAA`,
      /algorithm none refused/,
    ],
    [
      'HS256 signed with the issuer public key',
      (e) =>
        signJwt(
          { alg: 'HS256', typ: 'JWT', kid: issuer.key.kid },
          issuer.claims(t.clock, e),
          issuer.key.publicKey.export({ format: 'pem', type: 'spki' }) as string,
        ),
      /algorithm HS256 not accepted/,
    ],
    [
      'RS384 (outside the allow-list)',
      (e) =>
        signJwt(
          { alg: 'RS384', typ: 'JWT', kid: issuer.key.kid },
          issuer.claims(t.clock, e),
          issuer.key.privateKey,
          'RS256',
        ),
      /algorithm RS384 not accepted/,
    ],
    [
      'a foreign key with the same kid',
      (e) => issuer.idToken(t.clock, e, { key: makeKey('RS256', issuer.key.kid) }),
      /invalid signature/,
    ],
    ['a wrong audience', (e) => issuer.idToken(t.clock, e, { claims: { aud: 'another-client' } }), /audience invalid/],
    [
      'several audiences without azp',
      (e) => issuer.idToken(t.clock, e, { claims: { aud: [issuer.clientId, 'other'] } }),
      /several audiences and no azp/,
    ],
    [
      'an azp naming another client',
      (e) => issuer.idToken(t.clock, e, { claims: { azp: 'other' } }),
      /azp is not this client/,
    ],
    [
      'a wrong issuer',
      (e) => issuer.idToken(t.clock, e, { claims: { iss: 'https://evil.example.com/' } }),
      /issuer invalid/,
    ],
    [
      'an issuer differing only by the trailing slash',
      (e) => issuer.idToken(t.clock, e, { claims: { iss: issuer.url.replace(/\/$/, '') } }),
      /issuer invalid/,
    ],
    [
      'an expired token (beyond the skew)',
      (e) => issuer.idToken(t.clock, e, { claims: { exp: now() - 61, iat: now() - 700 } }),
      /token expired/,
    ],
    ['no exp', (e) => issuer.idToken(t.clock, e, { claims: { exp: undefined } }), /no exp/],
    [
      'an iat in the future (beyond the skew)',
      (e) => issuer.idToken(t.clock, e, { claims: { iat: now() + 120 } }),
      /issued in the future/,
    ],
    [
      'an nbf in the future (beyond the skew)',
      (e) => issuer.idToken(t.clock, e, { claims: { nbf: now() + 120 } }),
      /not yet valid/,
    ],
    ['an e-mail that differs from the body', (e) => issuer.idToken(t.clock, `other.${e}`), /email does not match/],
    [
      'email_verified false',
      (e) => issuer.idToken(t.clock, e, { claims: { email_verified: false } }),
      /email not verified/,
    ],
    [
      'email_verified as the string "true"',
      (e) => issuer.idToken(t.clock, e, { claims: { email_verified: 'true' } }),
      /email not verified/,
    ],
    [
      'a payload altered after signing',
      (e) => {
        const [h, , s] = issuer.idToken(t.clock, e, { claims: { email_verified: false } }).split('.');
        const forged = Buffer.from(JSON.stringify(issuer.claims(t.clock, e))).toString('base64url');
        return `${h}.${forged}.${s}`;
      },
      /invalid signature/,
    ],
    [
      'an unknown kid',
      (e) => issuer.idToken(t.clock, e, { key: makeKey('RS256', 'never-published') }),
      /unknown key id/,
    ],
    [
      'an RSA algorithm with an EC key',
      (e) => {
        const es = makeKey('ES256');
        issuer.published.push(es);
        return signJwt(
          { alg: 'RS256', typ: 'JWT', kid: es.kid },
          issuer.claims(t.clock, e),
          issuer.key.privateKey,
          'RS256',
        );
      },
      /differs from the key's alg|needs an RSA key/,
    ],
    ['a crit header', (e) => issuer.idToken(t.clock, e, { header: { crit: ['exp'] } }), /crit/],
    ['garbage', () => 'not.a.jwt', /not a JWT/],
  ];

  test.each(cases)(
    'when the ID token has %s, then 401 with the generic message and the reason is audited',
    async (_name, build, reason) => {
      const u = await provision(t);
      const ip = uniqueIp();
      const rid = randomUUID();
      const res = await postLogin(t, { email: u.email, idToken: build(u.email) }, ip, rid);
      expectGeneric401(res);
      expect(res.headers['set-cookie']).toBeUndefined();
      const rows = await auditByRequest(owner, rid);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        action: 'auth.login.failure',
        tenant_id: u.tenantId,
        user_id: u.id,
        resource_type: 'user',
        resource_id: u.email,
        result: 'failure',
        severity: 'medium',
        ip_address: ip,
      });
      expect(rows[0]?.error_message).toMatch(reason);
      const sessions = await owner.query('SELECT count(*)::int AS n FROM sessions WHERE user_id = $1', [u.id]);
      expect(sessions.rows[0].n).toBe(0);
    },
  );
});

describe('POST /login — an ID token opens one session', () => {
  test('when the same ID token is presented again, then the second login is refused (401, audited as a replay) and only one session exists', async () => {
    const u = await provision(t);
    const idToken = issuer.idToken(t.clock, u.email);
    expect((await postLogin(t, { email: u.email, idToken }, uniqueIp())).status).toBe(200);
    const rid = randomUUID();
    const again = await postLogin(t, { email: u.email, idToken }, uniqueIp(), rid);
    expectGeneric401(again);
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({
        action: 'auth.login.failure',
        user_id: u.id,
        error_message: expect.stringMatching(/ID token already used/),
      }),
    ]);
    const sessions = await owner.query('SELECT count(*)::int AS n FROM sessions WHERE user_id = $1', [u.id]);
    expect(sessions.rows[0].n).toBe(1);
    // Only a hash is stored.
    const stored = await owner.query('SELECT encode(token_hash, $1) AS h FROM login_id_tokens', ['escape']);
    expect(stored.rows.map((r: { h: string }) => r.h).join()).not.toContain(idToken.split('.')[1]);
  });

  test('when the signature is re-encoded (other unused base64url bits), then it is still the same token and refused', async () => {
    const u = await provision(t);
    const idToken = issuer.idToken(t.clock, u.email);
    expect((await postLogin(t, { email: u.email, idToken }, uniqueIp())).status).toBe(200);
    // A 256-byte RS256 signature is 342 base64url characters: the last one carries 2 bits, so
    // its other 4 bits can be flipped without changing the decoded signature.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(idToken.slice(-1));
    const variant = idToken.slice(0, -1) + alphabet[last ^ 0b0001];
    expect(variant).not.toBe(idToken);
    expect(Buffer.from(variant.split('.')[2] as string, 'base64url')).toEqual(
      Buffer.from(idToken.split('.')[2] as string, 'base64url'),
    );
    const rid = randomUUID();
    expectGeneric401(await postLogin(t, { email: u.email, idToken: variant }, uniqueIp(), rid));
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({ error_message: expect.stringMatching(/ID token already used/) }),
    ]);
  });

  test('when five logins race with one ID token, then exactly one gets a session', async () => {
    const u = await provision(t);
    const idToken = issuer.idToken(t.clock, u.email);
    const results = await Promise.all(
      Array.from({ length: 5 }, () => postLogin(t, { email: u.email, idToken }, uniqueIp())),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 401, 401, 401, 401]);
    const sessions = await owner.query('SELECT count(*)::int AS n FROM sessions WHERE user_id = $1', [u.id]);
    expect(sessions.rows[0].n).toBe(1);
  });

  test('when a used ID token is presented again after its exp but within the 60 s skew login allows (and other logins ran the clean-up), then it is still refused', async () => {
    const u = await provision(t);
    const other = await provision(t);
    const now = Math.floor(t.clock.now() / 1000);
    // Expired 30 s ago (accepted: skew 60 s), issued 10 min 20 s ago (accepted: 10 min + skew).
    const idToken = issuer.idToken(t.clock, u.email, { claims: { iat: now - 620, exp: now - 30 } });
    expect((await postLogin(t, { email: u.email, idToken }, uniqueIp())).status).toBe(200);
    expect(
      (await postLogin(t, { email: other.email, idToken: issuer.idToken(t.clock, other.email) }, uniqueIp())).status,
    ).toBe(200);
    const rid = randomUUID();
    expectGeneric401(await postLogin(t, { email: u.email, idToken }, uniqueIp(), rid));
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({ error_message: expect.stringMatching(/ID token already used/) }),
    ]);
  });

  test('when the ID token was issued more than 10 minutes ago (still unexpired), then 401 "token too old"', async () => {
    const u = await provision(t);
    const now = Math.floor(t.clock.now() / 1000);
    const rid = randomUUID();
    expectGeneric401(
      await postLogin(
        t,
        { email: u.email, idToken: issuer.idToken(t.clock, u.email, { claims: { iat: now - 661, exp: now + 3600 } }) },
        uniqueIp(),
        rid,
      ),
    );
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({ error_message: expect.stringMatching(/token too old/) }),
    ]);
  });
});

describe('POST /login — users', () => {
  test('when the e-mail is not provisioned, then 401 and the failure is audited under the tenant _unknown', async () => {
    const email = uniqueEmail();
    const rid = randomUUID();
    const res = await postLogin(t, { email, idToken: issuer.idToken(t.clock, email) }, uniqueIp(), rid);
    expectGeneric401(res);
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({
        action: 'auth.login.failure',
        tenant_id: '_unknown',
        user_id: null,
        resource_id: email,
        error_message: 'user not provisioned',
      }),
    ]);
  });

  test('when the user is deactivated, then 401 and the failure is audited in the user tenant', async () => {
    const u = await provision(t);
    await t.composition.services.users.deactivate({ email: u.email, tenantId: u.tenantId }, { source: 'test' });
    const rid = randomUUID();
    const res = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp(), rid);
    expectGeneric401(res);
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({
        action: 'auth.login.failure',
        tenant_id: u.tenantId,
        user_id: u.id,
        error_message: 'user deactivated',
      }),
    ]);
  });

  test('when the e-mail is active in two tenants, then the login is refused as ambiguous and audited under _unknown; deactivating one makes it work', async () => {
    const email = uniqueEmail();
    const a = await provision(t, { email, tenantId: uniqueTenant() });
    const b = await provision(t, { email, tenantId: uniqueTenant(), role: 'viewer' });
    const rid = randomUUID();
    const res = await postLogin(t, { email, idToken: issuer.idToken(t.clock, email) }, uniqueIp(), rid);
    expectGeneric401(res);
    const rows = await auditByRequest(owner, rid);
    expect(rows).toEqual([
      expect.objectContaining({ action: 'auth.login.failure', tenant_id: '_unknown', user_id: null }),
    ]);
    expect(rows[0]?.error_message).toMatch(/active in 2 tenants.*ambiguous/);

    await t.composition.services.users.deactivate({ email, tenantId: a.tenantId }, { source: 'test' });
    const ok = await postLogin(t, { email, idToken: issuer.idToken(t.clock, email) }, uniqueIp());
    expect(ok.status).toBe(200);
    expect(ok.body.user).toMatchObject({ id: b.id, tenantId: b.tenantId, role: 'viewer' });
  });

  test('when the token names a different IdP subject than the one bound at the first login, then 401 and the mismatch is audited', async () => {
    const u = await provision(t);
    expect((await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp())).status).toBe(
      200,
    );
    const rid = randomUUID();
    const res = await postLogin(
      t,
      { email: u.email, idToken: issuer.idToken(t.clock, u.email, { claims: { sub: 'google-oauth2|someone-else' } }) },
      uniqueIp(),
      rid,
    );
    expectGeneric401(res);
    expect((await auditByRequest(owner, rid))[0]?.error_message).toMatch(/subject differs/);
  });

  test('when the token carries a role or tenant claim, then they are ignored: tenant and role come from the database', async () => {
    const u = await provision(t, { role: 'viewer' });
    const idToken = issuer.idToken(t.clock, u.email, {
      claims: { role: 'admin', tenantId: 'other', 'https://fleet/roles': ['admin'] },
    });
    const res = await postLogin(t, { email: u.email, idToken }, uniqueIp());
    expect(res.status).toBe(200);
    expect(res.body.user).toMatchObject({ role: 'viewer', tenantId: u.tenantId });
  });
});

describe('POST /login — hostile input', () => {
  const raw = (body: string, type = 'application/json') =>
    request(t.app).post(`${SECURITY}/login`).set('X-Forwarded-For', uniqueIp()).set('Content-Type', type).send(body);

  test('when the body is malformed JSON, then 400 MALFORMED_JSON and nothing is audited', async () => {
    const rid = randomUUID();
    const res = await raw('{"email": "a@example.com", "idToken": ').set('X-Request-Id', rid);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('MALFORMED_JSON');
    expect(await auditByRequest(owner, rid)).toEqual([]);
  });

  test('when the body has unknown keys (e.g. a tenant), then 400 VALIDATION_FAILED naming the key', async () => {
    const res = await postLogin(t, { email: 'a@example.com', idToken: 'x.y.z', tenantId: 'other' }, uniqueIp());
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
    expect(JSON.stringify(res.body.error.details)).toContain('tenantId');
  });

  test.each([
    ['a number e-mail', { email: 123, idToken: 'a.b.c' }],
    ['an object token', { email: 'a@example.com', idToken: { alg: 'none' } }],
    ['a missing token', { email: 'a@example.com' }],
    ['an empty body', {}],
    ['an array body', [1, 2]],
    ['a non-ASCII e-mail', { email: 'jürgen@example.com', idToken: 'a.b.c' }],
    ['a right-to-left override in the e-mail', { email: 'a\u202e@example.com', idToken: 'a.b.c' }],
    ['an e-mail without a domain', { email: 'root@localhost', idToken: 'a.b.c' }],
    ['a 300-character e-mail', { email: `${'a'.repeat(290)}@example.com`, idToken: 'a.b.c' }],
    ['a 9000-character token', { email: 'a@example.com', idToken: `eyJ${'A'.repeat(9000)}.e.e` }],
  ])('when the body has %s, then 400 VALIDATION_FAILED', async (_name, body) => {
    const rid = randomUUID();
    const res = await postLogin(t, body, uniqueIp(), rid);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
    expect(await auditByRequest(owner, rid)).toEqual([]);
  });

  test('when the e-mail contains a NUL byte, then 400 (never 500)', async () => {
    const res = await raw('{"email":"a\\u0000@example.com","idToken":"a.b.c"}');
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
  });

  test('when the body smuggles a __proto__ key, then 400 VALIDATION_FAILED (unknown key) and nothing is audited', async () => {
    const rid = randomUUID();
    const res = await raw('{"email":"a@example.com","idToken":"a.b.c","__proto__":{"role":"admin"}}').set(
      'X-Request-Id',
      rid,
    );
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
    expect(JSON.stringify(res.body.error.details)).toContain('__proto__');
    expect(await auditByRequest(owner, rid)).toEqual([]);
  });

  test('when the body is larger than the cap, then 413', async () => {
    const res = await raw(JSON.stringify({ email: 'a@example.com', idToken: 'x'.repeat(200 * 1024) }));
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('PAYLOAD_TOO_LARGE');
  });

  test('when the body is not JSON, then 415', async () => {
    const res = await raw('email=a@example.com', 'application/x-www-form-urlencoded');
    expect(res.status).toBe(415);
  });

  test('when the e-mail is an injection string, then it is refused with 401 and stored verbatim in the audit row', async () => {
    const email = `'or'1'='1--${Date.now()}@example.com`;
    const rid = randomUUID();
    const res = await postLogin(t, { email, idToken: issuer.idToken(t.clock, email) }, uniqueIp(), rid);
    expectGeneric401(res);
    const rows = await auditByRequest(owner, rid);
    expect(rows).toEqual([expect.objectContaining({ resource_id: email, error_message: 'user not provisioned' })]);
    const users = await owner.query('SELECT count(*)::int AS n FROM users WHERE email = $1', [email]);
    expect(users.rows[0].n).toBe(0);
  });
});

describe('POST /login — no identity provider', () => {
  test('when no identity provider nor development issuer is configured, then 503 and nothing is audited', async () => {
    const bare = await buildAuthApp(null);
    try {
      const rid = randomUUID();
      const res = await postLogin(bare, { email: 'a@example.com', idToken: 'a.b.c' }, uniqueIp(), rid);
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('SERVICE_UNAVAILABLE');
      expect(await auditByRequest(owner, rid)).toEqual([]);
    } finally {
      await bare.close();
    }
  });
});
