/**
 * A real browser (Debian's headless Chromium, driven by playwright-core) against the real app:
 * a small static page served from an allowed origin on another loopback port signs in with a
 * development ID token, calls /user, refreshes through the HttpOnly cookie with the CSRF token
 * and logs out. Checked as the browser enforces it: the refresh cookie is HttpOnly and not
 * readable by script, CORS lets the allowed origin read replies and blocks another origin,
 * the CSP and security headers come with every reply, and a cross-site form post cannot
 * refresh. Outside CI the test is not registered where /usr/bin/chromium is absent (one line
 * says so); under CI=true it always runs (.ci/run installs the chromium package).
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createHttpServer } from '../../src/app';
import { loadOrCreateDevIssuerKey, signDevIdToken } from '../../src/services/auth/dev-issuer';
import { systemClock } from '../../src/lib/clock';
import { buildAuthApp, provision, type AuthTestApp } from '../auth/helpers';

// Browser globals used inside page.evaluate callbacks (the project's tsconfig has no DOM library).
declare const window: { api: string };
declare const document: { cookie: string };

const CHROMIUM = '/usr/bin/chromium';
const underCi = process.env.CI === 'true';
const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium && !underCi)
  process.stderr.write(
    `browser.test.ts: ${CHROMIUM} not found: the browser end-to-end test is not run (install the Debian package chromium; CI=true runs it)\n`,
  );

/** The front end: plain JavaScript, the way a web client would call the API. */
const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>Fleet e2e</title></head><body>
<script>
window.api = null;
async function call(path, init) {
  const res = await fetch(window.api + path, Object.assign({ credentials: 'include' }, init));
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  return { status: res.status, body };
}
window.login = (email, idToken) => call('/api/v1/security/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email, idToken, refreshTokenDelivery: 'cookie' }) });
window.user = (token) => call('/api/v1/security/user', { headers: { Authorization: 'Bearer ' + token } });
window.csrf = () => call('/api/v1/security/csrf-token');
window.refresh = (csrfToken) => call('/api/v1/security/refresh', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken }, body: '{}' });
window.logout = (token) => call('/api/v1/security/logout', { method: 'POST', headers: { Authorization: 'Bearer ' + token } });
window.health = async () => { try { return await call('/api/health'); } catch (e) { return { blocked: String(e) }; } };
window.crossSiteForm = () => {
  const f = document.createElement('form');
  f.method = 'POST';
  f.action = window.api + '/api/v1/security/refresh';
  f.enctype = 'text/plain';
  const i = document.createElement('input');
  i.name = '{"a":"';
  i.value = '"}';
  f.appendChild(i);
  document.body.appendChild(f);
  f.submit();
};
</script></body></html>`;

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

const describeBrowser = haveChromium || underCi ? describe : null;

describeBrowser?.('a real browser (headless Chromium) against the API', () => {
  let pageServer: http.Server;
  let apiServer: http.Server;
  let t: AuthTestApp;
  let browser: Browser;
  let dataDir: string;
  let api: string;
  let allowedOrigin: string;
  let otherOrigin: string;

  beforeAll(async () => {
    pageServer = http.createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(PAGE);
    });
    const pagePort = await listen(pageServer);
    allowedOrigin = `http://127.0.0.1:${pagePort}`;
    // Another site: a different host name is a different origin and a different site.
    otherOrigin = `http://localhost:${pagePort}`;
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-e2e-'));
    t = await buildAuthApp(null, {
      env: { FLEET_DEV_ISSUER: 'true', FLEET_DATA_DIR: dataDir, CORS_ORIGINS: allowedOrigin },
    });
    apiServer = createHttpServer(t.app);
    api = `http://127.0.0.1:${await listen(apiServer)}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-gpu',
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise<void>((r) => apiServer?.close(() => r()));
    await new Promise<void>((r) => pageServer?.close(() => r()));
    await t?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }, 30_000);

  async function open(
    origin: string,
  ): Promise<{ page: Page; apiResponses: { url: string; status: number; headers: Record<string, string> }[] }> {
    const context = await browser.newContext();
    const page = await context.newPage();
    const apiResponses: { url: string; status: number; headers: Record<string, string> }[] = [];
    page.on('response', (r) => {
      if (r.url().startsWith(api)) apiResponses.push({ url: r.url(), status: r.status(), headers: r.headers() });
    });
    await page.goto(`${origin}/`);
    await page.evaluate((a) => {
      (window as unknown as { api: string }).api = a;
    }, api);
    return { page, apiResponses };
  }

  test('when the page signs in, calls /user, refreshes with the cookie and CSRF token and logs out, then each step works and the refresh token never reaches script', async () => {
    const u = await provision(t, { role: 'user' });
    const idToken = signDevIdToken(loadOrCreateDevIssuerKey(dataDir), { email: u.email, clock: systemClock });
    const { page, apiResponses } = await open(allowedOrigin);
    type Reply = { status: number; body: Record<string, unknown> | null };

    const login = (await page.evaluate(
      ([e, tok]) =>
        (window as unknown as { login: (a: string, b: string) => Promise<unknown> }).login(e as string, tok as string),
      [u.email, idToken],
    )) as Reply;
    expect(login.status).toBe(200);
    expect(login.body).not.toHaveProperty('refreshToken');
    const token = login.body?.token as string;

    // The refresh cookie: HttpOnly, SameSite=Strict, scoped to the refresh route; script sees no cookie of the API.
    const cookies = await page.context().cookies(`${api}/api/v1/security/refresh`);
    const refreshCookie = cookies.find((c) => c.name === 'fleet_refresh');
    expect(refreshCookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/api/v1/security/refresh' });
    expect(await page.evaluate(() => document.cookie)).not.toMatch(/fleet_refresh|fleet\.csrf/);

    const me = (await page.evaluate(
      (tok) => (window as unknown as { user: (a: string) => Promise<unknown> }).user(tok),
      token,
    )) as Reply;
    expect(me.status).toBe(200);
    expect((me.body?.user as { email: string }).email).toBe(u.email);

    const csrf = (await page.evaluate(() => (window as unknown as { csrf: () => Promise<unknown> }).csrf())) as Reply;
    expect(csrf.status).toBe(200);
    const refreshed = (await page.evaluate(
      (c) => (window as unknown as { refresh: (a: string) => Promise<unknown> }).refresh(c),
      csrf.body?.csrfToken as string,
    )) as Reply;
    expect(refreshed.status).toBe(200);
    expect(refreshed.body).not.toHaveProperty('refreshToken');
    expect(refreshed.body?.token).toEqual(expect.any(String));
    const rotated = (await page.context().cookies(`${api}/api/v1/security/refresh`)).find(
      (c) => c.name === 'fleet_refresh',
    );
    expect(rotated?.value).not.toBe(refreshCookie?.value);

    const out = (await page.evaluate(
      (tok) => (window as unknown as { logout: (a: string) => Promise<unknown> }).logout(tok),
      refreshed.body?.token as string,
    )) as Reply;
    expect(out.status).toBe(200);
    const after = (await page.evaluate(
      (tok) => (window as unknown as { user: (a: string) => Promise<unknown> }).user(tok),
      refreshed.body?.token as string,
    )) as Reply;
    expect(after.status).toBe(401);

    // What the browser received: CORS for the allowed origin, the CSP and the other security headers.
    expect(apiResponses.length).toBeGreaterThanOrEqual(6);
    for (const r of apiResponses.filter((x) => x.status !== 204)) {
      expect({
        url: r.url,
        acao: r.headers['access-control-allow-origin'],
        acac: r.headers['access-control-allow-credentials'],
      }).toEqual({ url: r.url, acao: allowedOrigin, acac: 'true' });
      expect(r.headers['content-security-policy']).toMatch(/default-src 'none'|default-src 'self'/);
      expect(r.headers['content-security-policy']).toMatch(/frame-ancestors 'none'/);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['referrer-policy']).toBeDefined();
      expect(r.headers['x-frame-options']).toBeDefined();
    }
    await page.context().close();
  }, 60_000);

  test('when a page of another origin calls the API, then the browser blocks reading the reply (no CORS grant), and a credentialed preflight is refused', async () => {
    const { page, apiResponses } = await open(otherOrigin);
    const r = (await page.evaluate(() => (window as unknown as { health: () => Promise<unknown> }).health())) as {
      blocked?: string;
    };
    expect(r.blocked).toMatch(/TypeError: Failed to fetch/);
    const health = apiResponses.find((x) => x.url.endsWith('/api/health'));
    expect(health?.headers['access-control-allow-origin']).toBeUndefined();
    const refresh = (await page.evaluate(() =>
      fetch(`${(window as unknown as { api: string }).api}/api/v1/security/refresh`, {
        method: 'POST',
        credentials: 'include',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': 'x' },
        body: '{}',
      }).then(
        (res) => `read ${res.status}`,
        (e: unknown) => String(e),
      ),
    )) as string;
    expect(refresh).toMatch(/TypeError: Failed to fetch/);
    await page.context().close();
  }, 60_000);

  test('when another site posts a form to /refresh in the signed-in browser, then no refresh happens: the SameSite=Strict cookie stays home and the session still refreshes afterwards', async () => {
    const u = await provision(t, { role: 'user' });
    const idToken = signDevIdToken(loadOrCreateDevIssuerKey(dataDir), { email: u.email, clock: systemClock });
    const { page } = await open(allowedOrigin);
    const login = (await page.evaluate(
      ([e, tok]) =>
        (window as unknown as { login: (a: string, b: string) => Promise<unknown> }).login(e as string, tok as string),
      [u.email, idToken],
    )) as { status: number };
    expect(login.status).toBe(200);
    const before = (await page.context().cookies(`${api}/api/v1/security/refresh`)).find(
      (c) => c.name === 'fleet_refresh',
    )?.value;
    expect(before).toMatch(/^[\w-]{43}$/);

    // The attacker's page, on another site, in the same browser.
    const evil = await page.context().newPage();
    await evil.goto(`${otherOrigin}/`);
    await evil.evaluate((a) => {
      (window as unknown as { api: string }).api = a;
    }, api);
    const [nav] = await Promise.all([
      evil.waitForNavigation(),
      evil.evaluate(() => (window as unknown as { crossSiteForm: () => void }).crossSiteForm()),
    ]);
    expect(nav?.status()).not.toBe(200);
    expect([401, 403, 415]).toContain(nav?.status());
    expect(await evil.content()).not.toMatch(/"token"/);

    // The cookie was neither sent nor spent: the real page still refreshes with it.
    expect(
      (await page.context().cookies(`${api}/api/v1/security/refresh`)).find((c) => c.name === 'fleet_refresh')?.value,
    ).toBe(before);
    const csrf = (await page.evaluate(() => (window as unknown as { csrf: () => Promise<unknown> }).csrf())) as {
      body: { csrfToken: string };
    };
    const refreshed = (await page.evaluate(
      (c) => (window as unknown as { refresh: (a: string) => Promise<unknown> }).refresh(c),
      csrf.body.csrfToken,
    )) as { status: number };
    expect(refreshed.status).toBe(200);
    await page.context().close();
  }, 60_000);
});

// Registered in every case, so the file always has a test: the page the browser test serves is
// plain script with no secrets in it.
test('the e2e page keeps no token in storage (only in memory)', () => {
  expect(PAGE).not.toMatch(/localStorage|sessionStorage|document\.cookie\s*=/);
});
