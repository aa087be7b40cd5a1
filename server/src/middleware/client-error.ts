import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { errorEnvelope } from '../lib/errors';

/**
 * Requests Node's HTTP parser refuses before Express sees them (malformed request line or
 * headers, a NUL in a header, both Content-Length and Transfer-Encoding, headers over 16 kB,
 * a request not received within requestTimeout) get the contract's JSON error shape with
 * X-Request-Id and the security headers, instead of Node's bare status line; the connection
 * is then closed, as Node does. So does a request with an `Expect` header other than
 * `100-continue` (Node would answer a bare 417 without calling the app).
 */
export function answerClientErrors(server: http.Server, headers: ReadonlyArray<readonly [string, string]>): void {
  server.on('checkExpectation', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    const requestId = randomUUID();
    const body = JSON.stringify(
      errorEnvelope(requestId, { code: 'VALIDATION_FAILED', message: 'Only "Expect: 100-continue" is supported.' }),
    );
    res.shouldKeepAlive = false; // the body was not read
    res.writeHead(
      417,
      [
        ['Content-Type', 'application/json; charset=utf-8'],
        ['Content-Length', String(Buffer.byteLength(body))],
        ['X-Request-Id', requestId],
        ...headers,
      ].flat(),
    );
    res.end(body);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // As Node's own handler: answer only if no response on this connection has started, then
    // destroy the socket (a half-closed one would let the parser go on reading the request).
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const [status, reason, code, message] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'PAYLOAD_TOO_LARGE', 'The request headers exceed the 16 kB limit.']
        : err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW'
          ? [413, 'Payload Too Large', 'PAYLOAD_TOO_LARGE', 'The chunk extensions exceed the size limit.']
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? [408, 'Request Timeout', 'REQUEST_TIMEOUT', 'The request was not received in time.']
            : [400, 'Bad Request', 'VALIDATION_FAILED', 'The request is not valid HTTP.'];
    const requestId = randomUUID();
    const body = JSON.stringify(errorEnvelope(requestId, { code, message }));
    const lines = [
      `HTTP/1.1 ${status} ${reason}`,
      'Content-Type: application/json; charset=utf-8',
      `Content-Length: ${Buffer.byteLength(body)}`,
      'Connection: close',
      `Date: ${new Date().toUTCString()}`,
      `X-Request-Id: ${requestId}`,
      ...headers.map(([n, v]) => `${n}: ${v}`),
    ];
    socket.write(`${lines.join('\r\n')}\r\n\r\n${body}`);
    socket.destroy();
  });
}
