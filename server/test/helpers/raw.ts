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

/**
 * Sends exact bytes (supertest would re-serialize a Buffer as JSON): one Buffer with its
 * Content-Length, or an array of Buffers sent chunked (no Content-Length).
 */
export async function rawRequest(app: Express, method: string, path: string, headers: Record<string, string>, body: Buffer | Buffer[]): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: unknown; text: string }> {
  return withServer(app, (port) => {
    const chunked = Array.isArray(body);
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path, headers: chunked ? headers : { ...headers, 'Content-Length': String(body.length) } }, (res) => {
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
      });
      req.on('error', reject);
      if (chunked) for (const c of body) req.write(c);
      req.end(chunked ? undefined : body);
    });
  });
}
