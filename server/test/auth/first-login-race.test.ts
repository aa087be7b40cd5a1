/** The first login binds the IdP subject; concurrent first logins with different subjects leave exactly one bound and refuse the others. */
import type pg from 'pg';
import { ownerPool } from '../helpers/app';
import { auditFor, buildAuthApp, postLogin, provision, uniqueIp, type AuthTestApp } from './helpers';
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

describe('first-login subject binding race', () => {
  test('when six first logins with six different subs race for one user, then exactly one succeeds, its sub is the one bound, and the others are refused and audited', async () => {
    for (let round = 0; round < 3; round++) {
      const u = await provision(t);
      const subs = Array.from({ length: 6 }, (_, i) => `auth0|race-${round}-${i}`);
      const results = await Promise.all(
        subs.map((sub) =>
          postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email, { claims: { sub } }) }, uniqueIp()),
        ),
      );
      const winners = results.map((r, i) => ({ status: r.status, sub: subs[i] })).filter((r) => r.status === 200);
      expect(results.map((r) => r.status).sort()).toEqual([200, 401, 401, 401, 401, 401]);
      const { rows } = await owner.query('SELECT auth0_sub FROM users WHERE id = $1', [u.id]);
      expect(rows).toEqual([{ auth0_sub: winners[0]?.sub }]);
      const sessions = await owner.query('SELECT count(*)::int AS n FROM sessions WHERE user_id = $1', [u.id]);
      expect(sessions.rows[0].n).toBe(1);
      const failures = await auditFor(owner, {
        tenantId: u.tenantId,
        action: 'auth.login.failure',
        resourceId: u.email,
      });
      expect(failures).toHaveLength(5);
      for (const f of failures) expect(f.error_message).toMatch(/subject differs/);
    }
  });

  test('when two first logins race with the same sub (two tokens), then both succeed', async () => {
    const u = await provision(t);
    const results = await Promise.all(
      [0, 1].map(() =>
        postLogin(
          t,
          { email: u.email, idToken: issuer.idToken(t.clock, u.email, { claims: { sub: 'auth0|same' } }) },
          uniqueIp(),
        ),
      ),
    );
    expect(results.map((r) => r.status)).toEqual([200, 200]);
  });
});
