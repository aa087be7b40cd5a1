/**
 * Unauthenticated failures are still audited, but repeated identical ones (same action, reason
 * and source IP) within 60 s become one row plus one follow-up row with the count.
 */
import type pg from 'pg';
import request from 'supertest';
import { ownerPool } from '../helpers/app';
import { uniqueEmail } from '../helpers/env';
import { buildAuthApp, postLogin, provision, SECURITY, uniqueIp, type AuthTestApp } from './helpers';
import { startIssuer, type TestIssuer } from './oidc-issuer';

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

async function rowsFromIp(ip: string, action: string) {
  const { rows } = await owner.query<{
    tenant_id: string;
    resource_id: string | null;
    error_message: string;
    after: Record<string, unknown> | null;
    request_id: string | null;
  }>(
    'SELECT tenant_id, resource_id, error_message, after, request_id FROM audit_logs WHERE ip_address = $1::inet AND action = $2 ORDER BY id',
    [ip, action],
  );
  return rows;
}

describe('aggregated unauthenticated failures', () => {
  test('when 50 identical junk logins come from one IP, then each is a 401, one row is written at once, and after the window one follow-up row counts the other 49', async () => {
    const ip = uniqueIp();
    const email = uniqueEmail();
    for (let i = 0; i < 50; i++) expect((await postLogin(t, { email, idToken: 'a.b.c' }, ip)).status).toBe(401);
    expect(await rowsFromIp(ip, 'auth.login.failure')).toHaveLength(1);
    t.clock.advance(61_000);
    await t.composition.services.failureAudit.flush();
    const rows = await rowsFromIp(ip, 'auth.login.failure');
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({
      tenant_id: '_unknown',
      resource_id: email,
      after: { lockout: { ip: false, email: false } },
    });
    expect(rows[1]).toMatchObject({
      tenant_id: '_unknown',
      resource_id: email,
      request_id: null,
      after: { aggregated: true, count: 49, windowSeconds: 60, resourceIds: [email] },
    });
    expect(rows[1]?.error_message).toMatch(/repeated 49 more times within 60 s/);
    // The next window starts afresh with an immediate row.
    expect((await postLogin(t, { email, idToken: 'a.b.c' }, ip)).status).toBe(401);
    expect(await rowsFromIp(ip, 'auth.login.failure')).toHaveLength(3);
  });

  test('when junk from one IP varies the e-mail, then it is still one key (action, reason, IP) and the follow-up lists up to 10 of the e-mails', async () => {
    const ip = uniqueIp();
    for (let i = 0; i < 20; i++) await postLogin(t, { email: uniqueEmail(), idToken: 'a.b.c' }, ip);
    await t.composition.services.failureAudit.flush({ all: true });
    const rows = await rowsFromIp(ip, 'auth.login.failure');
    expect(rows).toHaveLength(2);
    expect(rows[1]?.after).toMatchObject({ aggregated: true, count: 19 });
    expect((rows[1]?.after?.resourceIds as string[]).length).toBe(10);
    expect(rows[1]?.resource_id).toBeNull();
  });

  test('when 50 forged access tokens and 50 unknown refresh tokens come from one IP, then each kind is one row plus one count row', async () => {
    const ip = uniqueIp();
    const forged = `${Buffer.from('{"alg":"HS256","kid":"x"}').toString('base64url')}.${Buffer.from('{}').toString('base64url')}.sig`;
    for (let i = 0; i < 50; i++) {
      expect(
        (
          await request(t.app)
            .get(`${SECURITY}/user`)
            .set('X-Forwarded-For', ip)
            .set('Authorization', `Bearer ${forged}`)
        ).status,
      ).toBe(401);
      expect(
        (
          await request(t.app)
            .post(`${SECURITY}/refresh`)
            .set('X-Forwarded-For', ip)
            .send({ refreshToken: 'A'.repeat(43) })
        ).status,
      ).toBe(401);
    }
    await t.composition.services.failureAudit.flush({ all: true });
    const rejected = await rowsFromIp(ip, 'auth.token.rejected');
    expect(rejected).toHaveLength(4);
    const counts = rejected.filter((r) => r.after?.aggregated).map((r) => r.after?.count);
    expect(counts).toEqual([49, 49]);
  });

  test('when correctly signed tokens fail (counted toward the lockout), then each still gets its own row', async () => {
    const u = await provision(t);
    const ip = uniqueIp();
    for (let i = 0; i < 3; i++)
      await postLogin(
        t,
        { email: u.email, idToken: issuer.idToken(t.clock, u.email, { claims: { aud: 'other' } }) },
        ip,
      );
    await t.composition.services.failureAudit.flush({ all: true });
    expect(await rowsFromIp(ip, 'auth.login.failure')).toHaveLength(3);
  });
});
