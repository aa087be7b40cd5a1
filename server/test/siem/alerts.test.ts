/**
 * Alerting rules: each rule fires from the audit rows that trigger it, writes a
 * security.alert.* audit row in the same transaction and puts it in the SIEM outbox.
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { withTenant } from '../../src/db/transaction';
import { ManualClock } from '../../src/lib/clock';
import { auditEventId } from '../../src/services/siem/event-id';
import type { AuditEvent } from '../../src/services/audit/types';
import type { TestApp } from '../helpers/app';
import { uniqueEmail, uniqueTenant } from '../helpers/env';
import { createIsolatedDatabase, type IsolatedDatabase } from './helpers/db';
import { buildSiemTestApp, buildStack, type Stack } from './helpers/harness';
import { loginAs } from '../helpers/auth';
import { buildAuthApp, loginThroughIssuer, provision, SECURITY } from '../auth/helpers';
import { startIssuer } from '../auth/oidc-issuer';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/receivers';

const KEY = randomBytes(16).toString('hex');
let db: IsolatedDatabase;
let wh: WebhookReceiver & { endpoint: string };
let env: Record<string, string>;
let s: Stack;

beforeAll(async () => {
  db = await createIsolatedDatabase('alerts');
  wh = await startWebhookReceiver(KEY);
  env = { SIEM_PROVIDER: 'webhook', SIEM_ENDPOINT_URL: wh.endpoint, SIEM_API_KEY: KEY };
  s = await buildStack(db, env, {}, new ManualClock(Date.now()));
  await s.monitoring.siem.syncSettings();
});

afterAll(async () => {
  await s?.close();
  await wh?.close();
  await db?.drop();
});

interface AlertRow {
  id: string;
  tenant_id: string;
  user_id: string | null;
  action: string;
  resource_type: string;
  resource_id: string | null;
  severity: string;
  ip_address: string | null;
  after: Record<string, unknown>;
}

async function alerts(rule: string, where: { tenantId?: string; resourceId?: string } = {}): Promise<AlertRow[]> {
  const { rows } = await db.owner.query<AlertRow>(
    `SELECT id::text, tenant_id, user_id::text, action, resource_type, resource_id, severity, host(ip_address) AS ip_address, after
     FROM audit_logs WHERE action = $1 AND ($2::text IS NULL OR tenant_id = $2) AND ($3::text IS NULL OR resource_id = $3) ORDER BY id`,
    [`security.alert.${rule}`, where.tenantId ?? null, where.resourceId ?? null],
  );
  return rows;
}

async function queued(eventId: string): Promise<boolean> {
  const { rows } = await db.owner.query(
    'SELECT 1 FROM siem_outbox WHERE coalesce(event_id, siem_audit_event_id(audit_log_id)) = $1',
    [eventId],
  );
  return rows.length === 1;
}

let ipCounter = 0;
function freshIp(): string {
  ipCounter += 1;
  return `10.${(process.pid >> 8) & 255}.${process.pid & 255}.${ipCounter}`;
}

function failure(over: Partial<AuditEvent> & { tenantId: string; resourceId: string }): AuditEvent {
  return {
    action: 'auth.login.failure',
    resourceType: 'user',
    result: 'failure',
    severity: 'medium',
    errorMessage: 'invalid signature',
    ipAddress: freshIp(),
    ...over,
  };
}

describe('brute force (auth.login.failure)', () => {
  it('when the same email fails 5 times within 15 minutes, then the 5th raises one critical alert, forwarded to the SIEM', async () => {
    const email = uniqueEmail();
    const tenantId = uniqueTenant();
    for (let i = 0; i < 4; i++) await s.audit.record(failure({ tenantId, resourceId: email }));
    expect(await alerts('brute_force', { resourceId: email })).toHaveLength(0);
    const fifth = await s.audit.record(failure({ tenantId, resourceId: email }));
    const raised = await alerts('brute_force', { resourceId: email });
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({
      tenant_id: tenantId,
      severity: 'critical',
      resource_type: 'user',
      resource_id: email,
    });
    expect(raised[0]?.after).toMatchObject({
      rule: 'brute_force',
      subject: 'email',
      value: email,
      count: 5,
      threshold: 5,
      windowSeconds: 900,
      triggeringAuditLogId: fifth.id,
    });
    expect(await queued(auditEventId(raised[0]?.id as string))).toBe(true);
    await s.audit.record(failure({ tenantId, resourceId: email }));
    expect(await alerts('brute_force', { resourceId: email })).toHaveLength(1);
  });

  it('when one IP fails 5 times against different emails and tenants, then an alert names the IP', async () => {
    const ip = freshIp();
    for (let i = 0; i < 5; i++)
      await s.audit.record(
        failure({ tenantId: i % 2 ? uniqueTenant() : '_unknown', resourceId: uniqueEmail(), ipAddress: ip }),
      );
    const raised = await alerts('brute_force', { resourceId: ip });
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({ resource_type: 'ip_address', ip_address: ip, severity: 'critical' });
    expect(raised[0]?.after).toMatchObject({ subject: 'ip', count: 5 });
  });

  it('when failures are spread over more than 15 minutes, then no alert; a new burst inside the window alerts', async () => {
    const email = uniqueEmail();
    const tenantId = uniqueTenant();
    for (let i = 0; i < 4; i++) await s.audit.record(failure({ tenantId, resourceId: email }));
    s.clock.advance(15 * 60_000 + 1000);
    await s.audit.record(failure({ tenantId, resourceId: email }));
    expect(await alerts('brute_force', { resourceId: email })).toHaveLength(0);
    for (let i = 0; i < 4; i++) await s.audit.record(failure({ tenantId, resourceId: email }));
    expect(await alerts('brute_force', { resourceId: email })).toHaveLength(1);
  });

  it('when the window after an alert has passed, then a new burst raises a new alert', async () => {
    const email = uniqueEmail();
    const tenantId = uniqueTenant();
    for (let i = 0; i < 5; i++) await s.audit.record(failure({ tenantId, resourceId: email }));
    s.clock.advance(16 * 60_000);
    for (let i = 0; i < 5; i++) await s.audit.record(failure({ tenantId, resourceId: email }));
    expect(await alerts('brute_force', { resourceId: email })).toHaveLength(2);
  });

  it('when 12 failures for one email arrive concurrently, then exactly one alert is raised', async () => {
    const email = uniqueEmail();
    const tenantId = uniqueTenant();
    await Promise.all(Array.from({ length: 12 }, () => s.audit.record(failure({ tenantId, resourceId: email }))));
    const raised = await alerts('brute_force', { resourceId: email });
    expect(raised).toHaveLength(1);
    expect(raised[0]?.after.count).toBe(5);
  });
});

describe('single-event rules', () => {
  it('when a spent refresh token is presented again through POST /refresh, then exactly one critical refresh_reuse alert is written and queued for the SIEM', async () => {
    const issuer = await startIssuer();
    const a = await buildAuthApp(issuer, { env: { DATABASE_URL: db.appUrl, MIGRATION_DATABASE_URL: db.url, ...env } });
    try {
      const u = await provision(a);
      const l = await loginThroughIssuer(a, issuer, a.clock, u.email);
      const first = await request(a.app).post(`${SECURITY}/refresh`).send({ refreshToken: l.refreshToken });
      expect(first.status).toBe(200);
      a.clock.advance(10_001); // past the refresh reuse grace (REFRESH_REUSE_GRACE_SECONDS, default 10)
      const replay = await request(a.app).post(`${SECURITY}/refresh`).send({ refreshToken: l.refreshToken });
      expect(replay.status).toBe(401);
      const raised = await alerts('refresh_reuse', { tenantId: u.tenantId });
      expect(raised).toHaveLength(1);
      expect(raised[0]).toMatchObject({ severity: 'critical', resource_type: 'session', resource_id: l.sessionId });
      const reuse = await db.owner.query<{ id: string }>(
        "SELECT id::text FROM audit_logs WHERE tenant_id = $1 AND action = 'auth.refresh.reuse'",
        [u.tenantId],
      );
      expect(await queued(auditEventId(reuse.rows[0]?.id as string))).toBe(true);
      expect(await queued(auditEventId(raised[0]?.id as string))).toBe(true);
    } finally {
      await a.close();
      await issuer.stop();
    }
  });

  it('when the master key is rotated, then a high key_event alert is raised', async () => {
    const tenantId = uniqueTenant();
    await s.audit.record({
      tenantId,
      action: 'key.master.rotated',
      resourceType: 'master_key',
      resourceId: 'fleet-master-key',
      severity: 'critical',
      after: { version: 'v2' },
    });
    const raised = await alerts('key_event', { tenantId });
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({ severity: 'high', resource_id: 'fleet-master-key' });
    expect(raised[0]?.after).toMatchObject({ keyEvent: 'rotated', after: { version: 'v2' } });
  });

  it('when the master key falls back twice within 15 minutes, then one alert; after 15 minutes, another', async () => {
    const tenantId = uniqueTenant();
    const fallback = {
      tenantId,
      action: 'key.master.fallback',
      resourceType: 'master_key',
      resourceId: 'fleet-master-key',
      severity: 'high' as const,
      errorMessage: 'Key Vault unreachable',
    };
    s.clock.advance(60 * 60_000);
    await s.audit.record(fallback);
    await s.audit.record(fallback);
    expect(await alerts('key_event', { tenantId })).toHaveLength(1);
    s.clock.advance(15 * 60_000 + 1);
    await s.audit.record(fallback);
    const raised = await alerts('key_event', { tenantId });
    expect(raised).toHaveLength(2);
    expect(raised[1]?.after).toMatchObject({ keyEvent: 'fallback', reason: 'Key Vault unreachable' });
  });

  it('when a user is given the admin role, then a high admin_escalation alert names the user and the previous role', async () => {
    const tenantId = uniqueTenant();
    const actor = '11111111-2222-4333-8444-555555555555';
    await s.audit.record({
      tenantId,
      userId: actor,
      action: 'user.role_changed',
      resourceType: 'user',
      resourceId: 'target-user',
      severity: 'high',
      before: { role: 'viewer' },
      after: { role: 'admin' },
    });
    const raised = await alerts('admin_escalation', { tenantId });
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({ severity: 'high', user_id: actor, resource_id: 'target-user' });
    expect(raised[0]?.after).toMatchObject({
      targetUser: 'target-user',
      previousRole: 'viewer',
      newRole: 'admin',
      changedBy: actor,
    });
  });

  it('when a role change is not an escalation to admin, then no alert', async () => {
    const tenantId = uniqueTenant();
    await s.audit.record({
      tenantId,
      action: 'user.role_changed',
      resourceType: 'user',
      resourceId: 'u1',
      severity: 'high',
      before: { role: 'admin' },
      after: { role: 'user' },
    });
    await s.audit.record({
      tenantId,
      action: 'user.role_changed',
      resourceType: 'user',
      resourceId: 'u2',
      severity: 'high',
      before: { role: 'admin' },
      after: { role: 'admin' },
    });
    await s.audit.record({
      tenantId,
      action: 'user.role_changed',
      resourceType: 'user',
      resourceId: 'u3',
      severity: 'high',
      before: { role: 'viewer' },
      after: { role: 'user' },
    });
    expect(await alerts('admin_escalation', { tenantId })).toHaveLength(0);
  });

  it('when `user:add` provisioning promotes a user to admin, then the admin_escalation alert is raised', async () => {
    const t2 = await buildSiemTestApp(db, env);
    try {
      const u = await provision(t2, { role: 'user' });
      await t2.composition.services.users.provision(
        { email: u.email, role: 'admin', tenantId: u.tenantId },
        { source: 'test' },
      );
      const raised = await alerts('admin_escalation', { tenantId: u.tenantId });
      expect(raised).toHaveLength(1);
      expect(raised[0]).toMatchObject({ severity: 'high', resource_id: u.id });
      expect(raised[0]?.after).toMatchObject({ previousRole: 'user', newRole: 'admin' });
    } finally {
      await t2.close();
    }
  });

  it('when the escalation is rolled back with its transaction, then the alert is rolled back too', async () => {
    const tenantId = uniqueTenant();
    await expect(
      withTenant(s.pool, tenantId, async (c) => {
        await s.audit.record(
          {
            tenantId,
            action: 'user.role_changed',
            resourceType: 'user',
            resourceId: 'u9',
            severity: 'high',
            before: { role: 'user' },
            after: { role: 'admin' },
          },
          c,
        );
        throw new Error('role change failed');
      }),
    ).rejects.toThrow('role change failed');
    expect(await alerts('admin_escalation', { tenantId })).toHaveLength(0);
  });
});

describe('denied burst (access.denied)', () => {
  it('when one user is denied 10 times within 5 minutes, then one high denied_burst alert', async () => {
    const tenantId = uniqueTenant();
    const userId = '22222222-3333-4444-8555-666666666666';
    const denied = {
      tenantId,
      userId,
      action: 'access.denied',
      resourceType: 'route',
      resourceId: 'GET /api/v1/security/master-key',
      result: 'denied' as const,
      severity: 'medium' as const,
    };
    for (let i = 0; i < 9; i++) await s.audit.record(denied);
    expect(await alerts('denied_burst', { tenantId })).toHaveLength(0);
    await s.audit.record(denied);
    const raised = await alerts('denied_burst', { tenantId });
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({ severity: 'high', resource_type: 'user', resource_id: userId });
    expect(raised[0]?.after).toMatchObject({
      count: 10,
      threshold: 10,
      windowSeconds: 300,
      lastDenied: 'GET /api/v1/security/master-key',
    });
  });

  it('when a viewer keeps calling an admin route over HTTP, then the 10th 403 raises the alert', async () => {
    let t: TestApp | null = null;
    try {
      t = await buildSiemTestApp(db, env);
      const viewer = await loginAs(t, { role: 'viewer' });
      for (let i = 0; i < 10; i++) {
        const res = await request(t.app).get('/api/v1/security/siem/status').set('Authorization', viewer.authorization);
        expect(res.status).toBe(403);
      }
      const raised = await alerts('denied_burst', { tenantId: viewer.tenantId });
      expect(raised).toHaveLength(1);
      expect(raised[0]).toMatchObject({ user_id: viewer.userId, resource_id: viewer.userId });
      expect(raised[0]?.after).toMatchObject({ lastDenied: 'GET /api/v1/security/siem/status' });
    } finally {
      await t?.close();
    }
  });
});

describe('without a SIEM', () => {
  it('when no SIEM is configured, then alerts are still written to the audit trail (and nothing is queued)', async () => {
    const plain = await buildStack(db, {}, {}, new ManualClock(Date.now()));
    try {
      await plain.monitoring.siem.syncSettings();
      const tenantId = uniqueTenant();
      await plain.audit.record({
        tenantId,
        action: 'key.master.rotated',
        resourceType: 'master_key',
        severity: 'critical',
      });
      const raised = await alerts('key_event', { tenantId });
      expect(raised).toHaveLength(1);
      expect(await queued(auditEventId(raised[0]?.id as string))).toBe(false);
    } finally {
      await plain.close();
      await s.monitoring.siem.syncSettings();
    }
  });
});
