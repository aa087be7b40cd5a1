/**
 * refreshTokenDelivery: where login and refresh put the refresh token. "cookie" keeps it out of
 * the JSON (browsers: no script can read it), "body" sets no cookie (native apps, servers);
 * without the option a request with an Origin header (a browser) gets the cookie only.
 */
import request from 'supertest';
import { buildAuthApp, postLogin, provision, SECURITY, uniqueIp, type AuthTestApp } from './helpers';
import { startIssuer, type TestIssuer } from './oidc-issuer';

let issuer: TestIssuer;
let t: AuthTestApp;

beforeAll(async () => {
  issuer = await startIssuer();
  t = await buildAuthApp(issuer);
});
afterAll(async () => {
  await t.close();
  await issuer.stop();
});

const cookies = (res: request.Response): string[] => ([] as string[]).concat(res.headers['set-cookie'] ?? []);
const refreshCookie = (res: request.Response): string | undefined =>
  cookies(res).find((c) => c.startsWith('fleet_refresh='));

async function login(extra: object, origin?: string): Promise<request.Response> {
  const u = await provision(t);
  const r = postLogin(t, { email: u.email, idToken: issuer.idToken(t.clock, u.email), ...extra }, uniqueIp());
  return origin ? r.set('Origin', origin) : r;
}

async function csrfPair(): Promise<{ token: string; cookie: string }> {
  const res = await request(t.app).get(`${SECURITY}/csrf-token`);
  return {
    token: res.body.csrfToken,
    cookie: cookies(res)
      .map((c) => c.split(';')[0])
      .join('; '),
  };
}

describe('refreshTokenDelivery at login', () => {
  test('when "cookie" is asked, then the JSON has no refreshToken and the HttpOnly cookie carries it; a cookie refresh keeps it out of the JSON too', async () => {
    const res = await login({ refreshTokenDelivery: 'cookie' });
    expect(res.status).toBe(200);
    expect(res.body).not.toHaveProperty('refreshToken');
    expect(res.body).toMatchObject({ success: true, tokenType: 'Bearer', token: expect.any(String) });
    const set = refreshCookie(res) as string;
    expect(set).toMatch(
      /^fleet_refresh=[\w-]{43}; Path=\/api\/v1\/security\/refresh; Expires=.*; HttpOnly; SameSite=Strict$/,
    );

    const csrf = await csrfPair();
    const r = await request(t.app)
      .post(`${SECURITY}/refresh`)
      .set('Cookie', `${set.split(';')[0]}; ${csrf.cookie}`)
      .set('X-CSRF-Token', csrf.token)
      .send({ refreshTokenDelivery: 'cookie' });
    expect(r.status).toBe(200);
    expect(r.body).not.toHaveProperty('refreshToken');
    expect(refreshCookie(r)).toMatch(/^fleet_refresh=[\w-]{43};/);
    expect(refreshCookie(r)).not.toBe(set);
  });

  test('when "body" is asked, then the JSON carries the refresh token and no cookie is set; refreshing with it answers the same way', async () => {
    const res = await login({ refreshTokenDelivery: 'body' }, 'https://app.example.com');
    expect(res.status).toBe(200);
    expect(res.body.refreshToken).toMatch(/^[\w-]{43}$/);
    expect(refreshCookie(res)).toBeUndefined();
    const r = await request(t.app)
      .post(`${SECURITY}/refresh`)
      .send({ refreshToken: res.body.refreshToken, refreshTokenDelivery: 'body' });
    expect(r.status).toBe(200);
    expect(r.body.refreshToken).toMatch(/^[\w-]{43}$/);
    expect(r.body.refreshToken).not.toBe(res.body.refreshToken);
    expect(refreshCookie(r)).toBeUndefined();
  });

  test('when nothing is asked, then a browser request (Origin header) gets the cookie only and another client gets both', async () => {
    const browser = await login({}, 'https://app.example.com');
    expect(browser.status).toBe(200);
    expect(browser.body).not.toHaveProperty('refreshToken');
    expect(refreshCookie(browser)).toBeDefined();
    const cli = await login({});
    expect(cli.status).toBe(200);
    expect(cli.body.refreshToken).toMatch(/^[\w-]{43}$/);
    expect(refreshCookie(cli)).toContain(`fleet_refresh=${cli.body.refreshToken};`);
  });

  test.each([
    ['an unknown value', 'header'],
    ['a number', 1],
    ['null', null],
    ['an array', ['cookie']],
  ])(
    'when refreshTokenDelivery is %s, then 400 VALIDATION_FAILED naming the field, and nothing is issued',
    async (_what, value) => {
      const res = await login({ refreshTokenDelivery: value });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
      expect(JSON.stringify(res.body.error.details)).toContain('body.refreshTokenDelivery');
      expect(refreshCookie(res)).toBeUndefined();
      const r = await request(t.app)
        .post(`${SECURITY}/refresh`)
        .send({ refreshToken: 'x'.repeat(43), refreshTokenDelivery: value });
      expect(r.status).toBe(400);
    },
  );
});
