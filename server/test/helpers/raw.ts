import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { createHttpServer } from '../../src/app';

/**
 * Runs `fn` against the app listening on a free loopback port, then closes the server. The
 * server is built as index.ts builds it (createHttpServer); supertest(app) uses Node's plain one.
 */
export async function withServer<T>(app: Express, fn: (port: number) => Promise<T>): Promise<T> {
  const server = createHttpServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    return await fn((server.address() as AddressInfo).port);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body parsed as JSON, else its text. */
  body: unknown;
  text: string;
}

/**
 * Sends exact bytes to a server on a loopback port: one Buffer with its Content-Length, an
 * array of Buffers sent chunked (no Content-Length), or no body.
 */
export function requestOn(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Buffer | Buffer[],
): Promise<RawAnswer> {
  const chunked = Array.isArray(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: body && !chunked ? { ...headers, 'Content-Length': String(body.length) } : headers,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed, text });
        });
      },
    );
    req.on('error', reject);
    if (chunked) for (const c of body) req.write(c);
    req.end(chunked ? undefined : body);
  });
}

/** The same on the app listening on a free loopback port (supertest would re-serialize a Buffer as JSON). */
export async function rawRequest(
  app: Express,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: Buffer | Buffer[],
): Promise<RawAnswer> {
  return withServer(app, (port) => requestOn(port, method, path, headers, body));
}
