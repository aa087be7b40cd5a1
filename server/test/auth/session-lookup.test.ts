import request from 'supertest';
import {
  createSessionLookup,
  FIND_SESSION_FOR_AUTH,
  FIND_SESSIONS_FOR_AUTH,
} from '../../src/services/auth/session-repository';
import { buildTestApp, type TestApp } from '../helpers/app';
import { loginAs } from '../helpers/auth';
import { openSession } from '../helpers/session';
import { ownerPool } from '../helpers/app';
import { withTenant } from '../../src/db/transaction';

async function ownerQuery<R extends object = Record<string, unknown>>(text: string, values: unknown[]): Promise<R[]> {
  const owner = ownerPool();
  try {
    return (await owner.query<R>(text, values)).rows;
  } finally {
    await owner.end();
  }
}

describe('batched per-request session lookup', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  test('when lookups for live, revoked, unknown and cross-tenant sessions arrive in one turn, then one batch answers each with its own row', async () => {
    const a = await loginAs(t, { role: 'admin' });
    const b = await loginAs(t, { role: 'viewer', displayName: 'Bea' });
    const c = await loginAs(t);
    await withTenant(t.composition.pool, c.tenantId, (q) =>
      q.query("UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout' WHERE id = $1", [c.sessionId]),
    );
    const lookup = createSessionLookup(t.composition.pool);
    const unknown = '00000000-0000-4000-8000-000000000000';
    const [ra, rb, rc, rUnknown, rWrongTenant, rDup] = await Promise.all([
      lookup(a.sessionId, a.tenantId, a.userId),
      lookup(b.sessionId, b.tenantId, b.userId),
      lookup(c.sessionId, c.tenantId, c.userId),
      lookup(unknown, a.tenantId, a.userId),
      lookup(a.sessionId, b.tenantId, a.userId),
      lookup(a.sessionId, a.tenantId, a.userId),
    ]);
    expect(ra).toMatchObject({
      id: a.sessionId,
      userId: a.userId,
      tenantId: a.tenantId,
      role: 'admin',
      email: a.email,
      revoked: false,
      isActive: true,
    });
    expect(rb).toMatchObject({ id: b.sessionId, role: 'viewer', displayName: 'Bea', revoked: false });
    expect(rc).toMatchObject({ id: c.sessionId, revoked: true, revokedReason: 'logout' });
    expect(rUnknown).toBeNull();
    expect(rWrongTenant).toBeNull();
    expect(rDup).toEqual(ra);
    expect(typeof ra?.lastUsedMs).toBe('number');
    expect(ra?.absoluteExpiresMs).toBeGreaterThan(ra?.lastUsedMs as number);
  });

  test('when more lookups than one batch carries arrive together, then every one is answered', async () => {
    const users = await Promise.all(Array.from({ length: 5 }, () => loginAs(t)));
    const lookup = createSessionLookup(t.composition.pool);
    const results = await Promise.all(
      Array.from({ length: 150 }, (_, i) => users[i % 5]).map((u) => lookup(u!.sessionId, u!.tenantId, u!.userId)),
    );
    results.forEach((r, i) => expect(r?.id).toBe(users[i % 5]?.sessionId));
  });

  test('when concurrent requests carry different users, then each sees its own identity, and a demotion committed before a request is seen by it', async () => {
    const logins = await Promise.all([
      loginAs(t, { role: 'admin' }),
      loginAs(t, { role: 'user' }),
      loginAs(t, { role: 'viewer' }),
    ]);
    const replies = await Promise.all(
      logins.flatMap((l) =>
        [1, 2, 3].map(() => request(t.app).get('/api/v1/security/user').set('Authorization', l.authorization)),
      ),
    );
    replies.forEach((r, i) => {
      const l = logins[Math.floor(i / 3)];
      expect(r.status).toBe(200);
      expect(r.body.user).toMatchObject({ id: l?.userId, role: l?.role, tenantId: l?.tenantId });
    });
    const admin = logins[0]!;
    await withTenant(t.composition.pool, admin.tenantId, (q) =>
      q.query("UPDATE users SET role = 'viewer' WHERE id = $1", [admin.userId]),
    );
    const after = await Promise.all(
      [1, 2, 3].map(() => request(t.app).get('/api/v1/security/user').set('Authorization', admin.authorization)),
    );
    for (const r of after) expect(r.body.user.role).toBe('viewer');
  });

  test('when a tenant has thousands of sessions the statistics do not know about yet, then the single and batched checks still probe each key by primary key', async () => {
    const a = await loginAs(t);
    // A burst of logins: many sessions of one user, newest last, no ANALYZE since.
    await ownerQuery(
      `INSERT INTO sessions (user_id, tenant_id, idle_expires_at, absolute_expires_at)
       SELECT $1, $2, now() + interval '1 hour', now() + interval '1 day' FROM generate_series(1, 3000)`,
      [a.userId, a.tenantId],
    );
    const fresh = await withTenant(t.composition.pool, a.tenantId, (c) =>
      openSession(t.composition, c, { userId: a.userId, tenantId: a.tenantId, ip: null, userAgent: null }),
    );
    const keys = (v: string) => Array.from({ length: 10 }, () => v);
    // Both statements call auth_find_sessions (migration 096: sessions and users have forced
    // row-level security); EXPLAIN of the call shows only a function scan, so the query the
    // function runs is read from the catalog and explained with the same keys.
    expect(FIND_SESSIONS_FOR_AUTH).toContain('auth_find_sessions(');
    expect(FIND_SESSION_FOR_AUTH).toContain('auth_find_sessions(');
    const [fn] = await ownerQuery<{ prosrc: string }>(
      "SELECT prosrc FROM pg_proc WHERE proname = 'auth_find_sessions'",
      [],
    );
    const body = /RETURN QUERY([\s\S]*?);\s*PERFORM/.exec(fn?.prosrc ?? '')?.[1];
    expect(body).toContain('unnest(p_ids, p_tenants, p_users)');
    const inner = (body as string)
      .replace(/p_ids/g, '$1::uuid[]')
      .replace(/p_tenants/g, '$2::text[]')
      .replace(/p_users/g, '$3::uuid[]');
    const plans = [
      await ownerQuery<{ 'QUERY PLAN': string }>(`EXPLAIN ${inner}`, [
        keys(fresh.sessionId),
        keys(a.tenantId),
        keys(a.userId),
      ]),
      await ownerQuery<{ 'QUERY PLAN': string }>(`EXPLAIN ${inner}`, [[fresh.sessionId], [a.tenantId], [a.userId]]),
    ];
    for (const plan of plans) {
      const text = plan.map((r) => r['QUERY PLAN']).join('\n');
      expect(text).toMatch(/Index Scan using sessions_pkey on sessions/);
      expect(text).not.toMatch(/sessions_tenant|sessions_user/);
    }
    // And the answers are right for the new session among the thousands.
    expect(await createSessionLookup(t.composition.pool)(fresh.sessionId, a.tenantId, a.userId)).toMatchObject({
      id: fresh.sessionId,
      revoked: false,
    });
  });

  test('when the database refuses the batch, then every waiting request fails (no request passes unchecked)', async () => {
    const a = await loginAs(t);
    const lookup = createSessionLookup(t.composition.pool);
    const results = await Promise.allSettled([
      lookup(a.sessionId, a.tenantId, a.userId),
      lookup('not-a-uuid', a.tenantId, a.userId),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});
