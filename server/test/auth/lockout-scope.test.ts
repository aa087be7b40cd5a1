/**
 * What the login lockout counts: only correctly signed tokens that then failed a check; the
 * network counter keys IPv6 by /56; a valid token for one's own account presented with another
 * e-mail never counts against that e-mail. And the proxy settings the counters depend on.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { ownerPool } from '../helpers/app';
import { uniqueEmail } from '../helpers/env';
import { auditFor, buildAuthApp, expectGeneric401, postLogin, provision, uniqueIp, type AuthTestApp } from './helpers';
import { makeKey, signJwt, startIssuer, type TestIssuer } from './oidc-issuer';

let issuer: TestIssuer;
let t: AuthTestApp;
let owner: pg.Pool;

beforeAll(async () => {
  issuer = await startIssuer();
  t = await buildAuthApp(issuer);
  owner = ownerPool();
});
beforeEach(() => {
  t.clock.set(Date.now());
});
afterAll(async () => {
  await t.close();
  await owner.end();
  await issuer.stop();
});

/** A /56 no other test uses, and an address inside it. */
function uniqueV6Net(): (host: number) => string {
  const b = randomBytes(3).toString('hex');
  return (host) =>
    `2001:db8:${b.slice(0, 4)}:${b.slice(4, 6)}${(host % 256).toString(16).padStart(2, '0')}::${host + 1}`;
}

describe('what the login lockout counts', () => {
  test('when 20 junk tokens (a.b.c, forged signatures, unknown kids, alg none) arrive for one e-mail from one IP, then each is a 401, none counts, and the real user then logs in from that IP', async () => {
    const u = await provision(t);
    const ip = uniqueIp();
    const stranger = makeKey('RS256');
    const junk = [
      'a.b.c',
      issuer.idToken(t.clock, u.email, { key: { ...stranger, kid: issuer.key.kid } }), // forged with the real kid
      issuer.idToken(t.clock, u.email, { key: stranger }), // unknown kid
      signJwt({ alg: 'none', kid: issuer.key.kid }, issuer.claims(t.clock, u.email), '', 'none'),
    ];
    for (let i = 0; i < 20; i++)
      expectGeneric401(await postLogin(t, { email: u.email, idToken: junk[i % junk.length] }, ip));
    const ok = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, ip);
    expect(ok.status).toBe(200);
    const failures = await auditFor(owner, { action: 'auth.login.failure', resourceId: u.email });
    expect(failures.length).toBeGreaterThan(0);
    for (const f of failures) expect(f.after).toMatchObject({ lockout: { ip: false, email: false } });
    expect(await auditFor(owner, { action: 'auth.lockout', resourceId: u.email })).toEqual([]);
  });

  test('when correctly signed tokens fail a check (wrong audience, unverified e-mail), then they count for the network and the e-mail', async () => {
    const u = await provision(t);
    const ip = uniqueIp();
    expectGeneric401(
      await postLogin(
        t,
        { email: u.email, idToken: issuer.idToken(t.clock, u.email, { claims: { aud: 'other-app' } }) },
        ip,
      ),
    );
    expectGeneric401(
      await postLogin(
        t,
        { email: u.email, idToken: issuer.idToken(t.clock, u.email, { claims: { email_verified: false } }) },
        ip,
      ),
    );
    const failures = await auditFor(owner, { action: 'auth.login.failure', resourceId: u.email });
    expect(failures).toHaveLength(2);
    for (const f of failures) expect(f.after).toMatchObject({ lockout: { ip: true, email: true } });
  });

  test('when counted failures come from five addresses of one IPv6 /56, then a sixth address of that /56 is locked out while another /56 is not', async () => {
    const net = uniqueV6Net();
    for (let i = 0; i < 5; i++) {
      const email = uniqueEmail();
      expectGeneric401(await postLogin(t, { email, idToken: issuer.idToken(t.clock, email) }, net(i * 40))); // unprovisioned: counted
    }
    const u = await provision(t);
    const locked = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, net(250));
    expect(locked.status).toBe(429);
    const other = uniqueV6Net();
    expect((await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, other(1))).status).toBe(
      200,
    );
  });

  test("when someone presents a valid token for their own account with a victim's e-mail, then it counts against their network only, never against the victim's e-mail", async () => {
    const victim = await provision(t);
    for (let i = 0; i < 12; i++) {
      const mine = uniqueEmail('attacker');
      expectGeneric401(await postLogin(t, { email: victim.email, idToken: issuer.idToken(t.clock, mine) }, uniqueIp()));
    }
    const failures = await auditFor(owner, { action: 'auth.login.failure', resourceId: victim.email });
    expect(failures).toHaveLength(12);
    for (const f of failures) expect(f.after).toMatchObject({ lockout: { ip: true, email: false } });
    expect(
      (await postLogin(t, { email: victim.email, idToken: issuer.idToken(t.clock, victim.email) }, uniqueIp())).status,
    ).toBe(200);
  });
});

describe('proxy settings', () => {
  test('when requests arrive with X-Forwarded-For but TRUST_PROXY is unset, then one warning is logged (not one per request)', async () => {
    const plain = await buildAuthApp(issuer, { env: { TRUST_PROXY: undefined } });
    try {
      for (let i = 0; i < 3; i++) await postLogin(plain, { email: 'x@example.com', idToken: 'a.b.c' }, uniqueIp());
      const warnings = plain.logs.filter((l) => l.includes('X-Forwarded-For but TRUST_PROXY is not set'));
      expect(warnings).toHaveLength(1);
    } finally {
      await plain.close();
    }
  });
});
