import cookieParser from 'cookie-parser';
import express from 'express';
import request from 'supertest';
import { createLogger } from '../../src/lib/logger';
import { createCsrf } from '../../src/middleware/csrf';
import { errorHandler } from '../../src/middleware/error-handler';
import { requestContext } from '../../src/middleware/request-context';
import { buildTestApp } from '../helpers/app';

function csrfApp(production = false) {
  const csrf = createCsrf({ secret: 'k'.repeat(10) + 'Zq81LmV0pX3sB7', production });
  const app = express();
  app.use(requestContext({ logger: createLogger({ level: 'error', console: false }), accessLog: false }));
  app.use(cookieParser());
  app.get('/token', (req, res) => {
    res.json({ csrfToken: csrf.issue(req, res) });
  });
  app.post('/cookie-flow', csrf.require, (_req, res) => {
    res.json({ ok: true });
  });
  app.use(errorHandler());
  return app;
}

describe('CSRF protection for cookie-authenticated requests', () => {
  test('when GET /api/v1/security/csrf-token, then a token and its HttpOnly SameSite=Strict cookie are returned', async () => {
    const t = await buildTestApp();
    try {
      const res = await request(t.app).get('/api/v1/security/csrf-token');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ success: true, csrfToken: expect.any(String) });
      const cookie = String(res.headers['set-cookie']);
      expect(cookie).toMatch(/fleet\.csrf=/);
      expect(cookie).toMatch(/HttpOnly/i);
      expect(cookie).toMatch(/SameSite=Strict/i);
    } finally {
      await t.close();
    }
  });

  test('when the header token matches the cookie, then the request is accepted', async () => {
    const agent = request.agent(csrfApp());
    const { body } = await agent.get('/token');
    const res = await agent.post('/cookie-flow').set('X-CSRF-Token', body.csrfToken);
    expect(res.status).toBe(200);
  });

  test('when the header is missing, then 403 CSRF_FAILED', async () => {
    const agent = request.agent(csrfApp());
    await agent.get('/token');
    const res = await agent.post('/cookie-flow');
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('CSRF_FAILED');
  });

  test('when the cookie is missing (cross-site request), then 403 CSRF_FAILED even with a token', async () => {
    const app = csrfApp();
    const { body } = await request(app).get('/token');
    const res = await request(app).post('/cookie-flow').set('X-CSRF-Token', body.csrfToken);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('CSRF_FAILED');
  });

  test('when the token is altered or forged, then 403 CSRF_FAILED', async () => {
    const agent = request.agent(csrfApp());
    const { body } = await agent.get('/token');
    const t: string = body.csrfToken;
    const flipped = (t[0] === 'a' ? 'b' : 'a') + t.slice(1);
    for (const bad of [flipped, 'forged', '', 'x'.repeat(5000)]) {
      const res = await agent.post('/cookie-flow').set('X-CSRF-Token', bad);
      expect(res.status).toBe(403);
    }
  });

  test('when a token minted with another secret is replayed with its cookie, then 403', async () => {
    const other = createCsrf({ secret: 'other-secret-Zq81LmV0pX3sB7-abc', production: false });
    const app2 = express();
    app2.use(cookieParser());
    app2.get('/token', (req, res) => {
      res.json({ csrfToken: other.issue(req, res) });
    });
    const r = await request(app2).get('/token');
    const cookie = String(r.headers['set-cookie']).split(';')[0] as string;
    const res = await request(csrfApp())
      .post('/cookie-flow')
      .set('Cookie', cookie)
      .set('X-CSRF-Token', r.body.csrfToken);
    expect(res.status).toBe(403);
  });

  test('when in production, then the cookie is __Host- prefixed and Secure', async () => {
    const res = await request(csrfApp(true)).get('/token');
    const cookie = String(res.headers['set-cookie']);
    expect(cookie).toMatch(/^__Host-fleet\.csrf=/);
    expect(cookie).toMatch(/Secure/);
    expect(cookie).toMatch(/Path=\//);
  });
});
