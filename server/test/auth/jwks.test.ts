import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import request from 'supertest';
import { ownerPool } from '../helpers/app';
import { uniqueEmail } from '../helpers/env';
import { auditByRequest, buildAuthApp, expectGeneric401, postLogin, provision, uniqueIp } from './helpers';
import { makeKey, startIssuer } from './oidc-issuer';

let owner: pg.Pool;
beforeAll(() => {
  owner = ownerPool();
});
afterAll(async () => {
  await owner.end();
});

describe('identity provider keys (discovery + JWKS)', () => {
  test('when a token arrives with an unknown kid and the IdP then rotates to that key, then the first login is refused and the next one succeeds with the key fetched on demand', async () => {
    const issuer = await startIssuer();
    const t = await buildAuthApp(issuer);
    try {
      const u = await provision(t);
      expect(
        (await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp())).status,
      ).toBe(200);
      const fetchesBefore = issuer.jwksRequests;

      const next = makeKey('RS256');
      const rid = randomUUID();
      const early = await postLogin(
        t,
        { email: u.email, idToken: issuer.idToken(t.clock, u.email, { key: next }) },
        uniqueIp(),
        rid,
      );
      expectGeneric401(early);
      expect((await auditByRequest(owner, rid))[0]?.error_message).toMatch(/unknown key id/);
      expect(issuer.jwksRequests).toBe(fetchesBefore + 1);

      // Rotation at the IdP: the new key is published and becomes the signing key.
      issuer.published.push(next);
      issuer.key = next;
      const after = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp());
      expect(after.status).toBe(200);
      expect(issuer.jwksRequests).toBe(fetchesBefore + 2);
    } finally {
      await t.close();
      await issuer.stop();
    }
  });

  test('when a flood of tokens with bogus kids arrives, then the JWKS is refetched at most 10 times a minute and known keys keep working from the cache', async () => {
    const issuer = await startIssuer();
    const t = await buildAuthApp(issuer);
    try {
      const u = await provision(t);
      expect(
        (await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp())).status,
      ).toBe(200);
      const base = issuer.jwksRequests;
      const rids: string[] = [];
      const bogusKey = makeKey('RS256');
      for (let i = 0; i < 30; i++) {
        const rid = randomUUID();
        rids.push(rid);
        const bogus = { ...bogusKey, kid: `bogus-${i}-${randomUUID()}` };
        const email = uniqueEmail(); // distinct e-mails and IPs: the brute-force lockout is not what this test measures
        const res = await postLogin(
          t,
          { email, idToken: issuer.idToken(t.clock, email, { key: bogus }) },
          uniqueIp(),
          rid,
        );
        expect(res.status).toBe(401);
      }
      expect(issuer.jwksRequests - base).toBeLessThanOrEqual(10);
      const last = await auditByRequest(owner, rids[29] as string);
      expect(last[0]?.error_message).toMatch(/rate-limited/);

      const again = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp());
      expect(again.status).toBe(200);
    } finally {
      await t.close();
      await issuer.stop();
    }
  });

  test('when the IdP becomes unreachable after its key was cached, then logins keep working from the cache without contacting it', async () => {
    const issuer = await startIssuer();
    const t = await buildAuthApp(issuer, { env: { IDP_TIMEOUT_MS: '300' } });
    try {
      const u = await provision(t);
      expect(
        (await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp())).status,
      ).toBe(200);
      const requests = issuer.jwksRequests + issuer.discoveryRequests;
      issuer.hang = true;
      const res = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp());
      expect(res.status).toBe(200);
      expect(issuer.jwksRequests + issuer.discoveryRequests).toBe(requests);
    } finally {
      await t.close();
      await issuer.stop();
    }
  });

  test('when the IdP does not answer within IDP_TIMEOUT_MS, then login answers 503 without a failure row, retries wait 10 s on the injected clock, and recovery is picked up', async () => {
    const issuer = await startIssuer();
    issuer.hang = true;
    const t = await buildAuthApp(issuer, { env: { IDP_TIMEOUT_MS: '300' } });
    try {
      const u = await provision(t);
      const rid = randomUUID();
      const res = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp(), rid);
      expect(res.status).toBe(503);
      expect(res.body.error).toEqual({
        code: 'SERVICE_UNAVAILABLE',
        message: 'The identity provider is unavailable; try again later.',
      });
      expect(await auditByRequest(owner, rid)).toEqual([]);
      expect(t.logs.join('\n')).toMatch(/no complete answer from 127\.0\.0\.1:\d+ within 300 ms/);

      issuer.hang = false;
      const soon = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp());
      expect(soon.status).toBe(503); // still inside the retry delay: the IdP is not asked again
      expect(issuer.discoveryRequests).toBe(0);

      t.clock.advance(11_000);
      const later = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp());
      expect(later.status).toBe(200);
      expect(issuer.discoveryRequests).toBe(1);
    } finally {
      await t.close();
      await issuer.stop();
    }
  });

  test('when the discovery document names another issuer, then login answers 503 (misconfiguration), not 401', async () => {
    const issuer = await startIssuer();
    issuer.discoveryOverrides = { issuer: 'https://someone-else.example.com/' };
    const t = await buildAuthApp(issuer);
    try {
      const u = await provision(t);
      const res = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp());
      expect(res.status).toBe(503);
      expect(t.logs.join('\n')).toMatch(/does not equal the configured issuer/);
      expect(issuer.jwksRequests).toBe(0);
    } finally {
      await t.close();
      await issuer.stop();
    }
  });

  test('when discovery points the JWKS at plain http on a remote host, then it is refused without connecting', async () => {
    const issuer = await startIssuer();
    issuer.discoveryOverrides = { jwks_uri: 'http://idp.example.com/.well-known/jwks.json' };
    const t = await buildAuthApp(issuer);
    try {
      const u = await provision(t);
      const res = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp());
      expect(res.status).toBe(503);
      expect(t.logs.join('\n')).toMatch(/jwks_uri must use https/);
    } finally {
      await t.close();
      await issuer.stop();
    }
  });

  test('when the issuer publishes only RS256, then a PS256 token from one of its keys is refused', async () => {
    const issuer = await startIssuer({ algorithms: ['RS256', 'HS256'] });
    const ps = makeKey('PS256');
    issuer.published.push(ps);
    const t = await buildAuthApp(issuer);
    try {
      const u = await provision(t);
      const rid = randomUUID();
      const res = await postLogin(
        t,
        { email: u.email, idToken: issuer.idToken(t.clock, u.email, { key: ps }) },
        uniqueIp(),
        rid,
      );
      expectGeneric401(res);
      expect((await auditByRequest(owner, rid))[0]?.error_message).toMatch(/PS256 is not published by the issuer/);
      // HS256 is published by the IdP but never accepted.
      const hs = await postLogin(
        t,
        { email: u.email, idToken: issuer.idToken(t.clock, u.email, { header: { alg: 'HS256' } }) },
        uniqueIp(),
      );
      expectGeneric401(hs);
    } finally {
      await t.close();
      await issuer.stop();
    }
  });

  test('when the service starts, then discovery and keys are warmed, readiness lists the identity provider as a non-critical dependency, and readiness probes do not reach the IdP again', async () => {
    const issuer = await startIssuer();
    const t = await buildAuthApp(issuer);
    try {
      await t.composition.start();
      expect(issuer.discoveryRequests).toBe(1);
      expect(issuer.jwksRequests).toBe(1);
      const ready = await request(t.app).get('/api/health/ready');
      expect(ready.status).toBe(200);
      expect(ready.body.dependencies['identity-provider']).toMatchObject({ status: 'up', critical: false });
      for (let i = 0; i < 5; i++) expect((await request(t.app).get('/api/health/ready')).status).toBe(200);
      expect(issuer.discoveryRequests + issuer.jwksRequests).toBe(2);
    } finally {
      await t.close();
      await issuer.stop();
    }
  });

  test('when the IdP is down, then readiness reports it down but stays 200 (logins wait, sessions keep working), and probes retry it at most every 10 s', async () => {
    const issuer = await startIssuer();
    issuer.hang = true;
    const t = await buildAuthApp(issuer, { env: { IDP_TIMEOUT_MS: '200' } });
    try {
      const ready = await request(t.app).get('/api/health/ready');
      expect(ready.status).toBe(200);
      expect(ready.body.dependencies['identity-provider']).toMatchObject({ status: 'down', critical: false });
      await request(t.app).get('/api/health/ready');
      issuer.hang = false;
      await request(t.app).get('/api/health/ready');
      expect(issuer.discoveryRequests).toBe(0); // inside the retry delay: not asked again
      t.clock.advance(11_000);
      const later = await request(t.app).get('/api/health/ready');
      expect(later.body.dependencies['identity-provider']).toMatchObject({ status: 'up' });
    } finally {
      await t.close();
      await issuer.stop();
    }
  });
});
