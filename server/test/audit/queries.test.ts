/** The seed's query methods of AuditService. */
import type pg from 'pg';
import { UNKNOWN_TENANT } from '../../src/services/audit/catalog';
import { InvalidCursorError, type AuditService } from '../../src/services/audit/service';
import { buildTestApp, ownerPool, type TestApp } from '../helpers/app';
import { uniqueEmail, uniqueTenant } from '../helpers/env';
import { insertRawRows } from './helpers';

let t: TestApp;
let owner: pg.Pool;
let audit: AuditService;

beforeAll(async () => {
  t = await buildTestApp();
  owner = ownerPool();
  audit = t.composition.services.audit;
});
afterAll(async () => {
  await owner.end();
  await t.close();
});

const USER_A = '11111111-1111-4111-8111-111111111111';
const USER_B = '22222222-2222-4222-8222-222222222222';

describe('tenant-scoped queries', () => {
  let tenantId: string;
  const ids: Record<string, string> = {};
  beforeAll(async () => {
    tenantId = uniqueTenant('q');
    const rec = async (k: string, e: Omit<Parameters<AuditService['record']>[0], 'tenantId'>) => {
      ids[k] = (await audit.record({ tenantId, ...e })).id;
    };
    await rec('a1', { userId: USER_A, action: 'doc.read', resourceType: 'doc', resourceId: 'D1' });
    await rec('a2', { userId: USER_A, action: 'doc.write', resourceType: 'doc', resourceId: 'D2', severity: 'high' });
    await rec('b1', { userId: USER_B, action: 'doc.write', resourceType: 'doc', resourceId: 'D1' });
    await rec('b2', { userId: USER_B, action: 'key.master.rotated', resourceType: 'key' });
    await audit.record({
      tenantId: uniqueTenant('q-other'),
      userId: USER_A,
      action: 'doc.read',
      resourceType: 'doc',
      resourceId: 'D1',
    });
  });

  it("when a user's events are asked for, then exactly that user's rows of the tenant come back, newest first", async () => {
    const page = await audit.getUserAuditLogs(tenantId, USER_A);
    expect(page.entries.map((e) => e.id)).toEqual([ids.a2, ids.a1]);
    expect(page.nextCursor).toBeNull();
  });

  it("when a resource's events are asked for, then every row about it comes back", async () => {
    const page = await audit.getResourceAuditLogs(tenantId, 'doc', 'D1');
    expect(page.entries.map((e) => e.id)).toEqual([ids.b1, ids.a1]);
  });

  it('when security events are asked for, then only high and critical rows come back', async () => {
    const page = await audit.getSecurityEvents(tenantId);
    // key.master.rotated also raised the alerting rules' security.alert.key_event (high).
    const alert = await owner.query<{ id: string }>(
      "SELECT id::text FROM audit_logs WHERE tenant_id = $1 AND action = 'security.alert.key_event'",
      [tenantId],
    );
    expect(page.entries.map((e) => [e.id, e.severity])).toEqual([
      [alert.rows[0]?.id, 'high'],
      [ids.b2, 'critical'],
      [ids.a2, 'high'],
    ]);
  });

  it('when a page size is given, then the cursor continues where the last page ended', async () => {
    const first = await audit.getUserAuditLogs(tenantId, USER_A, { limit: 1 });
    expect(first.entries.map((e) => e.id)).toEqual([ids.a2]);
    const second = await audit.getUserAuditLogs(tenantId, USER_A, { limit: 1, cursor: first.nextCursor });
    expect(second.entries.map((e) => e.id)).toEqual([ids.a1]);
    expect(second.nextCursor).toBeNull();
  });

  it('when the cursor or the limit is invalid, then the query is refused', async () => {
    await expect(audit.getUserAuditLogs(tenantId, USER_A, { cursor: 'bogus' })).rejects.toBeInstanceOf(
      InvalidCursorError,
    );
    await expect(audit.getUserAuditLogs(tenantId, USER_A, { limit: 501 })).rejects.toBeInstanceOf(RangeError);
    await expect(audit.getUserAuditLogs(tenantId, USER_A, { limit: 0 })).rejects.toBeInstanceOf(RangeError);
  });
});

describe('failed logins', () => {
  const since = () => new Date(Date.now() - 15 * 60_000);

  it('when failures are recorded for an email under several tenants and in mixed case, then countFailedAuthAttempts counts them all', async () => {
    const email = uniqueEmail('Brute');
    const tenantId = uniqueTenant('fail');
    for (const tenant of [UNKNOWN_TENANT, tenantId, UNKNOWN_TENANT]) {
      await audit.record({
        tenantId: tenant,
        action: 'auth.login.failure',
        resourceType: 'user',
        resourceId: email.toLowerCase(),
        result: 'failure',
        ipAddress: '198.51.100.1',
        errorMessage: 'bad token',
      });
    }
    // not counted: other actions, other results, other emails
    await audit.record({
      tenantId,
      action: 'auth.login.success',
      resourceType: 'user',
      resourceId: email.toLowerCase(),
      ipAddress: '198.51.100.1',
    });
    await audit.record({
      tenantId,
      action: 'auth.login.failure',
      resourceType: 'user',
      resourceId: uniqueEmail('other'),
      result: 'failure',
      ipAddress: '198.51.100.2',
    });
    expect(await audit.countFailedAuthAttempts({ email: email.toUpperCase(), since: since() })).toEqual({
      byEmail: 3,
      byIp: 0,
    });
    expect(await audit.countFailedAuthAttempts({ email, ip: '198.51.100.1', since: since() })).toEqual({
      byEmail: 3,
      byIp: expect.any(Number),
    });
  });

  it('when failures come from one IP for different emails, then they are counted by IP', async () => {
    const ip = `203.0.113.${Math.floor(Math.random() * 250) + 1}`;
    const ipv6 = `2001:db8::${Math.floor(Math.random() * 0xffff).toString(16)}`;
    for (let i = 0; i < 4; i += 1) {
      await audit.record({
        tenantId: UNKNOWN_TENANT,
        action: 'auth.login.failure',
        resourceType: 'user',
        resourceId: uniqueEmail('spray'),
        result: 'failure',
        ipAddress: i < 3 ? ip : ipv6,
      });
    }
    const byIp = (await audit.countFailedAuthAttempts({ ip, since: since() })).byIp;
    expect(byIp).toBeGreaterThanOrEqual(3);
    expect((await audit.countFailedAuthAttempts({ ip: ipv6, since: since() })).byIp).toBe(1);
  });

  it('when failures are older than the window, then they are not counted', async () => {
    const email = uniqueEmail('old');
    await insertRawRows(owner, UNKNOWN_TENANT, [
      {
        action: 'auth.login.failure',
        resourceType: 'user',
        resourceId: email,
        result: 'failure',
        severity: 'medium',
        createdAt: new Date(Date.now() - 60 * 60_000).toISOString(),
      },
      { action: 'auth.login.failure', resourceType: 'user', resourceId: email, result: 'failure', severity: 'medium' },
    ]);
    expect((await audit.countFailedAuthAttempts({ email, since: since() })).byEmail).toBe(1);
    expect(
      (await audit.countFailedAuthAttempts({ email, since: new Date(Date.now() - 2 * 60 * 60_000) })).byEmail,
    ).toBe(2);
  });

  it('when neither email nor ip is given, then both counts are zero; a bad ip is refused', async () => {
    expect(await audit.countFailedAuthAttempts({ since: since() })).toEqual({ byEmail: 0, byIp: 0 });
    await expect(audit.countFailedAuthAttempts({ ip: 'not-an-ip', since: since() })).rejects.toThrow(TypeError);
  });

  it("when a tenant's failed logins are listed, then only that tenant's failures come back, filterable by email and ip", async () => {
    const tenantId = uniqueTenant('fail');
    const email = uniqueEmail('victim');
    const a = await audit.record({
      tenantId,
      action: 'auth.login.failure',
      resourceType: 'user',
      resourceId: email,
      result: 'failure',
      ipAddress: '192.0.2.10',
    });
    const b = await audit.record({
      tenantId,
      action: 'auth.login.failure',
      resourceType: 'user',
      resourceId: email,
      result: 'failure',
      ipAddress: '192.0.2.11',
    });
    await audit.record({
      tenantId: UNKNOWN_TENANT,
      action: 'auth.login.failure',
      resourceType: 'user',
      resourceId: email,
      result: 'failure',
      ipAddress: '192.0.2.10',
    });
    const all = await audit.getFailedAuthAttempts({ tenantId, since: since() });
    expect(all.entries.map((e) => e.id)).toEqual([b.id, a.id]);
    const byEmail = await audit.getFailedAuthAttempts({ tenantId, email: email.toUpperCase(), since: since() });
    expect(byEmail.entries.map((e) => e.id)).toEqual([b.id, a.id]);
    const byIp = await audit.getFailedAuthAttempts({ tenantId, ip: '192.0.2.10', since: since() });
    expect(byIp.entries.map((e) => e.id)).toEqual([a.id]);
  });

  it('when the counting query is planned, then the partial failed-login indexes serve it', async () => {
    const c = await owner.connect();
    try {
      // Enough failures that a scan over all of them is clearly worse than the partial index.
      await insertRawRows(
        owner,
        UNKNOWN_TENANT,
        Array.from({ length: 300 }, (_, i) => ({
          action: 'auth.login.failure',
          resourceType: 'user',
          resourceId: uniqueEmail(`bulk${i}`),
          result: 'failure',
          ip: `198.18.${i % 200}.${(i % 250) + 1}`,
        })),
      );
      await c.query('ANALYZE audit_logs');
      await c.query('BEGIN');
      await c.query('SET LOCAL enable_seqscan = off');
      const plan = async (where: string, v: string) =>
        (
          await c.query(
            `EXPLAIN SELECT 1 FROM audit_logs WHERE action = 'auth.login.failure' AND result = 'failure' AND ${where} AND created_at >= now() - interval '15 minutes'`,
            [v],
          )
        ).rows
          .map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN'])
          .join('\n');
      expect(await plan('resource_id = $1', 'x@example.com')).toMatch(/audit_logs_login_failure_email_idx/);
      expect(await plan('ip_address = $1::inet', '192.0.2.1')).toMatch(/audit_logs_login_failure_ip_idx/);
      await c.query('ROLLBACK');
    } finally {
      c.release();
    }
  });
});
