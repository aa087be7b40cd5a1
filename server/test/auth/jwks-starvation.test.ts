/**
 * JWKS refetch starvation: a stream of tokens with made-up kids must not make a genuine
 * login fail once the real key's cache entry is past its freshness (stale-while-revalidate,
 * separate budgets for known and unknown kids), and such failures never count toward the
 * user's lockout.
 */
import { randomUUID } from 'node:crypto';
import winston from 'winston';
import { systemClock } from '../../src/lib/clock';
import { createRemoteKeyResolver } from '../../src/services/auth/oidc';
import { uniqueEmail } from '../helpers/env';
import { buildAuthApp, postLogin, provision, uniqueIp } from './helpers';
import { makeKey, startIssuer } from './oidc-issuer';

const silent = winston.createLogger({ silent: true });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('JWKS refetch starvation', () => {
  test('when the key cache is past its (short) TTL and bogus kids have used up the unknown-kid budget, then the real kid still resolves (served while it is refreshed)', async () => {
    const issuer = await startIssuer();
    try {
      const resolver = createRemoteKeyResolver({
        issuerUrl: issuer.url,
        clientId: issuer.clientId,
        timeoutMs: 2000,
        production: false,
        clock: systemClock,
        logger: silent,
        cacheMaxAgeMs: 50,
      });
      expect((await resolver.getKey(issuer.key.kid)).key).not.toBeNull();
      await sleep(80);
      for (let i = 0; i < 15; i++) await resolver.getKey(`bogus-${i}-${randomUUID()}`);
      const again = await resolver.getKey(issuer.key.kid);
      expect(again.reason).toBeUndefined();
      expect(again.key?.kid).toBe(issuer.key.kid);
    } finally {
      await issuer.stop();
    }
  });

  test('when bogus kids flood the service after the cache went stale (IDP_JWKS_CACHE_TTL=2s, injected clock), then valid logins keep succeeding, the stale key is refreshed in the background on its own budget, and no extra refetch is spent', async () => {
    const issuer = await startIssuer();
    const t = await buildAuthApp(issuer, { env: { IDP_JWKS_CACHE_TTL: '2s' } });
    try {
      const u = await provision(t);
      const ip = uniqueIp();
      expect((await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, ip)).status).toBe(200);
      t.clock.advance(3000);
      const bogusKey = makeKey('RS256');
      for (let i = 0; i < 20; i++) {
        const email = uniqueEmail(); // lockout is not what this test measures (see lockout-scope.test.ts)
        const res = await postLogin(
          t,
          {
            email,
            idToken: issuer.idToken(t.clock, email, { key: { ...bogusKey, kid: `bogus-${i}-${randomUUID()}` } }),
          },
          uniqueIp(),
        );
        expect(res.status).toBe(401);
      }
      const before = issuer.jwksRequests;
      for (let i = 0; i < 3; i++) {
        const ok = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, ip);
        expect(ok.status).toBe(200);
      }
      // At most one background refresh of the known set for the three logins.
      for (let i = 0; i < 50 && issuer.jwksRequests === before; i++) await sleep(10);
      expect(issuer.jwksRequests - before).toBeLessThanOrEqual(1);
    } finally {
      await t.close();
      await issuer.stop();
    }
  });

  test('when the IdP stops answering while the cache is stale, then a known kid is still served within the stale window, and the failures are logged, not counted', async () => {
    const issuer = await startIssuer();
    const t = await buildAuthApp(issuer, { env: { IDP_JWKS_CACHE_TTL: '2s', IDP_TIMEOUT_MS: '200' } });
    try {
      const u = await provision(t);
      expect(
        (await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp())).status,
      ).toBe(200);
      issuer.hang = true;
      t.clock.advance(5000);
      const res = await postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email) }, uniqueIp());
      expect(res.status).toBe(200);
      for (let i = 0; i < 100 && !t.logs.join('\n').includes('serving a cached signing key'); i++) await sleep(10);
      expect(t.logs.join('\n')).toMatch(/serving a cached signing key/);
    } finally {
      await t.close();
      await issuer.stop();
    }
  });
});
