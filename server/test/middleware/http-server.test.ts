/**
 * createHttpServer (app.ts): requests and responses are born with the app's prototypes, so
 * Express's per-request Object.setPrototypeOf changes nothing, and the app answers exactly as
 * on Node's plain server.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHttpServer } from '../../src/app';
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
