/** AuditService.record / recordAs / hooks, and failing closed. */
import type pg from 'pg';
import request from 'supertest';
import { withTenant } from '../../src/db/transaction';
import { createLogger } from '../../src/lib/logger';
import { createAuditService } from '../../src/services/audit/service';
import type { StoredAuditEvent } from '../../src/services/audit/types';
import { buildTestApp, ownerPool, type TestApp } from '../helpers/app';
import { loginAs } from '../helpers/auth';
import { uniqueEmail, uniqueTenant } from '../helpers/env';
import { appRolePool } from './helpers';

let t: TestApp;
let owner: pg.Pool;
const quiet = createLogger({ level: 'error', console: false });

beforeAll(async () => {
  t = await buildTestApp();
  owner = ownerPool();
});
afterAll(async () => {
  await owner.end();
  await t.close();
});

async function row(id: string): Promise<Record<string, unknown>> {
  const { rows } = await owner.query('SELECT *, host(ip_address) AS ip FROM audit_logs WHERE id = $1', [id]);
  return rows[0];
}
const countFor = async (tenantId: string): Promise<number> => {
  const { rows } = await owner.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1', [
    tenantId,
  ]);
  return rows[0]?.n ?? -1;
};

describe('record()', () => {
  it('when no severity is given, then the catalog default is stored (low for unknown actions)', async () => {
    const tenantId = uniqueTenant('rec');
    const a = await t.composition.services.audit.record({
      tenantId,
      action: 'auth.login.failure',
      resourceType: 'user',
      resourceId: 'x@example.com',
      result: 'failure',
    });
    const b = await t.composition.services.audit.record({
      tenantId,
      action: 'auth.refresh.reuse',
      resourceType: 'session',
    });
    const c = await t.composition.services.audit.record({
      tenantId,
      action: 'vehicle.updated',
      resourceType: 'vehicle',
    });
    expect([(await row(a.id)).severity, (await row(b.id)).severity, (await row(c.id)).severity]).toEqual([
      'medium',
      'critical',
      'low',
    ]);
  });

  it('when the event is malformed, then record() throws and nothing is written', async () => {
    const tenantId = uniqueTenant('rec');
    const audit = t.composition.services.audit;
    await expect(audit.record({ tenantId, action: 'NotAnAction', resourceType: 'x' })).rejects.toThrow(TypeError);
    await expect(audit.record({ tenantId, action: 'a.b', resourceType: '' })).rejects.toThrow(TypeError);
    await expect(audit.record({ tenantId, action: 'a.b', resourceType: 'x', ipAddress: 'not-an-ip' })).rejects.toThrow(
      TypeError,
    );
    await expect(
      audit.record({ tenantId, action: 'a.b', resourceType: 'x', severity: 'huge' as never }),
    ).rejects.toThrow(TypeError);
    await expect(audit.record({ tenantId: '', action: 'a.b', resourceType: 'x' })).rejects.toThrow(TypeError);
    expect(await countFor(tenantId)).toBe(0);
  });

  it('when server-side text is too long or holds NUL bytes, then it is made storable instead of failing the operation', async () => {
    const tenantId = uniqueTenant('rec');
    const r = await t.composition.services.audit.record({
      tenantId,
      action: 'auth.login.failure',
      resourceType: 'user',
      errorMessage: `bad\u0000${'e'.repeat(3000)}`,
      userAgent: 'u'.repeat(5000),
      resourceId: 'r'.repeat(400),
      after: { note: 'nul\u0000here', big: 'x'.repeat(70 * 1024) },
    });
    const stored = await row(r.id);
    expect((stored.error_message as string).length).toBe(2000);
    expect(stored.error_message).toMatch(/^bad\uFFFDe+…$/);
    expect((stored.user_agent as string).length).toBe(1024);
    expect((stored.resource_id as string).length).toBe(256);
    expect(stored.after).toMatchObject({ _truncated: true, originalBytes: expect.any(Number) });
  });

  it('when before/after carry secrets, then the stored row and the hooks see them redacted', async () => {
    const tenantId = uniqueTenant('rec');
    const seen: unknown[] = [];
    const audit = createAuditService({ pool: t.composition.pool, logger: quiet });
    audit.addHook(async (e) => {
      seen.push(e.after);
    });
    const r = await audit.record({
      tenantId,
      action: 'key.master.read',
      resourceType: 'key',
      after: { keyId: 'k1', masterKey: 'AAAA', token: 'abc' },
    });
    expect((await row(r.id)).after).toEqual({ keyId: 'k1', masterKey: '[REDACTED]', token: '[REDACTED]' });
    expect(seen).toEqual([{ keyId: 'k1', masterKey: '[REDACTED]', token: '[REDACTED]' }]);
  });

  it("when recorded without a transaction, then the tenant context does not outlive the row's own statement", async () => {
    const single = appRolePool(1);
    try {
      const audit = createAuditService({ pool: single, logger: quiet });
      const tenantId = uniqueTenant('rec');
      await audit.record({ tenantId, action: 'a.b', resourceType: 'x' });
      const { rows } = await single.query<{ t: string; n: number }>(
        'SELECT app_current_tenant() AS t, (SELECT count(*)::int FROM audit_logs) AS n',
      );
      expect(rows[0]).toEqual({ t: '', n: 0 });
    } finally {
      await single.end();
    }
  });
});

describe('hooks', () => {
  it('when a hook is registered, then it runs in the same transaction and sees the new row', async () => {
    const tenantId = uniqueTenant('hook');
    const audit = createAuditService({ pool: t.composition.pool, logger: quiet });
    const visible: number[] = [];
    audit.addHook(async (_e, recorded, q) => {
      const { rows } = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_logs WHERE id = $1', [
        recorded.id,
      ]);
      visible.push(rows[0]?.n ?? 0);
    });
    await audit.record({ tenantId, action: 'a.b', resourceType: 'x' });
    expect(visible).toEqual([1]);
  });

  it('when a hook filters events with `when`, then it runs only for those', async () => {
    const tenantId = uniqueTenant('hook');
    const audit = createAuditService({ pool: t.composition.pool, logger: quiet });
    const actions: string[] = [];
    audit.addHook(async (e) => void actions.push(e.action), {
      when: (e: StoredAuditEvent) => e.severity === 'high' || e.severity === 'critical',
    });
    await audit.record({ tenantId, action: 'a.low', resourceType: 'x' });
    await audit.record({ tenantId, action: 'auth.lockout', resourceType: 'user' });
    expect(actions).toEqual(['auth.lockout']);
  });

  it('when a hook fails, then record() fails and the audit row is not kept', async () => {
    const tenantId = uniqueTenant('hook');
    const audit = createAuditService({ pool: t.composition.pool, logger: quiet });
    audit.addHook(async () => {
      throw new Error('outbox unavailable');
    });
    await expect(audit.record({ tenantId, action: 'a.b', resourceType: 'x' })).rejects.toThrow('outbox unavailable');
    expect(await countFor(tenantId)).toBe(0);
  });
});

describe('failing closed', () => {
  it('when the audit row cannot be written, then the security change in the same transaction is rolled back', async () => {
    const tenantId = uniqueTenant('closed');
    const email = uniqueEmail('closed');
    await expect(
      withTenant(t.composition.pool, tenantId, async (c) => {
        await c.query("INSERT INTO users (tenant_id, email, role) VALUES ($1, $2, 'admin')", [tenantId, email]);
        // The event names another tenant than the transaction: the database refuses the row.
        await t.composition.services.audit.record(
          { tenantId: uniqueTenant('elsewhere'), action: 'user.created', resourceType: 'user', resourceId: email },
          c,
        );
      }),
    ).rejects.toMatchObject({ code: '42501' });
    const { rows } = await owner.query<{ n: number }>('SELECT count(*)::int AS n FROM users WHERE email = $1', [email]);
    expect(rows[0]?.n).toBe(0);
  });

  it('when the audit row is written, then the change and the row commit together', async () => {
    const tenantId = uniqueTenant('closed');
    const email = uniqueEmail('closed');
    const id = await withTenant(t.composition.pool, tenantId, async (c) => {
      await c.query("INSERT INTO users (tenant_id, email, role) VALUES ($1, $2, 'user')", [tenantId, email]);
      return (
        await t.composition.services.audit.record(
          { tenantId, action: 'user.created', resourceType: 'user', resourceId: email },
          c,
        )
      ).id;
    });
    expect((await row(id)).resource_id).toBe(email);
    const { rows } = await owner.query<{ n: number }>('SELECT count(*)::int AS n FROM users WHERE email = $1', [email]);
    expect(rows[0]?.n).toBe(1);
  });

  it('when the audit write of an access denial fails, then the request fails with 500 instead of answering without a trace', async () => {
    const app = await buildTestApp();
    try {
      app.composition.services.audit.addHook(
        async () => {
          throw new Error('audit store down');
        },
        { when: (e) => e.action === 'access.denied' || e.action === 'denied.check' },
      );
      const viewer = await loginAs(app, { role: 'viewer' });
      const res = await request(app.app)
        .post('/api/v1/security/audit/log')
        .set('Authorization', viewer.authorization)
        .send({ action: 'denied.check', resourceType: 'x' });
      expect(res.status).toBe(500);
      expect(res.body.error.code).toBe('INTERNAL_ERROR');
      expect(JSON.stringify(res.body)).not.toMatch(/audit store down/);
      expect(await countFor(viewer.tenantId)).toBe(0);

      const user = await loginAs(app, { role: 'user' });
      const res2 = await request(app.app)
        .post('/api/v1/security/audit/log')
        .set('Authorization', user.authorization)
        .send({ action: 'denied.check', resourceType: 'x' });
      expect(res2.status).toBe(500);
      expect(await countFor(user.tenantId)).toBe(0);
    } finally {
      await app.close();
    }
  });
});
