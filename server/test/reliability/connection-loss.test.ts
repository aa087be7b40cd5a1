/**
 * A connection lost while nobody is using it is logged once and discarded, never fatal:
 * a pool client that is checked out and idle (between statements of a transaction, or a lock
 * holder) has no listener of the pool's, and pg emits 'error' on it when the server ends the
 * connection. Without a listener of its own that 'error' is unhandled and ends the process
 * (here: the Jest worker, failing the run).
 */
import pg from 'pg';
import request from 'supertest';
import { onConnectionLoss } from '../../src/db/pool';
import { runMigrations } from '../../src/db/migrate';
import { buildTestApp, ownerPool, type TestApp } from '../helpers/app';
import { loginAs } from '../helpers/auth';
import { testDbUrl } from '../helpers/env';

let t: TestApp;
let owner: pg.Pool;

beforeAll(async () => {
  t = await buildTestApp();
  owner = ownerPool();
});

afterAll(async () => {
  await t.close();
  await owner.end();
});

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i += 1) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function terminate(pid: number): Promise<void> {
  const { rows } = await owner.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
  expect(rows[0]?.ok).toBe(true);
}

describe('a lost database connection', () => {
  test('when a checked-out pool client sits idle inside a transaction and its backend is terminated, then the process lives, the loss is logged once, the client is discarded and the next request succeeds', async () => {
    const login = await loginAs(t, { role: 'user' });
    const pool = t.composition.pool;
    const client = await pool.connect();
    await client.query('BEGIN');
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const before = t.logs.filter((l) => l.includes('database connection lost')).length;
    await terminate((rows[0] as { pid: number }).pid);
    await until(
      () => t.logs.filter((l) => l.includes('database connection lost')).length > before,
      'the loss to be logged',
    );
    // The client is unusable now: its next statement fails as a lost connection, and release discards it.
    await expect(client.query('SELECT 1')).rejects.toThrow(/not queryable|terminat/i);
    const totalBefore = pool.totalCount;
    client.release();
    expect(pool.totalCount).toBe(totalBefore - 1);
    const lines = t.logs.filter((l) => l.includes('database connection lost'));
    expect(lines.length - before).toBe(1);
    expect(lines[lines.length - 1]).toContain('"level":"warn"');
    const res = await request(t.app).get('/api/v1/security/user').set('Authorization', login.authorization);
    expect(res.status).toBe(200);
    const write = await request(t.app)
      .post('/api/v1/security/audit/log')
      .set('Authorization', login.authorization)
      .send({ action: 'vehicle.unlock', resourceType: 'vehicle' });
    expect(write.status).toBe(200);
  });

  test('when a checked-out client has run nothing yet and its backend is terminated, then the process lives and the pool serves the next query', async () => {
    const pool = t.composition.pool;
    const client = await pool.connect();
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const before = t.logs.filter((l) => l.includes('database connection lost')).length;
    await terminate((rows[0] as { pid: number }).pid);
    await until(
      () => t.logs.filter((l) => l.includes('database connection lost')).length > before,
      'the loss to be logged',
    );
    client.release();
    expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one).toBe(1);
  });

  test('when an idle pool client (not checked out) loses its backend, then the pool logs it as a warning and replaces it', async () => {
    const pool = t.composition.pool;
    const client = await pool.connect();
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    client.release();
    await terminate((rows[0] as { pid: number }).pid);
    await until(() => t.logs.some((l) => l.includes('idle connection lost')), 'the pool to log the idle loss');
    expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one).toBe(1);
  });

  test('when a dedicated client with onConnectionLoss loses its backend, then the error is logged once and the process lives', async () => {
    const warnings: Array<{ msg: string; meta: unknown }> = [];
    const client = new pg.Client({ connectionString: testDbUrl() });
    onConnectionLoss(
      client,
      { warn: (msg: string, meta?: unknown) => void warnings.push({ msg, meta }) } as never,
      'test',
    );
    await client.connect();
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    await terminate((rows[0] as { pid: number }).pid);
    await until(() => warnings.length > 0, 'the loss to be logged');
    await expect(client.query('SELECT 1')).rejects.toThrow();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toEqual({
      msg: 'database connection lost',
      meta: { client: 'test', err: expect.objectContaining({ message: expect.any(String) }) },
    });
    await client.end().catch(() => undefined);
  });

  test('the migration client carries a listener too (a run with nothing pending still works)', async () => {
    const r = await runMigrations(testDbUrl());
    expect(r.applied).toEqual([]);
  });
});
