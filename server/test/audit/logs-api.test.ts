/** GET /api/v1/security/audit/logs */
import type pg from 'pg';
import request from 'supertest';
import type { AuditEntry } from '../../src/services/audit/types';
import { buildTestApp, ownerPool, type TestApp } from '../helpers/app';
import { loginAs, type TestLogin } from '../helpers/auth';
import { uniqueTenant } from '../helpers/env';
import { sealAll } from './helpers';

const PATH = '/api/v1/security/audit/logs';
let t: TestApp;
let owner: pg.Pool;
let admin: TestLogin;
let alice: TestLogin;
let bob: TestLogin;
let viewer: TestLogin;
let otherAdmin: TestLogin;
const ids: Record<string, string> = {};

beforeAll(async () => {
  t = await buildTestApp();
  owner = ownerPool();
  const tenantId = uniqueTenant('logs');
  admin = await loginAs(t, { role: 'admin', tenantId });
  alice = await loginAs(t, { role: 'user', tenantId });
  bob = await loginAs(t, { role: 'user', tenantId });
  viewer = await loginAs(t, { role: 'viewer', tenantId });
  otherAdmin = await loginAs(t, { role: 'admin', tenantId: uniqueTenant('logs-other') });
  const audit = t.composition.services.audit;
  const rec = async (key: string, e: Parameters<typeof audit.record>[0]) => {
    ids[key] = (await audit.record(e)).id;
  };
  await rec('alice1', {
    tenantId,
    userId: alice.userId,
    action: 'vehicle.updated',
    resourceType: 'vehicle',
    resourceId: 'V1',
    ipAddress: '10.0.0.1',
  });
  await rec('alice2', {
    tenantId,
    userId: alice.userId,
    action: 'vehicle.deleted',
    resourceType: 'vehicle',
    resourceId: 'V2',
    result: 'failure',
    severity: 'high',
  });
  await rec('bob1', {
    tenantId,
    userId: bob.userId,
    action: 'vehicle.updated',
    resourceType: 'vehicle',
    resourceId: 'V1',
  });
  await rec('bob2', {
    tenantId,
    userId: bob.userId,
    action: 'route.planned',
    resourceType: 'route',
    resourceId: 'R9',
    severity: 'critical',
  });
  await rec('viewer1', { tenantId, userId: viewer.userId, action: 'report.viewed', resourceType: 'report' });
  await rec('sys1', { tenantId, userId: null, action: 'system.config_warning', resourceType: 'config' });
  await rec('other1', {
    tenantId: otherAdmin.tenantId,
    userId: otherAdmin.userId,
    action: 'vehicle.updated',
    resourceType: 'vehicle',
    resourceId: 'V1',
  });
});
afterAll(async () => {
  await owner.end();
  await t.close();
});

const get = (login: TestLogin, query: Record<string, string | string[]> = {}) =>
  request(t.app).get(PATH).query(query).set('Authorization', login.authorization);
const idsOf = (res: request.Response): string[] => (res.body.entries as AuditEntry[]).map((e) => e.id);

describe('who sees what', () => {
  it('when a user lists events, then only their own rows come back', async () => {
    const res = await get(alice);
    expect(res.status).toBe(200);
    expect(idsOf(res)).toEqual([ids.alice2, ids.alice1]);
    expect(res.body.nextCursor).toBeNull();
  });

  it('when a viewer lists events, then only their own rows come back', async () => {
    const res = await get(viewer);
    expect(res.status).toBe(200);
    expect(idsOf(res)).toEqual([ids.viewer1]);
  });

  it("when an admin lists events, then the whole tenant's rows come back, newest first", async () => {
    const res = await get(admin, { limit: '500' });
    expect(res.status).toBe(200);
    const got = idsOf(res);
    expect(got).toEqual(expect.arrayContaining([ids.alice1, ids.alice2, ids.bob1, ids.bob2, ids.viewer1, ids.sys1]));
    expect(got).not.toContain(ids.other1);
    const times = (res.body.entries as AuditEntry[]).map((e) => e.createdAt);
    expect([...times].sort().reverse()).toEqual(times);
  });

  it("when an admin of another tenant filters for this tenant's resource, then only its own tenant's row comes back", async () => {
    const res = await get(otherAdmin, { resourceType: 'vehicle', resourceId: 'V1' });
    expect(res.status).toBe(200);
    expect(idsOf(res)).toEqual([ids.other1]);
  });

  it("when a user asks for another user's events, then 403 and the attempt is audited", async () => {
    const res = await get(alice, { userId: bob.userId });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('FORBIDDEN');
    const { rows } = await owner.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_logs WHERE user_id = $1 AND action = 'access.denied' AND resource_id = $2",
      [alice.userId, `user:${bob.userId}`],
    );
    expect(rows[0]?.n).toBe(1);
  });

  it('when a user asks for their own events by id, then 200', async () => {
    const res = await get(alice, { userId: alice.userId, resourceType: 'vehicle' });
    expect(res.status).toBe(200);
    expect(idsOf(res)).toEqual([ids.alice2, ids.alice1]);
  });

  it('when a user asks for their own events with the id in upper case, then 200 (UUIDs compare without case) and nothing is audited as denied', async () => {
    const res = await get(alice, { userId: alice.userId.toUpperCase(), resourceType: 'vehicle' });
    expect(res.status).toBe(200);
    expect(idsOf(res)).toEqual([ids.alice2, ids.alice1]);
    const { rows } = await owner.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_logs WHERE user_id = $1 AND action = 'access.denied' AND resource_id ILIKE $2",
      [alice.userId, `user:${alice.userId}`],
    );
    expect(rows[0]?.n).toBe(0);
  });

  it("when an admin filters by a user id in upper case, then that user's rows come back", async () => {
    const res = await get(admin, { userId: bob.userId.toUpperCase() });
    expect(res.status).toBe(200);
    expect(idsOf(res)).toEqual([ids.bob2, ids.bob1]);
  });

  it('when there is no token, then 401', async () => {
    const res = await request(t.app).get(PATH);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('UNAUTHENTICATED');
  });
});

describe('entries', () => {
  it('when an entry is returned, then it has the documented shape, microsecond time, and its chain position once sealed', async () => {
    const before = await get(alice, { action: 'vehicle.updated' });
    const { chain, ...rest } = before.body.entries[0];
    expect(chain === null || typeof chain === 'object').toBe(true); // null until the sealer has run
    expect(rest).toEqual({
      id: ids.alice1,
      tenantId: alice.tenantId,
      userId: alice.userId,
      action: 'vehicle.updated',
      resourceType: 'vehicle',
      resourceId: 'V1',
      before: null,
      after: null,
      ipAddress: '10.0.0.1',
      userAgent: null,
      result: 'success',
      errorMessage: null,
      severity: 'low',
      requestId: null,
      createdAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/),
    });
    await sealAll(owner);
    const after = await get(alice, { action: 'vehicle.updated' });
    expect(after.body.entries[0].chain).toEqual({
      seq: expect.stringMatching(/^\d+$/),
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
  });
});

describe('filters', () => {
  it.each([
    [{ userId: 'BOB' }, ['bob2', 'bob1']],
    [{ action: 'vehicle.updated' }, ['bob1', 'alice1']],
    [{ resourceType: 'route' }, ['bob2']],
    [{ resourceType: 'vehicle', resourceId: 'V1' }, ['bob1', 'alice1']],
    [{ result: 'failure' }, ['alice2']],
    [{ severity: 'critical' }, ['bob2']],
    [{ severity: 'medium', action: 'system.config_warning' }, ['sys1']],
  ] as Array<[Record<string, string>, string[]]>)(
    'when an admin filters by %j, then exactly the matching rows come back',
    async (filter, expected) => {
      const query = { ...filter };
      if (query.userId === 'BOB') query.userId = bob.userId;
      const res = await get(admin, query);
      expect(res.status).toBe(200);
      expect(idsOf(res)).toEqual(expected.map((k) => ids[k]));
    },
  );

  it('when from/to bound the time, then rows outside are excluded (bounds inclusive)', async () => {
    const all = (await get(admin, { limit: '500' })).body.entries as AuditEntry[];
    const pivot = all.find((e) => e.id === ids.bob1) as AuditEntry;
    const newer = await get(admin, { from: pivot.createdAt });
    expect(idsOf(newer)).toContain(ids.bob1);
    expect(idsOf(newer)).not.toContain(ids.alice1);
    const older = await get(admin, { to: pivot.createdAt });
    expect(idsOf(older)).toContain(ids.bob1);
    expect(idsOf(older)).not.toContain(ids.bob2);
    const none = await get(admin, { from: '2001-01-01T00:00:00Z', to: '2001-01-02T00:00:00+02:00' });
    expect(none.body.entries).toEqual([]);
  });

  it.each([
    [{ limit: '501' }, 'query.limit'],
    [{ limit: '0' }, 'query.limit'],
    [{ limit: 'ten' }, 'query.limit'],
    [{ limit: '-1' }, 'query.limit'],
    [{ userId: 'not-a-uuid' }, 'query.userId'],
    [{ result: 'maybe' }, 'query.result'],
    [{ severity: 'urgent' }, 'query.severity'],
    [{ from: 'yesterday' }, 'query.from'],
    [{ from: '2026-02-30T00:00:00Z' }, 'query.from'],
    [{ from: '2026-01-02T00:00:00Z', to: '2026-01-01T00:00:00Z' }, 'query.from'],
    [{ cursor: 'garbage!' }, 'query.cursor'],
    [{ cursor: Buffer.from('2026-01-01|1').toString('base64url') }, 'query.cursor'],
    // Values PostgreSQL cannot store must be refused here, not fail in the database (500).
    [{ from: '0000-01-01T00:00:00Z' }, 'query.from'],
    [{ from: '2026-01-01T00:00:00+16:00' }, 'query.from'],
    [{ to: '2026-01-01T00:00:00-23:59' }, 'query.to'],
    [{ cursor: Buffer.from('2026-02-30T10:00:00.000000Z|1').toString('base64url') }, 'query.cursor'],
    [{ cursor: Buffer.from('2026-04-31T10:00:00.000000Z|1').toString('base64url') }, 'query.cursor'],
    [{ cursor: Buffer.from('0000-01-01T10:00:00.000000Z|1').toString('base64url') }, 'query.cursor'],
    [{ cursor: Buffer.from('2026-12-05T10:00:00.000000Z|9999999999999999999').toString('base64url') }, 'query.cursor'],
    [{ action: ['a.b', 'c.d'] }, 'query.action'],
    [{ unknown: 'x' }, 'query'],
    [{ action: "x' OR 1=1 --".padEnd(200, 'x') }, 'query.action'],
  ] as Array<[Record<string, string | string[]>, string]>)(
    'when the query is %j, then 400 names %s',
    async (query, path) => {
      const res = await get(admin, query);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
      expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
    },
  );

  it('when a filter value is an injection string, then it is treated as data and matches nothing', async () => {
    const res = await get(admin, {
      action: "vehicle.updated' OR '1'='1",
      resourceId: "V1'; DROP TABLE audit_logs; --",
    });
    expect(res.status).toBe(200);
    expect(res.body.entries).toEqual([]);
  });

  it('when a query value carries a NUL byte, then 400', async () => {
    const res = await request(t.app).get(`${PATH}?action=a%00b`).set('Authorization', admin.authorization);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
  });
});

describe('pagination', () => {
  it('when a tenant is paged through, then every row appears exactly once and the last page has no cursor', async () => {
    const tenantId = uniqueTenant('page');
    const pager = await loginAs(t, { role: 'admin', tenantId });
    const written: string[] = [];
    for (let i = 0; i < 23; i += 1)
      written.push(
        (
          await t.composition.services.audit.record({
            tenantId,
            action: 'page.row',
            resourceType: 'thing',
            resourceId: String(i),
          })
        ).id,
      );
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: request.Response = await get(pager, cursor ? { limit: '5', cursor } : { limit: '5' });
      expect(res.status).toBe(200);
      seen.push(...idsOf(res));
      cursor = res.body.nextCursor;
      pages += 1;
    } while (cursor);
    expect(pages).toBe(5);
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort()).toEqual([...written].sort());
  });

  it('when rows are inserted while a client pages, then no row is skipped or repeated', async () => {
    const tenantId = uniqueTenant('page');
    const pager = await loginAs(t, { role: 'admin', tenantId });
    const audit = t.composition.services.audit;
    const existing: string[] = [];
    // Several rows share a timestamp (one transaction) so ties on created_at are exercised.
    for (let b = 0; b < 6; b += 1) {
      const c = await t.composition.pool.connect();
      try {
        await c.query('BEGIN');
        await c.query("SELECT set_config('app.tenant_id', $1, true)", [tenantId]);
        for (let i = 0; i < 8; i += 1)
          existing.push((await audit.record({ tenantId, action: 'page.old', resourceType: 'thing' }, c)).id);
        await c.query('COMMIT');
      } finally {
        c.release();
      }
    }
    let writing = true;
    const concurrent: string[] = [];
    const writer = (async () => {
      while (writing) concurrent.push((await audit.record({ tenantId, action: 'page.new', resourceType: 'thing' })).id);
    })();
    const seen: string[] = [];
    let cursor: string | null = null;
    try {
      do {
        const res: request.Response = await get(pager, cursor ? { limit: '7', cursor } : { limit: '7' });
        expect(res.status).toBe(200);
        seen.push(...idsOf(res));
        cursor = res.body.nextCursor;
        await new Promise((r) => setTimeout(r, 5));
      } while (cursor);
    } finally {
      writing = false;
      await writer;
    }
    expect(concurrent.length).toBeGreaterThan(0);
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of existing) expect(seen).toContain(id);
  });
});
