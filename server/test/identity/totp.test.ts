/**
 * TOTP step-up (CONTRACT §11): RFC 6238 Appendix B vectors, enrollment with an encrypted secret
 * bound to tenant and user, single-use codes, ±1 step, lockout after five wrong codes,
 * recovery codes, and the step-up rule on guarded routes.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import request from 'supertest';
import { base32Decode, base32Encode, hotp, matchTotp, totp } from '../../src/lib/totp';
import { ownerPool } from '../helpers/app';
import { loginAs } from '../helpers/auth';
import { auditByRequest, buildAuthApp, type AuthTestApp } from '../auth/helpers';
import { enableTotp, SECURITY, secretOf, stepUp } from './helpers';

describe('RFC 6238 Appendix B test vectors', () => {
  const seeds = {
    sha1: Buffer.from('12345678901234567890'),
    sha256: Buffer.from('12345678901234567890123456789012'),
    sha512: Buffer.from('1234567890123456789012345678901234567890123456789012345678901234'),
  };
  test.each([
    [59, '94287082', '46119246', '90693936'],
    [1111111109, '07081804', '68084774', '25091201'],
    [1111111111, '14050471', '67062674', '99943326'],
    [1234567890, '89005924', '91819424', '93441116'],
    [2000000000, '69279037', '90698825', '38618901'],
    [20000000000, '65353130', '77737706', '47863826'],
  ])('at T=%d the 8-digit codes are SHA-1 %s, SHA-256 %s, SHA-512 %s', (t, s1, s256, s512) => {
    expect(totp(seeds.sha1, t * 1000, 8, 'sha1')).toBe(s1);
    expect(totp(seeds.sha256, t * 1000, 8, 'sha256')).toBe(s256);
    expect(totp(seeds.sha512, t * 1000, 8, 'sha512')).toBe(s512);
  });
  test('RFC 4226 Appendix D HOTP values and base32 round trips', () => {
    const d = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
    d.forEach((v, i) => expect(hotp(seeds.sha1, i)).toBe(v));
    expect(base32Encode(Buffer.from('foobar'))).toBe('MZXW6YTBOI');
    expect(base32Decode('MZXW6YTBOI').toString()).toBe('foobar');
  });
  test('±1 step of skew is accepted, two steps are not, and non-digit input never matches', () => {
    const now = 1_700_000_000_000;
    const step = Math.floor(now / 30_000);
    expect(matchTotp(seeds.sha1, hotp(seeds.sha1, step - 1), now)).toBe(step - 1);
    expect(matchTotp(seeds.sha1, hotp(seeds.sha1, step + 1), now)).toBe(step + 1);
    expect(matchTotp(seeds.sha1, hotp(seeds.sha1, step - 2), now)).toBeNull();
    expect(matchTotp(seeds.sha1, '12345a', now)).toBeNull();
  });
});

describe('TOTP enrollment and step-up over HTTP', () => {
  let t: AuthTestApp;
  let owner: pg.Pool;
  beforeAll(async () => {
    t = await buildAuthApp(null);
    owner = ownerPool();
  });
  afterAll(async () => {
    await t.close();
    await owner.end();
  });
  const post = (path: string, auth: string, body: unknown, rid = randomUUID()) =>
    request(t.app)
      .post(`${SECURITY}${path}`)
      .set('Authorization', auth)
      .set('X-Request-Id', rid)
      .send(body as object);

  test('when a user enrolls, then an otpauth URI comes back and the database holds the secret only encrypted, bound to tenant and user', async () => {
    const l = await loginAs(t);
    const res = await post('/mfa/totp/enroll', l.authorization, {});
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const uri = new URL(res.body.otpauthUri);
    expect(uri.protocol).toBe('otpauth:');
    expect(Object.fromEntries(uri.searchParams)).toMatchObject({
      issuer: 'Fleet Security',
      algorithm: 'SHA1',
      digits: '6',
      period: '30',
    });
    const b32 = uri.searchParams.get('secret') as string;
    expect(base32Decode(b32)).toHaveLength(20);
    const row = (await owner.query('SELECT secret_sealed, activated_at FROM mfa_totp WHERE user_id = $1', [l.userId]))
      .rows[0];
    expect(row.activated_at).toBeNull();
    expect(row.secret_sealed).not.toContain(b32);
    expect(row.secret_sealed).not.toContain(base32Decode(b32).toString('base64'));

    // The sealed secret moved to another user does not open (AAD): their codes are refused.
    const other = await loginAs(t, { tenantId: l.tenantId });
    const o = await enableTotp(t, other);
    await owner.query('UPDATE mfa_totp SET secret_sealed = $1 WHERE user_id = $2', [row.secret_sealed, other.userId]);
    t.clock.advance(30_000);
    const rid = randomUUID();
    const r = await post('/mfa/step-up', other.authorization, { code: o.code() }, rid);
    expect(r.status).toBe(400);
    expect((await auditByRequest(owner, rid)).map((x) => [x.action, x.error_message])).toEqual([
      ['auth.mfa.failure', expect.stringMatching(/could not be decrypted/)],
    ]);
  });

  test('when activating with a wrong code, then 400; with the right one, then ten recovery codes stored only as keyed hashes', async () => {
    const l = await loginAs(t);
    const e = await post('/mfa/totp/enroll', l.authorization, {});
    const secret = secretOf(e.body.otpauthUri);
    const wrong = await post('/mfa/totp/activate', l.authorization, { code: totp(secret, t.clock.now() + 120_000) });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toMatchObject({
      code: 'VALIDATION_FAILED',
      details: [{ path: 'body.code', code: 'invalid_code' }],
    });
    const ok = await post('/mfa/totp/activate', l.authorization, { code: totp(secret, t.clock.now()) });
    expect(ok.status).toBe(200);
    expect(ok.body.recoveryCodes).toHaveLength(10);
    for (const c of ok.body.recoveryCodes) expect(c).toMatch(/^[a-z2-7]{5}-[a-z2-7]{5}$/);
    const hashes = (
      await owner.query('SELECT code_hash FROM mfa_recovery_codes WHERE user_id = $1', [l.userId])
    ).rows.map((r) => r.code_hash as string);
    expect(hashes).toHaveLength(10);
    for (const h of hashes) for (const c of ok.body.recoveryCodes) expect(h).not.toContain(c.replace('-', ''));
    expect((await post('/mfa/totp/enroll', l.authorization, {})).status).toBe(409);
    expect((await post('/mfa/totp/activate', l.authorization, { code: totp(secret, t.clock.now()) })).status).toBe(409);
  });

  test('when stepping up, then a fresh token with amr ["otp"] and auth_time for the same session; the same code is refused the second time (replay)', async () => {
    const l = await loginAs(t);
    const u = await enableTotp(t, l);
    // The activation code's step is spent.
    expect((await post('/mfa/step-up', l.authorization, { code: u.code() })).status).toBe(400);
    t.clock.advance(30_000);
    const code = u.code();
    const rid = randomUUID();
    const res = await post('/mfa/step-up', l.authorization, { code }, rid);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      success: true,
      tokenType: 'Bearer',
      amr: ['otp'],
      authTime: Math.floor(t.clock.now() / 1000),
    });
    const p = JSON.parse(Buffer.from(res.body.token.split('.')[1], 'base64url').toString());
    expect(p).toMatchObject({
      sid: l.sessionId,
      sub: l.userId,
      amr: ['otp'],
      auth_time: Math.floor(t.clock.now() / 1000),
    });
    expect((await request(t.app).get(`${SECURITY}/user`).set('Authorization', `Bearer ${res.body.token}`)).status).toBe(
      200,
    );
    expect((await auditByRequest(owner, rid)).map((r) => r.action)).toEqual(['auth.mfa.step_up']);
    const replay = await post('/mfa/step-up', l.authorization, { code });
    expect(replay.status).toBe(400);
    // The previous step's code (within ±1) is older than the last accepted one: refused too.
    expect((await post('/mfa/step-up', l.authorization, { code: u.code(t.clock.now() - 30_000) })).status).toBe(400);
    t.clock.advance(30_000);
    // One step of skew ahead is accepted.
    expect((await post('/mfa/step-up', l.authorization, { code: u.code(t.clock.now() + 30_000) })).status).toBe(200);
  });

  test('when five wrong codes are sent, then step-up is locked for 15 minutes (even the right code: 429 with Retry-After), then works again', async () => {
    const l = await loginAs(t);
    const u = await enableTotp(t, l);
    t.clock.advance(30_000);
    const right = u.code();
    const wrong = right === '000000' ? '111111' : '000000';
    for (let i = 0; i < 5; i++) expect((await post('/mfa/step-up', l.authorization, { code: wrong })).status).toBe(400);
    const rows = await owner.query("SELECT action FROM audit_logs WHERE user_id = $1 AND action = 'auth.mfa.locked'", [
      l.userId,
    ]);
    expect(rows.rows).toHaveLength(1);
    const lockedRes = await post('/mfa/step-up', l.authorization, { code: right });
    expect(lockedRes.status).toBe(429);
    expect(lockedRes.body.error.code).toBe('RATE_LIMITED');
    expect(Number(lockedRes.headers['retry-after'])).toBeGreaterThan(800);
    t.clock.advance(15 * 60_000);
    // The access token ran out meanwhile (JWT_EXPIRES_IN 15m): a fresh one for the same session.
    const fresh = t.composition.services.tokens.issue({
      userId: l.userId,
      sessionId: l.sessionId,
      tenantId: l.tenantId,
    }).token;
    expect((await post('/mfa/step-up', `Bearer ${fresh}`, { code: u.code() })).status).toBe(200);
  });

  test('when a recovery code is used, then it steps up once (amr ["mfa"]) and is refused the second time', async () => {
    const l = await loginAs(t);
    const u = await enableTotp(t, l);
    const rc = u.recoveryCodes[3] as string;
    const first = await post('/mfa/step-up', l.authorization, { code: rc.toUpperCase() });
    expect(first.status).toBe(200);
    expect(first.body.amr).toEqual(['mfa']);
    expect((await post('/mfa/step-up', l.authorization, { code: rc })).status).toBe(400);
    expect(
      (
        await owner.query(
          'SELECT count(*)::int AS n FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NOT NULL',
          [l.userId],
        )
      ).rows[0].n,
    ).toBe(1);
  });

  test('when step-up is attempted without TOTP, then 409 explaining how to enroll', async () => {
    const l = await loginAs(t);
    const res = await post('/mfa/step-up', l.authorization, { code: '123456' });
    expect(res.status).toBe(409);
    expect(res.body.error.message).toMatch(/mfa\/totp\/enroll/);
  });

  test.each([
    ['letters', { code: 'abcdef' }],
    ['a number', { code: 123456 }],
    ['too long', { code: '1234567' }],
    ['an extra key', { code: '123456', admin: true }],
    ['nothing', {}],
    ['an injection string', { code: "1' OR '1'='1" }],
  ])('when step-up gets %s, then 400 VALIDATION_FAILED', async (_n, body) => {
    const l = await loginAs(t);
    const res = await post('/mfa/step-up', l.authorization, body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
  });

  test('when the body is malformed JSON or no token is sent, then 400 MALFORMED_JSON / 401', async () => {
    const l = await loginAs(t);
    const bad = await request(t.app)
      .post(`${SECURITY}/mfa/step-up`)
      .set('Authorization', l.authorization)
      .set('Content-Type', 'application/json')
      .send('{"code":');
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('MALFORMED_JSON');
    expect((await request(t.app).post(`${SECURITY}/mfa/totp/enroll`).send({})).status).toBe(401);
  });
});

describe('routes marked step-up', () => {
  let t: AuthTestApp;
  let strict: AuthTestApp;
  beforeAll(async () => {
    t = await buildAuthApp(null);
    strict = await buildAuthApp(null, { env: { MFA_REQUIRED_FOR_ADMINS: 'true' } });
  });
  afterAll(async () => {
    await t.close();
    await strict.close();
  });
  const createKey = (app: AuthTestApp, auth: string) =>
    request(app.app)
      .post(`${SECURITY}/api-keys`)
      .set('Authorization', auth)
      .send({ name: 'ci', scopes: ['audit:write'] });

  test('when an admin has TOTP, then API key creation needs a step-up under 10 minutes old: 403 STEP_UP_REQUIRED before, 201 with the step-up token, 403 again after 10 minutes', async () => {
    const l = await loginAs(t, { role: 'admin' });
    const u = await enableTotp(t, l);
    const before = await createKey(t, l.authorization);
    expect(before.status).toBe(403);
    expect(before.body.error.code).toBe('STEP_UP_REQUIRED');
    expect(before.body.error.message).toMatch(/mfa\/step-up/);
    const token = await stepUp(t, l, u);
    expect((await createKey(t, `Bearer ${token}`)).status).toBe(201);
    t.clock.advance(10 * 60_000);
    const late = await createKey(t, `Bearer ${token}`);
    expect(late.status).toBe(403);
    expect(late.body.error.code).toBe('STEP_UP_REQUIRED');
  });

  test('when an admin has no TOTP, then API key creation works without step-up; with MFA_REQUIRED_FOR_ADMINS=true it is 403 saying how to enroll', async () => {
    const a = await loginAs(t, { role: 'admin' });
    expect((await createKey(t, a.authorization)).status).toBe(201);
    const b = await loginAs(strict, { role: 'admin' });
    const res = await createKey(strict, b.authorization);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('STEP_UP_REQUIRED');
    expect(res.body.error.message).toMatch(/mfa\/totp\/enroll.*mfa\/totp\/activate.*mfa\/step-up/);
    const u = await enableTotp(strict, b);
    expect((await createKey(strict, `Bearer ${await stepUp(strict, b, u)}`)).status).toBe(201);
  });

  test('when the master key rotation is asked by an admin with TOTP, then it needs a step-up first', async () => {
    // Since CONTRACT §9 the master key routes are for platform admins only (admins of PLATFORM_TENANT).
    const l = await loginAs(t, { role: 'admin', tenantId: t.composition.config.platformTenant });
    const u = await enableTotp(t, l);
    const res = await request(t.app)
      .post(`${SECURITY}/master-key/rotate`)
      .set('Authorization', l.authorization)
      .send({});
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('STEP_UP_REQUIRED');
    const after = await request(t.app)
      .post(`${SECURITY}/master-key/rotate`)
      .set('Authorization', `Bearer ${await stepUp(t, l, u)}`)
      .send({});
    expect(after.body.error?.code).not.toBe('STEP_UP_REQUIRED');
  });

  test('when a user removes their TOTP, then it needs a step-up; after removal no step-up is asked and an admin can reset another user', async () => {
    const l = await loginAs(t, { role: 'admin' });
    const u = await enableTotp(t, l);
    const del = (auth: string, path = '/mfa/totp') =>
      request(t.app).delete(`${SECURITY}${path}`).set('Authorization', auth);
    expect((await del(l.authorization)).body.error.code).toBe('STEP_UP_REQUIRED');
    expect((await del(`Bearer ${await stepUp(t, l, u)}`)).status).toBe(200);
    expect((await createKey(t, l.authorization)).status).toBe(201);
    expect((await del(l.authorization)).status).toBe(404);

    const member = await loginAs(t, { tenantId: l.tenantId });
    await enableTotp(t, member);
    expect((await del(l.authorization, `/mfa/totp/users/${member.userId}`)).status).toBe(200);
    expect(
      (
        await request(t.app)
          .post(`${SECURITY}/mfa/step-up`)
          .set('Authorization', member.authorization)
          .send({ code: '123456' })
      ).status,
    ).toBe(409);
    const stranger = await loginAs(t, { role: 'admin' });
    expect((await del(stranger.authorization, `/mfa/totp/users/${l.userId}`)).status).toBe(404);
    expect((await del(member.authorization, `/mfa/totp/users/${l.userId}`)).status).toBe(403);
  });
});
