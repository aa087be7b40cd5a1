import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { NextFunction, Request, Response } from 'express';
import { errorEnvelope, validationFailed } from '../lib/errors';

/**
 * Requests Node's HTTP parser refuses before Express sees them (malformed request line or
 * headers, a NUL in a header, both Content-Length and Transfer-Encoding, headers over 16 kB,
 * a request not received within requestTimeout) get the contract's JSON error shape with
 * X-Request-Id and the security headers, instead of Node's bare status line; the connection
 * is then closed, as Node does. So does a request with an `Expect` header other than
 * `100-continue` (Node would answer a bare 417 without calling the app), and a CONNECT request
 * (Node would close the connection without a word): 404 as for any other method the API does
 * not serve, since this server is no proxy.
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
  server.on('connect', (_req: http.IncomingMessage, socket: Duplex) => {
    // Node hands the socket over without its own listeners: a reset must not crash the process.
    socket.on('error', () => undefined);
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    answerRaw(socket, headers, 404, 'Not Found', 'NOT_FOUND', 'Route not found.');
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
    answerRaw(socket, headers, status, reason, code, message);
  });
}

/** Writes one error answer in the contract's JSON shape straight to the socket, then closes it. */
function answerRaw(
  socket: Duplex,
  headers: ReadonlyArray<readonly [string, string]>,
  status: number,
  reason: string,
  code: string,
  message: string,
): void {
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
}

/**
 * An HTTP/1.1 request without a Host header is invalid (RFC 9112 §3.2). The server is created
 * with Node's own check off (createHttpServer: it would answer a bare 400 before the app), so
 * this layer, after the request context, answers it in the contract's shape with X-Request-Id.
 */
export function hostRequired(req: Request, _res: Response, next: NextFunction): void {
  if (req.headers.host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) {
    next(
      validationFailed(
        [{ path: 'headers.host', message: 'is required in HTTP/1.1', code: 'required' }],
        'The request has no Host header.',
      ),
    );
    return;
  }
  next();
}
