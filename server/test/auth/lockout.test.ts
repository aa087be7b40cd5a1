import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { ownerPool } from '../helpers/app';
import { uniqueEmail } from '../helpers/env';
import {
  auditByRequest,
  auditFor,
  buildAuthApp,
  expectGeneric401,
  postLogin,
  provision,
  uniqueIp,
  type AuthTestApp,
} from './helpers';
import { startIssuer, type TestIssuer } from './oidc-issuer';

let issuer: TestIssuer;
let t: AuthTestApp;
let owner: pg.Pool;

beforeAll(async () => {
  issuer = await startIssuer();
  t = await buildAuthApp(issuer);
  owner = ownerPool();
});
// Failure rows carry the database's time; keep the injected clock on real time between tests.
beforeEach(() => {
  t.clock.set(Date.now());
});
afterAll(async () => {
  await t.close();
  await owner.end();
  await issuer.stop();
});

const badToken = (email: string) => issuer.idToken(t.clock, email, { claims: { aud: 'wrong-audience' } });

describe('brute-force lockout', () => {
  test('when one e-mail fails 10 times within an hour (from different IPs; LOGIN_EMAIL_MAX_FAILURES / LOGIN_EMAIL_LOCKOUT_WINDOW defaults), then the next attempt — even with a valid token — gets 429 with Retry-After, auth.lockout is written once, and refused attempts add no failure rows', async () => {
    const u = await provision(t);
    for (let i = 0; i < 10; i++)
      expectGeneric401(await postLogin(t, { email: u.email, idToken: badToken(u.email) }, uniqueIp()));
    const rid = randomUUID();
    const res = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp(), rid);
    expect(res.status).toBe(429);
    expect(res.body.error).toEqual({
      code: 'RATE_LIMITED',
      message: 'Too many failed login attempts; try again later.',
    });
    const retry = Number(res.headers['retry-after']);
    expect(retry).toBeGreaterThan(3580);
    expect(retry).toBeLessThanOrEqual(3600);
    expect(await auditByRequest(owner, rid)).toEqual([]);
    expect(t.logs.join('\n')).toContain('login locked out (email)');

    const failures = await auditFor(owner, { action: 'auth.login.failure', resourceId: u.email });
    expect(failures).toHaveLength(10);
    const lockouts = await auditFor(owner, { action: 'auth.lockout', resourceId: u.email });
    expect(lockouts).toEqual([expect.objectContaining({ tenant_id: u.tenantId, severity: 'high', result: 'failure' })]);
    expect(lockouts[0]?.after).toMatchObject({ scope: ['email'], failures: 10, windowSeconds: 3600 });
  });

  test('when one IP fails 5 times across different e-mails, then that IP is locked out for every e-mail while the same user from another IP can log in', async () => {
    const ip = uniqueIp();
    for (let i = 0; i < 5; i++) {
      const email = uniqueEmail();
      expectGeneric401(await postLogin(t, { email, idToken: issuer.idToken(t.clock, email) }, ip)); // unprovisioned
    }
    const u = await provision(t);
    const locked = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, ip);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
    const elsewhere = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp());
    expect(elsewhere.status).toBe(200);
    const lockouts = await auditFor(owner, { tenantId: '_unknown', action: 'auth.lockout' });
    expect(lockouts.some((r) => r.ip_address === ip && (r.after?.scope as string[]).includes('ip'))).toBe(true);
  });

  test('when the window moves on (injected clock), then Retry-After shrinks accordingly and the lock lifts once the failures are older than the window', async () => {
    const u = await provision(t);
    const ip = uniqueIp();
    for (let i = 0; i < 5; i++)
      expectGeneric401(await postLogin(t, { email: u.email, idToken: badToken(u.email) }, ip));
    t.clock.advance(5 * 60_000);
    try {
      const mid = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, ip);
      expect(mid.status).toBe(429);
      expect(Number(mid.headers['retry-after'])).toBeGreaterThan(580);
      expect(Number(mid.headers['retry-after'])).toBeLessThanOrEqual(605); // the failures were written a moment after the clock was set
      t.clock.advance(10 * 60_000 + 5_000);
      const after = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, ip);
      expect(after.status).toBe(200);
    } finally {
      t.clock.set(Date.now());
    }
  });

  test('when fewer than 5 failures occurred, then a valid login still succeeds', async () => {
    const u = await provision(t);
    for (let i = 0; i < 4; i++)
      expectGeneric401(await postLogin(t, { email: u.email, idToken: badToken(u.email) }, uniqueIp()));
    expect((await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp())).status).toBe(
      200,
    );
    expect(await auditFor(owner, { action: 'auth.lockout', resourceId: u.email })).toEqual([]);
  });

  test('when LOGIN_MAX_FAILURES / LOGIN_LOCKOUT_WINDOW (network) and LOGIN_EMAIL_MAX_FAILURES / LOGIN_EMAIL_LOCKOUT_WINDOW (e-mail) are set, then they are the limits used', async () => {
    const strict = await buildAuthApp(issuer, {
      env: {
        LOGIN_MAX_FAILURES: '2',
        LOGIN_LOCKOUT_WINDOW: '2m',
        LOGIN_EMAIL_MAX_FAILURES: '3',
        LOGIN_EMAIL_LOCKOUT_WINDOW: '5m',
      },
    });
    try {
      const u = await provision(strict);
      const ip = uniqueIp();
      for (let i = 0; i < 2; i++)
        expectGeneric401(
          await postLogin(
            strict,
            { email: u.email, idToken: issuer.idToken(strict.clock, u.email, { claims: { aud: 'x' } }) },
            ip,
          ),
        );
      const byIp = await postLogin(strict, { email: u.email, idToken: issuer.idToken(strict.clock, u.email) }, ip);
      expect(byIp.status).toBe(429);
      expect(Number(byIp.headers['retry-after'])).toBeLessThanOrEqual(120);
      expectGeneric401(
        await postLogin(
          strict,
          { email: u.email, idToken: issuer.idToken(strict.clock, u.email, { claims: { aud: 'x' } }) },
          uniqueIp(),
        ),
      );
      const byEmail = await postLogin(
        strict,
        { email: u.email, idToken: issuer.idToken(strict.clock, u.email) },
        uniqueIp(),
      );
      expect(byEmail.status).toBe(429);
      expect(Number(byEmail.headers['retry-after'])).toBeGreaterThan(120);
      expect(Number(byEmail.headers['retry-after'])).toBeLessThanOrEqual(300);
    } finally {
      await strict.close();
    }
  });

  test('when the failures were written by another instance (another app on the same database), then this instance counts them too', async () => {
    const other = await buildAuthApp(issuer);
    try {
      const u = await provision(t);
      for (let i = 0; i < 10; i++)
        expectGeneric401(await postLogin(other, { email: u.email, idToken: badToken(u.email) }, uniqueIp()));
      expect(
        (await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp())).status,
      ).toBe(429);
    } finally {
      await other.close();
    }
  });
});
