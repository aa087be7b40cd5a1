import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import express from 'express';
import { answerClientErrors } from '../../src/middleware/client-error';
import { securityHeaderList } from '../../src/middleware/security-headers';

let server: http.Server;
let port: number;

beforeAll(async () => {
  const app = express();
  app.get('/ok', (_req, res) => {
    res.json({ ok: true });
  });
  server = http.createServer(app);
  answerClientErrors(server, securityHeaderList());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

/** Sends raw bytes and returns everything the server wrote before closing. */
function rawExchange(bytes: string): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const sock = net.connect(port, '127.0.0.1', () => sock.write(bytes));
    sock.on('data', (c: Buffer) => (got += c.toString('latin1')));
    sock.on('close', () => resolve(got));
    sock.on('error', () => resolve(got));
  });
}

function parse(reply: string): { status: number; headers: Record<string, string>; body: Record<string, unknown> } {
  const [head = '', body = ''] = reply.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(
    lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
  );
  return { status: Number(statusLine.split(' ')[1]), headers, body: JSON.parse(body) as Record<string, unknown> };
}

describe('requests Node refuses before Express', () => {
  test('when a request carries an Expect header other than 100-continue, then 417 in the contract JSON shape with X-Request-Id and security headers', async () => {
    const r = parse(
      await rawExchange(
        'POST /ok HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nExpect: 200-ok\r\nConnection: close\r\n\r\n{}',
      ),
    );
    expect(r.status).toBe(417);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.body).toMatchObject({ success: false, error: { code: 'VALIDATION_FAILED' } });
  });

  test.each([
    ['a NUL byte in a header', 'GET /ok HTTP/1.1\r\nHost: x\r\nX-Bad: a\u0000b\r\n\r\n', 400, 'VALIDATION_FAILED'],
    [
      'both Content-Length and Transfer-Encoding (request smuggling shape)',
      'POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}',
      400,
      'VALIDATION_FAILED',
    ],
    ['a malformed request line', 'GARBAGE\r\n\r\n', 400, 'VALIDATION_FAILED'],
    [
      'headers over 16 kB',
      `GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      431,
      'PAYLOAD_TOO_LARGE',
    ],
  ])(
    'when a request has %s, then the contract JSON error with X-Request-Id and security headers, and the connection closes',
    async (_name, bytes, status, code) => {
      const r = parse(await rawExchange(bytes));
      expect(r.status).toBe(status);
      expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(r.headers.connection).toBe('close');
      expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['cache-control']).toBe('no-store');
      expect(r.body).toEqual({
        success: false,
        error: { code, message: expect.any(String) },
        requestId: r.headers['x-request-id'],
        timestamp: expect.any(String),
      });
    },
  );

  test('when a well-formed request follows, then the server still answers normally', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/ok`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
  });
});
