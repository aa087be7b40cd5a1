/**
 * createHttpServer (app.ts): requests and responses are born with the app's prototypes, so
 * Express's per-request Object.setPrototypeOf changes nothing, and the app answers exactly as
 * on Node's plain server.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { createHttpServer } from '../../src/app';
import { answerClientErrors } from '../../src/middleware/client-error';
import { securityHeaderList } from '../../src/middleware/security-headers';
import { buildTestApp, type TestApp } from '../helpers/app';
import { loginAs, type TestLogin } from '../helpers/auth';
import { requestOn, type RawAnswer } from '../helpers/raw';

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as AddressInfo).port;
}

/** What must not differ between two answers to the same request: all but per-request values. */
function comparable(a: RawAnswer): unknown {
  const headers = { ...a.headers };
  for (const h of ['date', 'x-request-id', 'ratelimit', 'content-length']) delete headers[h];
  const text = a.text
    .replace(/"requestId":"[^"]*"/g, '"requestId":"*"')
    .replace(/"timestamp":"[^"]*"/g, '"timestamp":"*"')
    .replace(/"id":"[^"]*"/g, '"id":"*"')
    .replace(/"(createdAt|tenantId|userId|email)":"[^"]*"/g, '"$1":"*"')
    // The process uptime differs whenever a second boundary falls between the two requests.
    .replace(/"uptimeSeconds":\d+/g, '"uptimeSeconds":"*"')
    // Whether the background sealer has chained the row yet depends on timing, not on the server.
    .replace(/"chain":(null|\{[^}]*\})/g, '"chain":"*"');
  return { status: a.status, headers, text };
}

describe('createHttpServer', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  test('when a request arrives, then its request and response already have the app prototypes before Express sees them (on the plain server they do not)', async () => {
    for (const [make, expected] of [
      [() => createHttpServer(t.app), true],
      [() => http.createServer(t.app), false],
    ] as const) {
      const server = make();
      const seen: boolean[] = [];
      server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
        seen.push(Object.getPrototypeOf(req) === t.app.request, Object.getPrototypeOf(res) === t.app.response);
        seen.push(req instanceof http.IncomingMessage, res instanceof http.ServerResponse);
      });
      const port = await listen(server);
      try {
        const a = await requestOn(port, 'GET', '/api/health', {});
        expect(a.status).toBe(200);
      } finally {
        await new Promise<void>((r) => server.close(() => r()));
      }
      expect(seen).toEqual([expected, expected, true, true]);
    }
  });

  test('when the same requests go to both servers, then status, headers and bodies are the same', async () => {
    // Each server gets a user of a tenant of its own, so both see the same state.
    const casesFor = (login: TestLogin): Array<[string, string, Record<string, string>, Buffer | undefined]> => {
      const auth = { authorization: login.authorization, 'content-type': 'application/json' };
      return [
        ['GET', '/api/health', {}, undefined],
        ['GET', '/api/v1/security/user', { authorization: login.authorization }, undefined],
        ['GET', '/api/v1/security/user', { authorization: 'Bearer a.b.c' }, undefined],
        [
          'POST',
          '/api/v1/security/audit/log',
          auth,
          Buffer.from(JSON.stringify({ action: 'fleet.vehicle.viewed', resourceType: 'vehicle', resourceId: 'V-1' })),
        ],
        ['POST', '/api/v1/security/audit/log', auth, Buffer.from('{"action":')],
        [
          'POST',
          '/api/v1/security/audit/log',
          auth,
          Buffer.from(JSON.stringify({ action: 'fleet.x', resourceType: 'v', userId: 'someone' })),
        ],
        [
          'GET',
          '/api/v1/security/audit/logs?limit=2&action=fleet.vehicle.viewed',
          { authorization: login.authorization },
          undefined,
        ],
        ['GET', '/no/such/route', {}, undefined],
        ['OPTIONS', '/api/v1/security/user', { origin: 'https://evil.example' }, undefined],
      ];
    };
    const answers: RawAnswer[][] = [];
    for (const make of [() => createHttpServer(t.app), () => http.createServer(t.app)]) {
      const cases = casesFor(await loginAs(t, { role: 'user' }));
      const server = make();
      const port = await listen(server);
      const list: RawAnswer[] = [];
      try {
        for (const [method, path, headers, body] of cases)
          list.push(await requestOn(port, method, path, headers, body));
      } finally {
        await new Promise<void>((r) => server.close(() => r()));
      }
      answers.push(list);
    }
    const [born, plain] = answers as [RawAnswer[], RawAnswer[]];
    expect(born.map((a) => a.status)).toEqual([200, 200, 401, 200, 400, 400, 200, 404, 403]);
    for (let i = 0; i < born.length; i++)
      expect(comparable(born[i] as RawAnswer)).toEqual(comparable(plain[i] as RawAnswer));
  });
});

/** Sends raw bytes and returns everything the server wrote before it closed (or 2 s passed). */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const sock = net.connect(port, '127.0.0.1', () => sock.write(bytes));
    const timer = setTimeout(() => sock.destroy(), 2000);
    sock.on('data', (c: Buffer) => (got += c.toString('latin1')));
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    sock.on('error', () => undefined);
  });
}

function parseRaw(reply: string): { status: number; headers: Record<string, string>; body: unknown } {
  const [head = '', ...rest] = reply.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(
    lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
  );
  const text = rest.join('\r\n\r\n');
  // A chunked body (the app's own answers on a kept-alive connection): take the JSON inside.
  const json = text.slice(text.indexOf('{'), text.lastIndexOf('}') + 1);
  return { status: Number(statusLine.split(' ')[1]), headers, body: json ? JSON.parse(json) : null };
}

describe('requests without Host, and CONNECT, on the server index.ts builds', () => {
  let t: TestApp;
  let server: http.Server;
  let port: number;
  beforeAll(async () => {
    t = await buildTestApp();
    server = createHttpServer(t.app);
    answerClientErrors(server, securityHeaderList());
    port = await listen(server);
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await t.close();
  });

  test('when an HTTP/1.1 request has no Host header, then 400 VALIDATION_FAILED in the contract shape with X-Request-Id and security headers', async () => {
    const r = parseRaw(await rawExchange(port, 'GET /api/health HTTP/1.1\r\nConnection: close\r\n\r\n'));
    expect(r.status).toBe(400);
    expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.body).toMatchObject({
      success: false,
      error: { code: 'VALIDATION_FAILED', details: [{ path: 'headers.host', code: 'required' }] },
    });
  });

  test('when an HTTP/1.0 request has no Host header, or an HTTP/1.1 one has it, then it is served', async () => {
    expect(parseRaw(await rawExchange(port, 'GET /api/health HTTP/1.0\r\n\r\n')).status).toBe(200);
    expect(
      parseRaw(await rawExchange(port, 'GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).status,
    ).toBe(200);
  });

  test.each([['/api/health'], ['127.0.0.1:443']])(
    'when a CONNECT request for %s arrives, then 404 NOT_FOUND in the contract shape and the connection closes (no proxying)',
    async (target) => {
      const r = parseRaw(await rawExchange(port, `CONNECT ${target} HTTP/1.1\r\nHost: x\r\n\r\n`));
      expect(r.status).toBe(404);
      expect(r.headers.connection).toBe('close');
      expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.body).toMatchObject({ success: false, error: { code: 'NOT_FOUND' } });
    },
  );
});
