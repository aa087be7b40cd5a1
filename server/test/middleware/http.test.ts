import net from 'node:net';
import { gzipSync } from 'node:zlib';
import express from 'express';
import request from 'supertest';
import {
  AppError,
  conflict,
  csrfFailed,
  forbidden,
  internalError,
  notFound,
  rateLimited,
  serviceUnavailable,
  unauthenticated,
  validationFailed,
} from '../../src/lib/errors';
import { jsonBody } from '../../src/middleware/body';
import { errorHandler, notFoundHandler } from '../../src/middleware/error-handler';
import { requestContext } from '../../src/middleware/request-context';
import { validate } from '../../src/middleware/input-validation';
import { createLogger } from '../../src/lib/logger';
import { z } from 'zod';
import { buildTestApp, type TestApp } from '../helpers/app';
import { rawRequest, withServer } from '../helpers/raw';

function expectErrorShape(body: unknown, code: string): void {
  expect(body).toEqual({
    success: false,
    error: expect.objectContaining({ code, message: expect.any(String) }),
    requestId: expect.any(String),
    timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
  });
  const text = JSON.stringify(body);
  expect(text).not.toMatch(/at .*\.(ts|js):\d+/); // no stack frames
  expect(text).not.toMatch(/SELECT|INSERT|postgres/i);
}

describe('the real app', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  test('when GET /api/health, then 200 with status ok and the security headers of a JSON API', async () => {
    const res = await request(t.app).get('/api/health');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ success: true, status: 'ok' });
    expect(res.headers['content-security-policy']).toBe("default-src 'none';frame-ancestors 'none'");
    expect(res.headers['strict-transport-security']).toMatch(/max-age=31536000/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['x-powered-by']).toBeUndefined();
  });

  test('when a sane X-Request-Id is sent, then it is echoed', async () => {
    const res = await request(t.app).get('/api/health').set('X-Request-Id', 'abc-123_DEF.9');
    expect(res.headers['x-request-id']).toBe('abc-123_DEF.9');
  });

  test.each([
    ['too long', 'a'.repeat(129)],
    ['with spaces', 'abc def'],
    ['with a newline escape', 'abc%0d%0aSet-Cookie:x'],
    ['with quotes', '"><script>'],
  ])('when X-Request-Id is %s, then a fresh UUID replaces it', async (_n, value) => {
    const res = await request(t.app).get('/api/health').set('X-Request-Id', value);
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('when no X-Request-Id is sent, then one is generated and the error body carries the same id', async () => {
    const res = await request(t.app).get('/api/nope');
    expect(res.status).toBe(404);
    expectErrorShape(res.body, 'NOT_FOUND');
    expect(res.body.requestId).toBe(res.headers['x-request-id']);
  });

  test('when the body is malformed JSON, then 400 MALFORMED_JSON', async () => {
    const res = await request(t.app)
      .post('/api/v1/security/anything')
      .set('Content-Type', 'application/json')
      .send('{"a":');
    expect(res.status).toBe(400);
    expectErrorShape(res.body, 'MALFORMED_JSON');
  });

  test('when the body is a bare JSON string (not strict), then 400 MALFORMED_JSON', async () => {
    const res = await request(t.app)
      .post('/api/v1/security/anything')
      .set('Content-Type', 'application/json')
      .send('"just a string"');
    expect(res.status).toBe(400);
    expectErrorShape(res.body, 'MALFORMED_JSON');
  });

  test('when the body is over 100 kB, then 413 PAYLOAD_TOO_LARGE', async () => {
    const big = JSON.stringify({ a: 'x'.repeat(101 * 1024) });
    const res = await request(t.app)
      .post('/api/v1/security/anything')
      .set('Content-Type', 'application/json')
      .send(big);
    expect(res.status).toBe(413);
    expectErrorShape(res.body, 'PAYLOAD_TOO_LARGE');
  });

  test('when the body is not JSON, then 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
    ]) {
      const res = await request(t.app).post('/api/v1/security/anything').set('Content-Type', type).send('a=1');
      expect(res.status).toBe(415);
      expectErrorShape(res.body, 'UNSUPPORTED_MEDIA_TYPE');
    }
  });

  test('when a JSON body declares a charset other than UTF-8 (utf-16, latin1), then 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    for (const charset of ['utf-16', 'latin1', 'iso-8859-1']) {
      const res = await request(t.app)
        .post('/api/v1/security/anything')
        .set('Content-Type', `application/json; charset=${charset}`)
        .send('{}');
      expect({ charset, status: res.status }).toEqual({ charset, status: 415 });
      expectErrorShape(res.body, 'UNSUPPORTED_MEDIA_TYPE');
    }
  });

  test('when a body has no content type, then 415', async () => {
    const res = await request(t.app)
      .post('/api/v1/security/anything')
      .set('Content-Length', '2')
      .send(Buffer.from('{}'));
    expect([415]).toContain(res.status);
  });

  test('when the body is not valid UTF-8, then 400 MALFORMED_JSON', async () => {
    const raw = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]);
    const res = await rawRequest(
      t.app,
      'POST',
      '/api/v1/security/anything',
      { 'Content-Type': 'application/json' },
      raw,
    );
    expect(res.status).toBe(400);
    expectErrorShape(res.body, 'MALFORMED_JSON');
  });

  test('when a string holds a NUL character or a lone surrogate, then 400 VALIDATION_FAILED naming the field', async () => {
    const nul = await request(t.app)
      .post('/api/v1/security/anything')
      .set('Content-Type', 'application/json')
      .send('{"action":"a\\u0000b"}');
    expect(nul.status).toBe(400);
    expectErrorShape(nul.body, 'VALIDATION_FAILED');
    expect(nul.body.error.details[0]).toMatchObject({ path: 'body.action', code: 'nul_character' });
    const sur = await request(t.app)
      .post('/api/v1/security/anything')
      .set('Content-Type', 'application/json')
      .send('{"x":{"y":["\\ud800"]}}');
    expect(sur.status).toBe(400);
    expect(sur.body.error.details[0]).toMatchObject({ path: 'body.x.y[0]', code: 'invalid_unicode' });
  });

  test('when a number overflows to Infinity (1e400), then 400 VALIDATION_FAILED instead of storing null', async () => {
    const res = await request(t.app)
      .post('/api/v1/security/anything')
      .set('Content-Type', 'application/json')
      .send('{"before":{"a":[1, -1e400]}}');
    expect(res.status).toBe(400);
    expect(res.body.error.details[0]).toMatchObject({ path: 'body.before.a[1]', code: 'number_out_of_range' });
  });

  test('when an offending key is huge, then the error names it cut to 64 characters (no 90 kB echo)', async () => {
    const key = `k${'x'.repeat(90_000)}\\u0000`;
    const res = await request(t.app)
      .post('/api/v1/security/anything')
      .set('Content-Type', 'application/json')
      .send(`{"${key}":1}`);
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].path).toBe(`body.k${'x'.repeat(63)}…`);
    expect(JSON.stringify(res.body).length).toBeLessThan(2000);
  });

  test.each(['resourceId=%ED%A0%80', 'resourceId=%FF', 'resourceId=%zz', 'resourceId=%', 'a%E2%82=1'])(
    'when the query string has malformed percent-encoding (%s), then 400 VALIDATION_FAILED',
    async (q) => {
      const res = await request(t.app).get(`/api/health?${q}`);
      expect(res.status).toBe(400);
      expectErrorShape(res.body, 'VALIDATION_FAILED');
      expect(res.body.error.details[0]).toMatchObject({ path: 'query', code: 'invalid_encoding' });
    },
  );

  test('when the query string is well-formed percent-encoded UTF-8 (emoji, spaces as +), then it passes', async () => {
    expect((await request(t.app).get('/api/health?x=%F0%9F%9A%97+car&y=a%2Bb')).status).toBe(200);
  });

  test('when a query string holds a NUL byte, then 400 VALIDATION_FAILED', async () => {
    const res = await request(t.app).get('/api/health?x=a%00b');
    expect(res.status).toBe(400);
    expectErrorShape(res.body, 'VALIDATION_FAILED');
  });

  test('when an unknown route is requested, then 404 NOT_FOUND in the contract shape', async () => {
    const res = await request(t.app).delete('/api/v1/security/does-not-exist');
    expect(res.status).toBe(404);
    expectErrorShape(res.body, 'NOT_FOUND');
  });

  test('when a preflight comes from an allowed origin, then CORS headers allow it with credentials', async () => {
    const res = await request(t.app)
      .options('/api/v1/security/login')
      .set('Origin', 'https://app.example.com')
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'content-type,authorization');
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(res.headers['access-control-allow-credentials']).toBe('true');
    expect(res.headers['access-control-allow-headers']).toMatch(/Authorization/);
  });

  test('when OPTIONS comes without an Origin (not a preflight), then a JSON 404 like any method a route lacks, not a plain-text Allow list', async () => {
    for (const path of ['/api/v1/security/user', '/api/v1/security/login', '/api/health']) {
      const res = await request(t.app).options(path);
      expect(res.status).toBe(404);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      expectErrorShape(res.body, 'NOT_FOUND');
    }
  });

  test('when a route that takes no query parameters gets one, then 400 names it (as unknown body keys are)', async () => {
    for (const [method, path] of [
      ['get', '/api/v1/security/csrf-token?x=1'],
      ['post', '/api/v1/security/login?debug=true'],
      ['post', '/api/v1/security/refresh?a=b'],
    ] as const) {
      const agent = request(t.app);
      const res = await agent[method](path)
        .set('Content-Type', 'application/json')
        .send(method === 'post' ? '{}' : undefined);
      expect(res.status).toBe(400);
      expectErrorShape(res.body, 'VALIDATION_FAILED');
      expect(res.body.error.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'query' })]));
    }
  });

  test('when a compressed body is corrupt or cut short, then 400 MALFORMED_JSON, never a 500', async () => {
    const whole = gzipSync(Buffer.from('{"email":"a@b.example"}'));
    for (const [encoding, body] of [
      ['gzip', Buffer.from('xx')],
      ['gzip', whole.subarray(0, whole.length - 6)],
      ['deflate', Buffer.from('not deflate')],
      ['br', Buffer.from('not brotli')],
    ] as const) {
      const res = await rawRequest(
        t.app,
        'POST',
        '/api/v1/security/login',
        { 'Content-Type': 'application/json', 'Content-Encoding': encoding },
        body,
      );
      expect(res.status).toBe(400);
      expectErrorShape(res.body, 'MALFORMED_JSON');
    }
  });

  test('when Content-Length declares more than the limit and the body never comes, then 413 at once and the connection is closed', async () => {
    await withServer(t.app, async (port) => {
      const started = Date.now();
      const reply = await new Promise<string>((resolve) => {
        let got = '';
        const sock = net.connect(port, '127.0.0.1', () =>
          sock.write(
            'POST /api/v1/security/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n{}',
          ),
        );
        sock.on('data', (c: Buffer) => (got += c.toString('utf8')));
        sock.on('close', () => resolve(got));
        sock.on('error', () => resolve(got));
      });
      expect(Date.now() - started).toBeLessThan(3000);
      expect(reply).toMatch(/^HTTP\/1\.1 413 /);
      expect(reply).toMatch(/\r\nconnection: close\r\n/i);
      expectErrorShape(JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as unknown, 'PAYLOAD_TOO_LARGE');
    });
  });

  test('when a preflight comes from another origin, then 403 and no CORS headers', async () => {
    const res = await request(t.app)
      .options('/api/v1/security/login')
      .set('Origin', 'https://evil.example.net')
      .set('Access-Control-Request-Method', 'POST');
    expect(res.status).toBe(403);
    expectErrorShape(res.body, 'FORBIDDEN');
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });

  test('when a simple request comes from another origin, then the response has no CORS allow header', async () => {
    const res = await request(t.app).get('/api/health').set('Origin', 'https://evil.example.net');
    expect(res.status).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });

  test('when GET /metrics from loopback, then Prometheus text with request metrics', async () => {
    await request(t.app).get('/api/health');
    const res = await request(t.app).get('/metrics');
    expect(res.status).toBe(200);
    expect(res.text).toMatch(
      /fleet_http_request_duration_seconds_count\{method="GET",route="\/api\/health",status="200"\}/,
    );
    expect(res.text).toMatch(/fleet_db_pool_connections\{state="total"\}/);
    expect(res.text).toMatch(/fleet_process_cpu_user_seconds_total/);
  });

  test('when a route answers with an error (401), then its metrics label is the same full route as for its successes', async () => {
    await request(t.app).get('/api/v1/security/user');
    const res = await request(t.app).get('/metrics');
    expect(res.text).toMatch(
      /fleet_http_request_duration_seconds_count\{method="GET",route="\/api\/v1\/security\/user",status="401"\}/,
    );
    expect(res.text).not.toMatch(/route="\/user"/);
  });

  test('when GET /metrics through a proxy without the token, then 403', async () => {
    const res = await request(t.app).get('/metrics').set('X-Forwarded-For', '203.0.113.9');
    expect(res.status).toBe(403);
    expectErrorShape(res.body, 'FORBIDDEN');
  });
});

describe('the metrics token', () => {
  test('when METRICS_TOKEN is presented from a non-loopback path, then metrics are served; a wrong token is refused', async () => {
    const token = 'm'.repeat(12) + 'X9v2Lq8Zp4Rt7Yw1';
    const t = await buildTestApp({ env: { METRICS_TOKEN: token } });
    try {
      const ok = await request(t.app)
        .get('/metrics')
        .set('X-Forwarded-For', '203.0.113.9')
        .set('Authorization', `Bearer ${token}`);
      expect(ok.status).toBe(200);
      const bad = await request(t.app)
        .get('/metrics')
        .set('X-Forwarded-For', '203.0.113.9')
        .set('Authorization', `Bearer ${token}x`);
      expect(bad.status).toBe(403);
    } finally {
      await t.close();
    }
  });
});

describe('the error handler', () => {
  const app = express();
  app.use(requestContext({ logger: createLogger({ level: 'error', console: false }), accessLog: false }));
  app.use(jsonBody(100 * 1024));
  const errors: Record<string, AppError | Error> = {
    validation: validationFailed([{ path: 'a', message: 'bad' }]),
    unauthenticated: unauthenticated('token expired'),
    forbidden: forbidden('role viewer'),
    csrf: csrfFailed(),
    'not-found': notFound('Session'),
    conflict: conflict('Already exists.'),
    'rate-limited': rateLimited(42),
    unavailable: serviceUnavailable(),
    internal: internalError(),
    unknown: Object.assign(
      new Error('duplicate key value violates unique constraint "users_pkey" SELECT * FROM users'),
      { stack: 'Error: x\n    at Object.<anonymous> (/srv/app/server/src/x.ts:10:5)' },
    ),
  };
  for (const [name, err] of Object.entries(errors)) {
    app.get(`/${name}`, () => {
      throw err;
    });
  }
  app.post('/strict', validate({ body: z.strictObject({ a: z.string().max(5) }) }), (_req, res) => {
    res.json({ ok: true });
  });
  app.use(notFoundHandler);
  app.use(errorHandler());

  test.each([
    ['validation', 400, 'VALIDATION_FAILED'],
    ['unauthenticated', 401, 'UNAUTHENTICATED'],
    ['forbidden', 403, 'FORBIDDEN'],
    ['csrf', 403, 'CSRF_FAILED'],
    ['not-found', 404, 'NOT_FOUND'],
    ['conflict', 409, 'CONFLICT'],
    ['rate-limited', 429, 'RATE_LIMITED'],
    ['internal', 500, 'INTERNAL_ERROR'],
    ['unavailable', 503, 'SERVICE_UNAVAILABLE'],
    ['unknown', 500, 'INTERNAL_ERROR'],
  ])('when a route throws %s, then %i %s in the contract shape with no internals', async (name, status, code) => {
    const res = await request(app).get(`/${name}`);
    expect(res.status).toBe(status);
    expectErrorShape(res.body, code);
    if (name === 'unknown') expect(res.body.error.message).toBe('An internal error occurred.');
  });

  test('when 401, then WWW-Authenticate: Bearer is sent and the reason is not', async () => {
    const res = await request(app).get('/unauthenticated');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
    expect(JSON.stringify(res.body)).not.toContain('token expired');
  });

  test('when 429, then Retry-After is sent', async () => {
    const res = await request(app).get('/rate-limited');
    expect(res.headers['retry-after']).toBe('42');
  });

  test('when the body has unknown keys or wrong types, then 400 VALIDATION_FAILED with details', async () => {
    const unknown = await request(app).post('/strict').send({ a: 'x', role: 'admin' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.details).toEqual(
      expect.arrayContaining([expect.objectContaining({ path: 'body', code: 'unrecognized_keys' })]),
    );
    const wrong = await request(app).post('/strict').send({ a: 42 });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.details[0]).toMatchObject({ path: 'body.a', code: 'invalid_type' });
    const ok = await request(app).post('/strict').send({ a: 'ok' });
    expect(ok.status).toBe(200);
  });
});

describe('request bodies: the direct reader and the cases left to body-parser', () => {
  const app = express();
  app.use(requestContext({ logger: createLogger({ level: 'error', console: false }), accessLog: false }));
  app.use(jsonBody(1024));
  app.post('/echo', (req, res) => {
    res.json({ body: req.body as unknown });
  });
  app.use(errorHandler());

  test('when a plain JSON body is posted (with or without charset=utf-8, leading blanks), then it arrives parsed and unchanged', async () => {
    const value = { s: 'é 🚀 \u202e rtl \u200b zw', n: [1, 2.5, null, true], nested: { "'; DROP TABLE x; --": 1 } };
    for (const type of [
      'application/json',
      'application/json; charset=utf-8',
      'application/json;charset="UTF-8"',
      'application/vnd.api+json',
    ]) {
      const res = await rawRequest(
        app,
        'POST',
        '/echo',
        { 'Content-Type': type },
        Buffer.from(` \n\t${JSON.stringify(value)}`),
      );
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ body: value });
    }
    const arr = await rawRequest(
      app,
      'POST',
      '/echo',
      { 'Content-Type': 'application/json' },
      Buffer.from('[1,"two"]'),
    );
    expect(arr.body).toEqual({ body: [1, 'two'] });
  });

  test('when the top level is not an object or array, or the JSON is cut short, or the body is blank, then 400 MALFORMED_JSON', async () => {
    for (const text of ['"text"', '42', 'null', 'true', '{"a":', '{"a":1}}', '   ']) {
      const res = await rawRequest(app, 'POST', '/echo', { 'Content-Type': 'application/json' }, Buffer.from(text));
      expect(res.status).toBe(400);
      expectErrorShape(res.body, 'MALFORMED_JSON');
    }
  });

  test('when the body is gzip-compressed JSON, then body-parser inflates it and it arrives parsed', async () => {
    const res = await rawRequest(
      app,
      'POST',
      '/echo',
      { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' },
      gzipSync(Buffer.from('{"zipped":true}')),
    );
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ body: { zipped: true } });
  });

  test('when a gzip body inflates past the limit, or the encoding is unknown, then 413 or 415 and never a 500', async () => {
    const bomb = gzipSync(Buffer.from(JSON.stringify({ a: 'x'.repeat(50_000) })));
    expect(bomb.length).toBeLessThan(1024);
    const big = await rawRequest(
      app,
      'POST',
      '/echo',
      { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' },
      bomb,
    );
    expect(big.status).toBe(413);
    expectErrorShape(big.body, 'PAYLOAD_TOO_LARGE');
    const odd = await rawRequest(
      app,
      'POST',
      '/echo',
      { 'Content-Type': 'application/json', 'Content-Encoding': 'x-unknown' },
      Buffer.from('{}'),
    );
    expect(odd.status).toBe(415);
    expectErrorShape(odd.body, 'UNSUPPORTED_MEDIA_TYPE');
  });

  test('when the charset is not UTF-8 (spelled utf-8), then 415, whichever reader handles the body', async () => {
    for (const charset of ['latin1', 'utf8']) {
      const plain = await rawRequest(
        app,
        'POST',
        '/echo',
        { 'Content-Type': `application/json; charset=${charset}` },
        Buffer.from('{"a":"b"}'),
      );
      const chunked = await rawRequest(
        app,
        'POST',
        '/echo',
        { 'Content-Type': `application/json; charset=${charset}` },
        [Buffer.from('{"a":'), Buffer.from('"b"}')],
      );
      for (const res of [plain, chunked]) {
        expect(res.status).toBe(415);
        expectErrorShape(res.body, 'UNSUPPORTED_MEDIA_TYPE');
      }
    }
  });

  test('when the body starts with a UTF-8 byte order mark, then it is dropped and the JSON parsed, whichever reader handles it', async () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const plain = await rawRequest(
      app,
      'POST',
      '/echo',
      { 'Content-Type': 'application/json' },
      Buffer.concat([bom, Buffer.from('{"bom":1}')]),
    );
    const chunked = await rawRequest(app, 'POST', '/echo', { 'Content-Type': 'application/json' }, [
      bom,
      Buffer.from('{"bom":1}'),
    ]);
    for (const res of [plain, chunked]) expect(res.body).toEqual({ body: { bom: 1 } });
  });

  test('when Content-Length is 00, then the request has no body', async () => {
    const reply = await withServer(
      app,
      (port) =>
        new Promise<string>((resolve) => {
          let got = '';
          const sock = net.connect(port, '127.0.0.1', () =>
            sock.write(
              'POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 00\r\n\r\n',
            ),
          );
          sock.on('data', (c: Buffer) => (got += c.toString('utf8')));
          sock.on('close', () => resolve(got));
        }),
    );
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
  });

  test('when the body is sent chunked (no Content-Length), then it is read and parsed', async () => {
    const res = await rawRequest(app, 'POST', '/echo', { 'Content-Type': 'application/json' }, [
      Buffer.from('{"chun'),
      Buffer.from('ked":1}'),
    ]);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ body: { chunked: 1 } });
  });

  test('when Content-Length is over the limit, then 413 without reading a parse error', async () => {
    const res = await rawRequest(
      app,
      'POST',
      '/echo',
      { 'Content-Type': 'application/json' },
      Buffer.from(JSON.stringify({ a: 'y'.repeat(2000) })),
    );
    expect(res.status).toBe(413);
    expectErrorShape(res.body, 'PAYLOAD_TOO_LARGE');
  });

  test('when the client promises more bytes than it sends and hangs up, then the server stays up and answers the next request', async () => {
    await withServer(app, async (port) => {
      await new Promise<void>((resolve) => {
        const sock = net.connect(port, '127.0.0.1', () => {
          sock.end(
            'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":',
          );
        });
        sock.on('close', () => resolve());
        sock.on('error', () => resolve());
        sock.resume();
      });
      const next = await request(`http://127.0.0.1:${port}`)
        .post('/echo')
        .set('Content-Type', 'application/json')
        .send('{"after":true}');
      expect(next.status).toBe(200);
      expect(next.body).toEqual({ body: { after: true } });
    });
  });
});
