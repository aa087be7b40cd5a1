/**
 * A database that cannot serve: requests get 503 SERVICE_UNAVAILABLE (never a 500, never a
 * hang), and a connection to a server that stops answering is given up after
 * statement_timeout + QUERY_TIMEOUT_MARGIN_MS and discarded, not reused.
 */
import net from 'node:net';
import pg from 'pg';
import request from 'supertest';
import { withTransaction } from '../../src/db/transaction';
import { createPool, isDatabaseUnavailable, QUERY_TIMEOUT_MARGIN_MS } from '../../src/db/pool';
import { createLogger } from '../../src/lib/logger';
import { ownerPool } from '../helpers/app';
import { testDbUrl } from '../helpers/env';
import { buildAuthApp, loginThroughIssuer, provision, type AuthTestApp } from '../auth/helpers';
import { startIssuer, type TestIssuer } from '../auth/oidc-issuer';

let issuer: TestIssuer;
let t: AuthTestApp;
let owner: pg.Pool;

beforeAll(async () => {
  issuer = await startIssuer();
  t = await buildAuthApp(issuer, { env: { DB_STATEMENT_TIMEOUT: '200' } });
  owner = ownerPool();
});

afterAll(async () => {
  await t.close();
  await owner.end();
  await issuer.stop();
});

describe('a database that cannot serve the request', () => {
  test('when the tables a request needs stay locked past statement_timeout, then 503 SERVICE_UNAVAILABLE with Retry-After (not 500); once released, the same request works', async () => {
    const u = await provision(t);
    const s = await loginThroughIssuer(t, issuer, t.clock, u.email);
    const locker = await owner.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE');
      const res = await request(t.app).get('/api/v1/security/user').set('Authorization', s.authorization);
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.body).toEqual({
        success: false,
        error: { code: 'SERVICE_UNAVAILABLE', message: expect.any(String) },
        requestId: expect.any(String),
        timestamp: expect.any(String),
      });
      expect(JSON.stringify(res.body)).not.toMatch(/statement|timeout|sessions|SELECT/i);
      // Logged as an unavailable dependency (warn, with the reason), not as a failure of the service.
      expect(
        t.logs.some(
          (l) =>
            l.includes('"level":"warn"') && l.includes('dependency unavailable') && l.includes('database unavailable'),
        ),
      ).toBe(true);
      await locker.query('ROLLBACK');
    } finally {
      locker.release();
    }
    expect((await request(t.app).get('/api/v1/security/user').set('Authorization', s.authorization)).status).toBe(200);
  });
});

/** A TCP relay to the test database that can stop relaying (a stalled or partitioned server). */
async function relay(target: URL): Promise<{ port: number; freeze(): void; close(): Promise<void> }> {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (d) => frozen || upstream.write(d));
    upstream.on('data', (d) => frozen || client.write(d));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze: () => {
      frozen = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('a database server that stops answering', () => {
  test('when the server goes silent mid-transaction, then the statement fails after statement_timeout + margin as "unavailable", and the connection is discarded without waiting for a ROLLBACK', async () => {
    const target = new URL(testDbUrl());
    const r = await relay(target);
    const via = new URL(testDbUrl());
    via.hostname = '127.0.0.1';
    via.port = String(r.port);
    const statementTimeoutMs = 200;
    const pool = createPool(
      {
        url: via.toString(),
        ssl: 'disable',
        max: 2,
        connectionTimeoutMs: 5000,
        statementTimeoutMs,
        idleTimeoutMs: 10_000,
        applicationName: 'unavailable-test',
        appRole: null,
      },
      createLogger({ level: 'error', console: false }),
    );
    try {
      expect((await pool.query('SELECT 1 AS one')).rows[0].one).toBe(1);
      const started = Date.now();
      const failure = await withTransaction(pool, async (c) => {
        await c.query('SELECT 1');
        r.freeze();
        await c.query('SELECT 2');
      }).catch((e: unknown) => e);
      const elapsed = Date.now() - started;
      expect(failure).toBeInstanceOf(Error);
      expect((failure as Error).message).toBe('Query read timeout');
      expect(isDatabaseUnavailable(failure)).toBe(true);
      // One timeout (no second one for a ROLLBACK queued behind the silent statement).
      expect(elapsed).toBeGreaterThanOrEqual(statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS - 50);
      expect(elapsed).toBeLessThan(2 * (statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS));
      expect(pool.totalCount).toBe(0);
    } finally {
      await r.close();
      await pool.end().catch(() => undefined);
    }
  });
});
