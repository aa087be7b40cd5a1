/**
 * Service API keys (CONTRACT §11): create/list/revoke, the key format and its keyed hash,
 * scope enforcement through the permission matrix, expiry, last use, per-use audit with the
 * key as actor, per-key rate limit, revocation seen by every instance at once.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import request from 'supertest';
import { permissionMatrix } from '../../src/services/auth/rbac';
import { ownerPool } from '../helpers/app';
import { loginAs, type TestLogin } from '../helpers/auth';
import { auditByRequest, buildAuthApp, expectGeneric401, type AuthTestApp } from '../auth/helpers';
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

const create = (app: AuthTestApp, l: TestLogin, body: unknown) =>
  request(app.app)
    .post(`${SECURITY}/api-keys`)
    .set('Authorization', l.authorization)
    .send(body as object);
const auditLog = (app: AuthTestApp, key: string, rid = randomUUID()) =>
  request(app.app)
    .post(`${SECURITY}/audit/log`)
    .set('Authorization', `Bearer ${key}`)
    .set('X-Request-Id', rid)
    .send({ action: 'deploy.finished', resourceType: 'service', resourceId: 'svc-1' });

async function newKey(scopes: string[], opts: { admin?: TestLogin; expiresAt?: string; app?: AuthTestApp } = {}) {
  const app = opts.app ?? t;
  const admin = opts.admin ?? (await loginAs(app, { role: 'admin' }));
  const res = await create(app, admin, {
    name: 'ci pipeline',
    scopes,
    ...(opts.expiresAt ? { expiresAt: opts.expiresAt } : {}),
  });
  if (res.status !== 201) throw new Error(`create: ${res.status} ${JSON.stringify(res.body)}`);
  return { admin, key: res.body.key as string, apiKey: res.body.apiKey as { id: string; prefix: string } };
}

describe('API key management', () => {
  test('when an admin creates a key, then 201 returns its metadata and the key once; the database keeps only a keyed hash', async () => {
    const admin = await loginAs(t, { role: 'admin' });
    const res = await create(t, admin, { name: 'ci pipeline', scopes: ['audit:write', 'audit:read'] });
    expect(res.status).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({
      success: true,
      apiKey: {
        id: expect.any(String),
        name: 'ci pipeline',
        scopes: ['audit:write', 'audit:read'],
        prefix: expect.stringMatching(/^[a-z0-9]{12}$/),
        createdAt: expect.any(String),
        expiresAt: null,
      },
      key: expect.stringMatching(/^fsk_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/),
    });
    const secret = (res.body.key as string).slice(4 + 12 + 1);
    expect(Buffer.from(secret, 'base64url').length * 8).toBeGreaterThanOrEqual(192);
    expect(res.body.key).toContain(res.body.apiKey.prefix);
    const row = (await owner.query('SELECT * FROM api_keys WHERE id = $1', [res.body.apiKey.id])).rows[0];
    expect(row.secret_hash).toMatch(/^s1:[^:]+:[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(row.tenant_id).toBe(admin.tenantId);
    const audit = await owner.query(
      "SELECT after FROM audit_logs WHERE action = 'key.api.created' AND resource_id = $1",
      [res.body.apiKey.id],
    );
    expect(JSON.stringify(audit.rows)).not.toContain(secret);
  });

  test('when listing, then metadata with lastUsedAt and status, never the secret or its hash; only the own tenant', async () => {
    const { admin, apiKey, key } = await newKey(['audit:write']);
    await newKey(['audit:write']); // another tenant
    const res = await request(t.app).get(`${SECURITY}/api-keys`).set('Authorization', admin.authorization);
    expect(res.status).toBe(200);
    expect(res.body.apiKeys).toEqual([
      expect.objectContaining({
        id: apiKey.id,
        prefix: apiKey.prefix,
        lastUsedAt: null,
        revokedAt: null,
        status: 'active',
        createdBy: admin.userId,
      }),
    ]);
    expect(JSON.stringify(res.body)).not.toMatch(/secret|s1:/);
    expect(JSON.stringify(res.body)).not.toContain(key.slice(-20));
  });

  test('when a non-admin or an API key tries to manage keys, then 403 / 401', async () => {
    const user = await loginAs(t, { role: 'user' });
    expect((await create(t, user, { name: 'x', scopes: ['audit:write'] })).status).toBe(403);
    expect((await request(t.app).get(`${SECURITY}/api-keys`).set('Authorization', user.authorization)).status).toBe(
      403,
    );
    const { key } = await newKey(['audit:write', 'audit:read', 'siem:write', 'tokens:introspect']);
    expectGeneric401(await request(t.app).get(`${SECURITY}/api-keys`).set('Authorization', `Bearer ${key}`));
    expectGeneric401(await request(t.app).get(`${SECURITY}/user`).set('Authorization', `Bearer ${key}`));
  });

  test.each([
    ['an unknown scope', { name: 'x', scopes: ['admin'] }],
    ['no scopes', { name: 'x', scopes: [] }],
    ['a repeated scope', { name: 'x', scopes: ['audit:write', 'audit:write'] }],
    ['an empty name', { name: '  ', scopes: ['audit:write'] }],
    ['a name with control characters', { name: 'a\u0000b', scopes: ['audit:write'] }],
    ['a name of 101 characters', { name: 'n'.repeat(101), scopes: ['audit:write'] }],
    ['an expiry in the past', { name: 'x', scopes: ['audit:write'], expiresAt: '2001-01-01T00:00:00Z' }],
    [
      'an expiry in 3 years',
      { name: 'x', scopes: ['audit:write'], expiresAt: new Date(Date.now() + 3 * 365 * 86_400_000).toISOString() },
    ],
    ['a non-date expiry', { name: 'x', scopes: ['audit:write'], expiresAt: 'tomorrow' }],
    ['an unknown key', { name: 'x', scopes: ['audit:write'], tenantId: 'other' }],
    ['scopes as a string', { name: 'x', scopes: 'audit:write' }],
  ])('when creating with %s, then 400 VALIDATION_FAILED', async (_n, body) => {
    const admin = await loginAs(t, { role: 'admin' });
    const res = await create(t, admin, body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
  });

  test('when revoking, then 200 and the key fails on the next request on this and another instance; another tenant gets 404; a malformed id 400', async () => {
    // Another instance of the same deployment: the same master key.
    const other = await buildAuthApp(null, {
      env: { FLEET_ENCRYPTION_KEY: (t.config.keys.fallbackKey as Buffer).toString('base64') },
    });
    try {
      const { admin, apiKey, key } = await newKey(['audit:write']);
      expect((await auditLog(other, key)).status).toBe(200);
      const stranger = await loginAs(t, { role: 'admin' });
      expect(
        (await request(t.app).delete(`${SECURITY}/api-keys/${apiKey.id}`).set('Authorization', stranger.authorization))
          .status,
      ).toBe(404);
      expect(
        (await request(t.app).delete(`${SECURITY}/api-keys/not-a-uuid`).set('Authorization', admin.authorization))
          .status,
      ).toBe(400);
      expect(
        (await request(t.app).delete(`${SECURITY}/api-keys/${apiKey.id}`).set('Authorization', admin.authorization))
          .status,
      ).toBe(200);
      const rid = randomUUID();
      expectGeneric401(await auditLog(other, key, rid));
      expect(await auditByRequest(owner, rid)).toEqual([
        expect.objectContaining({
          action: 'auth.apikey.rejected',
          tenant_id: admin.tenantId,
          error_message: 'API key revoked',
        }),
      ]);
      expectGeneric401(await auditLog(t, key));
      expect(
        (await request(t.app).delete(`${SECURITY}/api-keys/${apiKey.id}`).set('Authorization', admin.authorization))
          .status,
      ).toBe(404);
    } finally {
      await other.close();
    }
  });
});

describe('API key authentication', () => {
  test('when a key with audit:write records an event, then the row names the key as actor (api_key_id, no user) and is the use record (no separate key.api.used)', async () => {
    const { admin, apiKey, key } = await newKey(['audit:write']);
    const rid = randomUUID();
    const res = await auditLog(t, key, rid);
    expect(res.status).toBe(200);
    const rows = (
      await owner.query(
        'SELECT action, tenant_id, user_id, api_key_id, resource_type, resource_id FROM audit_logs WHERE request_id = $1 ORDER BY id',
        [rid],
      )
    ).rows;
    expect(rows).toEqual([
      {
        action: 'deploy.finished',
        tenant_id: admin.tenantId,
        user_id: null,
        api_key_id: apiKey.id,
        resource_type: 'service',
        resource_id: 'svc-1',
      },
    ]);
  });

  test('when a key lacks the scope, then 403 (access.denied by the matrix); audit:read reads the whole tenant', async () => {
    const { admin, key } = await newKey(['audit:read']);
    expect((await auditLog(t, key)).status).toBe(403);
    await request(t.app)
      .post(`${SECURITY}/audit/log`)
      .set('Authorization', admin.authorization)
      .send({ action: 'x.admin_wrote', resourceType: 'r' });
    const res = await request(t.app)
      .get(`${SECURITY}/audit/logs?action=x.admin_wrote`)
      .set('Authorization', `Bearer ${key}`);
    expect(res.status).toBe(200);
    expect(res.body.entries).toHaveLength(1);
    expect(
      (await request(t.app).post(`${SECURITY}/audit/siem`).set('Authorization', `Bearer ${key}`).send({ events: [] }))
        .status,
    ).toBe(403);
  });

  test.each([
    [
      'a wrong secret',
      (k: string) => `${k.slice(0, -3)}${k.endsWith('AAA') ? 'BBB' : 'AAA'}`,
      'API key secret does not match',
    ],
    ['an unknown prefix', () => `fsk_zzzzzzzzzzzz_${'A'.repeat(43)}`, 'unknown API key'],
    ['a truncated key', (k: string) => k.slice(0, -1), 'malformed API key'],
    ['an injection string', () => "fsk_' OR 1=1 --", 'malformed API key'],
  ])('when presenting %s, then the generic 401 and auth.apikey.rejected', async (_n, mangle, reason) => {
    const { key } = await newKey(['audit:write']);
    const rid = randomUUID();
    expectGeneric401(await auditLog(t, mangle(key), rid));
    expect(await auditByRequest(owner, rid)).toEqual([
      expect.objectContaining({ action: 'auth.apikey.rejected', error_message: reason }),
    ]);
  });

  test('when a key passes its expiry (moved clock), then it is refused', async () => {
    const { key } = await newKey(['audit:write'], { expiresAt: new Date(t.clock.now() + 3600_000).toISOString() });
    expect((await auditLog(t, key)).status).toBe(200);
    t.clock.advance(3600_000);
    const rid = randomUUID();
    expectGeneric401(await auditLog(t, key, rid));
    expect((await auditByRequest(owner, rid))[0]?.error_message).toBe('API key expired');
  });

  test('when a key is used several times within a minute, then lastUsedAt is written once; after a minute again', async () => {
    const { apiKey, key } = await newKey(['audit:write']);
    const lastUsed = async () =>
      (await owner.query('SELECT last_used_at FROM api_keys WHERE id = $1', [apiKey.id])).rows[0]
        .last_used_at as Date | null;
    await auditLog(t, key);
    const first = await lastUsed();
    expect(first?.getTime()).toBe(t.clock.now());
    t.clock.advance(30_000);
    await auditLog(t, key);
    expect((await lastUsed())?.getTime()).toBe(first?.getTime());
    t.clock.advance(31_000);
    await auditLog(t, key);
    expect((await lastUsed())?.getTime()).toBe(t.clock.now());
  });

  test('when a key exceeds RATE_LIMIT_USER_MAX in the window, then 429 for that key only', async () => {
    const limited = await buildAuthApp(null, { env: { RATE_LIMIT_USER_MAX: '3' } });
    try {
      const { admin, key } = await newKey(['audit:write'], { app: limited });
      const { key: other } = await newKey(['audit:write'], { app: limited, admin });
      for (let i = 0; i < 3; i++) expect((await auditLog(limited, key)).status).toBe(200);
      const res = await auditLog(limited, key);
      expect(res.status).toBe(429);
      expect(res.headers['retry-after']).toBeDefined();
      expect((await auditLog(limited, other)).status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});

describe('the permission matrix', () => {
  test('roles and scopes map to permissions in one table (as documented)', () => {
    const m = Object.fromEntries(permissionMatrix().map((r) => [r.principal, r.permissions]));
    expect(m['scope:audit:write']).toEqual(['audit:write']);
    expect(m['scope:audit:read']).toEqual(['audit:read:own', 'audit:read:tenant']);
    expect(m['scope:siem:write']).toEqual(['siem:write']);
    expect(m['scope:tokens:introspect']).toEqual(['tokens:introspect']);
    expect(m.user).not.toContain('tokens:introspect');
    expect(m.admin).toContain('apikeys:manage');
  });
});

describe('POST /api-keys with Idempotency-Key (CONTRACT §6)', () => {
  test('when retried with the same key and body, then one key exists and the replay answers its metadata without the secret, which is never kept', async () => {
    const admin = await loginAs(t, { role: 'admin' });
    const idem = `create-${randomUUID()}`;
    const body = { name: 'retry-safe', scopes: ['audit:write'] };
    const first = await create(t, admin, body).set('Idempotency-Key', idem);
    expect(first.status).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(first.body.key).toMatch(/^fsk_/);
    const secret = (first.body.key as string).slice(4 + 12 + 1);

    const again = await create(t, admin, { scopes: ['audit:write'], name: 'retry-safe' }).set('Idempotency-Key', idem);
    expect(again.status).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.headers['cache-control']).toBe('no-store');
    expect(again.body).toEqual({ success: true, apiKey: first.body.apiKey });
    const rows = await owner.query("SELECT id FROM api_keys WHERE tenant_id = $1 AND name = 'retry-safe'", [
      admin.tenantId,
    ]);
    expect(rows.rows).toEqual([{ id: first.body.apiKey.id }]);
    const created = await owner.query(
      "SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1 AND action = 'key.api.created'",
      [admin.tenantId],
    );
    expect(created.rows[0].n).toBe(1);
    const kept = await owner.query('SELECT response FROM idempotency_keys WHERE tenant_id = $1 AND idem_key = $2', [
      admin.tenantId,
      idem,
    ]);
    expect(kept.rows).toHaveLength(1);
    expect(JSON.stringify(kept.rows[0].response)).not.toContain(secret);
    expect(JSON.stringify(kept.rows[0].response)).not.toContain('fsk_');

    // The first answer's key works; the replay did not create a second one.
    expect((await auditLog(t, first.body.key as string)).status).toBe(200);
  });

  test('when the same key comes with a different body, then 422 IDEMPOTENCY_KEY_REUSED and nothing is created; a malformed key is 400', async () => {
    const admin = await loginAs(t, { role: 'admin' });
    const idem = randomUUID();
    expect(
      (await create(t, admin, { name: 'first', scopes: ['audit:write'] }).set('Idempotency-Key', idem)).status,
    ).toBe(201);
    const other = await create(t, admin, { name: 'second', scopes: ['audit:write'] }).set('Idempotency-Key', idem);
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    const n = await owner.query("SELECT count(*)::int AS n FROM api_keys WHERE tenant_id = $1 AND name = 'second'", [
      admin.tenantId,
    ]);
    expect(n.rows[0].n).toBe(0);
    const bad = await create(t, admin, { name: 'third', scopes: ['audit:write'] }).set('Idempotency-Key', 'has space');
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('VALIDATION_FAILED');
    expect(bad.body.error.details[0].path).toBe('headers.idempotency-key');
  });

  test('without the header, then two identical posts create two keys', async () => {
    const admin = await loginAs(t, { role: 'admin' });
    expect((await create(t, admin, { name: 'twice', scopes: ['audit:read'] })).status).toBe(201);
    expect((await create(t, admin, { name: 'twice', scopes: ['audit:read'] })).status).toBe(201);
    const n = await owner.query("SELECT count(*)::int AS n FROM api_keys WHERE tenant_id = $1 AND name = 'twice'", [
      admin.tenantId,
    ]);
    expect(n.rows[0].n).toBe(2);
  });
});
