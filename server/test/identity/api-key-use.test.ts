/**
 * The per-use audit of an API key (CONTRACT §11, issue 19): every use is recorded exactly once
 * with the key as actor and committed before the response — by key.api.used, or by the handler's
 * own row naming the key (POST /audit/log) — on success and on every failure path; a use that
 * cannot be recorded is answered 500. And the batched key lookup: requests arriving together
 * share one read, each gets its own answer, and a revoked key fails on the next request.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import request from 'supertest';
import { createApiKeyLookup, FIND_API_KEYS_BY_PREFIXES } from '../../src/services/auth/api-key-repository';
import { ownerPool } from '../helpers/app';
import { loginAs, type TestLogin } from '../helpers/auth';
import { buildAuthApp, type AuthTestApp } from '../auth/helpers';
import { SECURITY } from './helpers';

let t: AuthTestApp;
let owner: pg.Pool;
beforeAll(async () => {
  t = await buildAuthApp(null);
  owner = ownerPool();
});
afterAll(async () => {
  await t.close();
  await owner.end();
});

async function newKey(app: AuthTestApp, scopes: string[], admin?: TestLogin) {
  const a = admin ?? (await loginAs(app, { role: 'admin' }));
  const res = await request(app.app)
    .post(`${SECURITY}/api-keys`)
    .set('Authorization', a.authorization)
    .send({ name: 'use audit', scopes });
  if (res.status !== 201) throw new Error(`create: ${res.status} ${JSON.stringify(res.body)}`);
  return { admin: a, key: res.body.key as string, id: res.body.apiKey.id as string };
}

/** The rows a request wrote, read right after its response arrived. */
async function rowsOf(
  rid: string,
): Promise<Array<{ action: string; api_key_id: string | null; user_id: string | null }>> {
  const { rows } = await owner.query(
    'SELECT action, api_key_id, user_id, resource_id FROM audit_logs WHERE request_id = $1 ORDER BY id',
    [rid],
  );
  return rows;
}

const uses = (rows: Array<{ action: string }>) => rows.filter((r) => r.action === 'key.api.used').length;

const post = (key: string, body: unknown, rid: string) =>
  request(t.app)
    .post(`${SECURITY}/audit/log`)
    .set('Authorization', `Bearer ${key}`)
    .set('X-Request-Id', rid)
    .send(body as object);
const event = { action: 'deploy.finished', resourceType: 'service', resourceId: 'svc-1' };

describe('an API key use is audited exactly once, before the response', () => {
  test('when a key records an event, then the request wrote one row, the event, naming the key and no user', async () => {
    const { key, id } = await newKey(t, ['audit:write']);
    const rid = randomUUID();
    expect((await post(key, event, rid)).status).toBe(200);
    expect(await rowsOf(rid)).toEqual([
      expect.objectContaining({ action: 'deploy.finished', api_key_id: id, user_id: null }),
    ]);
  });

  test.each([
    ['an invalid body (400)', { action: 'deploy.finished' }, 400],
    ['an identity field in the body (400)', { ...event, userId: randomUUID() }, 400],
    ['a reserved action (400)', { ...event, action: 'auth.login.success' }, 400],
  ])(
    'when a key sends %s, then key.api.used is written once and nothing else claims the use',
    async (_n, body, status) => {
      const { key, id } = await newKey(t, ['audit:write']);
      const rid = randomUUID();
      expect((await post(key, body, rid)).status).toBe(status);
      expect(await rowsOf(rid)).toEqual([expect.objectContaining({ action: 'key.api.used', api_key_id: id })]);
    },
  );

  test('when a key lacks the scope (403), then key.api.used once beside access.denied', async () => {
    const { key, id } = await newKey(t, ['audit:read']);
    const rid = randomUUID();
    expect((await post(key, event, rid)).status).toBe(403);
    const rows = await rowsOf(rid);
    expect(uses(rows)).toBe(1);
    expect(rows).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ action: 'key.api.used', api_key_id: id }),
        expect.objectContaining({ action: 'access.denied', api_key_id: id }),
      ]),
    );
  });

  test('when a key sends an Idempotency-Key, then the event (in the kept transaction) and key.api.used are written; a replay writes key.api.used only', async () => {
    const { key, id } = await newKey(t, ['audit:write']);
    const idem = randomUUID();
    const rid1 = randomUUID();
    const first = await post(key, event, rid1).set('Idempotency-Key', idem);
    expect(first.status).toBe(200);
    expect((await rowsOf(rid1)).map((r) => r.action).sort()).toEqual(['deploy.finished', 'key.api.used']);
    const rid2 = randomUUID();
    const again = await post(key, event, rid2).set('Idempotency-Key', idem);
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(await rowsOf(rid2)).toEqual([expect.objectContaining({ action: 'key.api.used', api_key_id: id })]);
  });

  test('when a key introspects or reads the trail, then each request has exactly one key.api.used row once it is answered', async () => {
    const { key, id } = await newKey(t, ['tokens:introspect', 'audit:read']);
    const user = await loginAs(t);
    for (let i = 0; i < 3; i++) {
      const rid = randomUUID();
      const res = await request(t.app)
        .post('/oauth/introspect')
        .set('Authorization', `Bearer ${key}`)
        .set('X-Request-Id', rid)
        .type('form')
        .send({ token: user.token });
      expect(res.status).toBe(200);
      expect(res.body.active).toBe(false); // another tenant's token
      expect(await rowsOf(rid)).toEqual([expect.objectContaining({ action: 'key.api.used', api_key_id: id })]);
    }
    const rid = randomUUID();
    const res = await request(t.app)
      .get(`${SECURITY}/audit/logs`)
      .set('Authorization', `Bearer ${key}`)
      .set('X-Request-Id', rid);
    expect(res.status).toBe(200);
    expect(await rowsOf(rid)).toEqual([expect.objectContaining({ action: 'key.api.used', api_key_id: id })]);
  });

  test('when the per-key rate limit refuses a request (429), then that use is audited too', async () => {
    const app = await buildAuthApp(null, { env: { RATE_LIMIT_USER_MAX: '2' } });
    try {
      const { key, id } = await newKey(app, ['audit:read']);
      const statuses: number[] = [];
      const rids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const rid = randomUUID();
        rids.push(rid);
        statuses.push(
          (
            await request(app.app)
              .get(`${SECURITY}/audit/logs`)
              .set('Authorization', `Bearer ${key}`)
              .set('X-Request-Id', rid)
          ).status,
        );
      }
      expect(statuses).toEqual([200, 200, 429]);
      for (const rid of rids)
        expect(await rowsOf(rid)).toEqual([expect.objectContaining({ action: 'key.api.used', api_key_id: id })]);
    } finally {
      await app.close();
    }
  });

  test('when the use cannot be recorded, then the prepared answer is withheld: 500; a write whose own row names the key still succeeds', async () => {
    const { key } = await newKey(t, ['audit:write', 'tokens:introspect']);
    const fn = `test_refuse_key_use_${randomUUID().replace(/-/g, '')}`;
    await owner.query(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.action = 'key.api.used' THEN RAISE EXCEPTION 'refused by the test'; END IF;
        RETURN NEW;
      END $$`);
    await owner.query(`CREATE TRIGGER ${fn} BEFORE INSERT ON audit_logs FOR EACH ROW EXECUTE FUNCTION ${fn}()`);
    try {
      const user = await loginAs(t);
      const intro = await request(t.app)
        .post('/oauth/introspect')
        .set('Authorization', `Bearer ${key}`)
        .type('form')
        .send({ token: user.token });
      expect(intro.status).toBe(500);
      expect(intro.body.error.code).toBe('INTERNAL_ERROR');
      expect(JSON.stringify(intro.body)).not.toContain('active');

      const bad = await post(key, { action: 'deploy.finished' }, randomUUID());
      expect(bad.status).toBe(500);
      expect(bad.body.error.code).toBe('INTERNAL_ERROR');

      const rid = randomUUID();
      expect((await post(key, event, rid)).status).toBe(200);
      expect((await rowsOf(rid)).map((r) => r.action)).toEqual(['deploy.finished']);
    } finally {
      await owner.query(`DROP TRIGGER ${fn} ON audit_logs`);
      await owner.query(`DROP FUNCTION ${fn}()`);
    }
  });
});

describe('an API key use record that times out', () => {
  test('when the database cancels the use record (statement timeout), then the answer is withheld as the error handler answers it: 503 with Retry-After', async () => {
    const app = await buildAuthApp(null, { env: { DB_STATEMENT_TIMEOUT: '300' } });
    const fn = `test_slow_key_use_${randomUUID().replace(/-/g, '')}`;
    try {
      const { key } = await newKey(app, ['tokens:introspect']);
      await owner.query(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.action = 'key.api.used' THEN PERFORM pg_sleep(2); END IF;
          RETURN NEW;
        END $$`);
      await owner.query(`CREATE TRIGGER ${fn} BEFORE INSERT ON audit_logs FOR EACH ROW EXECUTE FUNCTION ${fn}()`);
      const res = await request(app.app)
        .post('/oauth/introspect')
        .set('Authorization', `Bearer ${key}`)
        .type('form')
        .send({ token: 'not-a-token' });
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.body.error.code).toBe('SERVICE_UNAVAILABLE');
    } finally {
      await owner.query(`DROP TRIGGER IF EXISTS ${fn} ON audit_logs`);
      await owner.query(`DROP FUNCTION IF EXISTS ${fn}()`);
      await app.close();
    }
  });
});

describe('batched API key lookup', () => {
  test('when lookups for two keys, a repeated prefix and an unknown prefix arrive in one turn, then one statement answers each with its own row', async () => {
    const a = await newKey(t, ['audit:write']);
    const b = await newKey(t, ['audit:read']);
    const prefixOf = (k: string) => k.slice(4, 16);
    const lookup = createApiKeyLookup(t.composition.pool);
    const [ra, rb, rUnknown, rDup] = await Promise.all([
      lookup(prefixOf(a.key)),
      lookup(prefixOf(b.key)),
      lookup('zzzzzzzzzzzz'),
      lookup(prefixOf(a.key)),
    ]);
    expect(ra).toMatchObject({ id: a.id, tenantId: a.admin.tenantId, scopes: ['audit:write'], revokedAt: null });
    expect(rb).toMatchObject({ id: b.id, tenantId: b.admin.tenantId, scopes: ['audit:read'] });
    expect(rUnknown).toBeNull();
    expect(rDup).toEqual(ra);
    expect(FIND_API_KEYS_BY_PREFIXES).toContain('auth_api_key_by_prefix(p.prefix)');
  });

  test('when requests with a good key, a wrong secret and an unknown key arrive together, then each gets its own answer', async () => {
    const a = await newKey(t, ['audit:write']);
    const wrong = `${a.key.slice(0, -3)}${a.key.endsWith('AAA') ? 'BBB' : 'AAA'}`;
    const rids = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    const res = await Promise.all([
      post(a.key, event, rids[0] as string),
      post(wrong, event, rids[1] as string),
      post(`fsk_zzzzzzzzzzzz_${'A'.repeat(43)}`, event, rids[2] as string),
      post(a.key, event, rids[3] as string),
    ]);
    expect(res.map((r) => r.status)).toEqual([200, 401, 401, 200]);
    expect((await rowsOf(rids[1] as string)).map((r) => r.action)).toEqual(['auth.apikey.rejected']);
    expect((await rowsOf(rids[3] as string)).map((r) => r.action)).toEqual(['deploy.finished']);
  });

  test('when a key is revoked while it is in use, then the next request is refused', async () => {
    const a = await newKey(t, ['audit:write']);
    const burst = await Promise.all(Array.from({ length: 8 }, () => post(a.key, event, randomUUID())));
    expect(burst.every((r) => r.status === 200)).toBe(true);
    const del = await request(t.app).delete(`${SECURITY}/api-keys/${a.id}`).set('Authorization', a.admin.authorization);
    expect(del.status).toBe(200);
    const rid = randomUUID();
    expect((await post(a.key, event, rid)).status).toBe(401);
    expect(await rowsOf(rid)).toEqual([expect.objectContaining({ action: 'auth.apikey.rejected' })]);
  });
});
