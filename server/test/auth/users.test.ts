import type pg from 'pg';
import { UserInputError } from '../../src/services/auth/users';
import { ownerPool } from '../helpers/app';
import { loginAs } from '../helpers/auth';
import { openSession } from '../helpers/session';
import { uniqueEmail, uniqueTenant } from '../helpers/env';
import { auditFor, buildAuthApp, type AuthTestApp } from './helpers';
import { withTenant } from '../../src/db/transaction';

let t: AuthTestApp;
let owner: pg.Pool;
const actor = { source: 'cli:user:add', operator: 'alice-ops' };

beforeAll(async () => {
  t = await buildAuthApp(null);
  owner = ownerPool();
});
afterAll(async () => {
  await t.close();
  await owner.end();
});

const users = () => t.composition.services.users;

describe('user provisioning', () => {
  test('when a new user is added, then the row is created with a lower-cased e-mail and user.created is audited with the operator', async () => {
    const tenantId = uniqueTenant();
    const email = uniqueEmail().toUpperCase();
    const r = await users().provision({ email, role: 'admin', tenantId, displayName: '  Ada  ' }, actor);
    expect(r).toMatchObject({ outcome: 'created', events: ['user.created'], activeElsewhere: 0 });
    const row = await owner.query('SELECT email, role, display_name, is_active, auth0_sub FROM users WHERE id = $1', [
      r.user.id,
    ]);
    expect(row.rows[0]).toEqual({
      email: email.toLowerCase(),
      role: 'admin',
      display_name: 'Ada',
      is_active: true,
      auth0_sub: null,
    });
    const audit = await auditFor(owner, { tenantId, action: 'user.created' });
    expect(audit).toEqual([
      expect.objectContaining({
        severity: 'medium',
        resource_type: 'user',
        resource_id: r.user.id,
        user_id: null,
        result: 'success',
      }),
    ]);
    expect(audit[0]?.after).toMatchObject({
      email: email.toLowerCase(),
      role: 'admin',
      tenantId,
      actor: 'cli:user:add',
    });
    const ua = await owner.query('SELECT user_agent FROM audit_logs WHERE id = $1', [audit[0]?.id]);
    expect(ua.rows[0].user_agent).toBe('fleet-cli cli:user:add (operator alice-ops)');
  });

  test('when the role of an existing user changes, then user.role_changed (high) records before and after; running it again changes nothing and writes nothing', async () => {
    const tenantId = uniqueTenant();
    const email = uniqueEmail();
    await users().provision({ email, role: 'viewer', tenantId }, actor);
    const r = await users().provision({ email, role: 'admin', tenantId }, actor);
    expect(r).toMatchObject({ outcome: 'updated', events: ['user.role_changed'] });
    const again = await users().provision({ email, role: 'admin', tenantId }, actor);
    expect(again).toMatchObject({ outcome: 'unchanged', events: [] });
    const changes = await auditFor(owner, { tenantId, action: 'user.role_changed' });
    expect(changes).toHaveLength(1);
    expect(changes[0]).toMatchObject({
      severity: 'high',
      before: expect.objectContaining({ role: 'viewer' }),
      after: expect.objectContaining({ role: 'admin' }),
    });
  });

  test('when a deactivated user is added again with another role, then they are reactivated with the new role, the bound IdP subject is cleared, and both events are audited', async () => {
    const tenantId = uniqueTenant();
    const email = uniqueEmail();
    const created = await users().provision({ email, role: 'user', tenantId }, actor);
    await owner.query('UPDATE users SET auth0_sub = $2 WHERE id = $1', [created.user.id, 'auth0|old']);
    await users().deactivate({ email, tenantId }, actor);
    const r = await users().provision({ email, role: 'viewer', tenantId }, actor);
    expect(r).toMatchObject({ outcome: 'updated', events: ['user.reactivated', 'user.role_changed'] });
    const row = await owner.query('SELECT role, is_active, auth0_sub FROM users WHERE id = $1', [created.user.id]);
    expect(row.rows[0]).toEqual({ role: 'viewer', is_active: true, auth0_sub: null });
    expect((await auditFor(owner, { tenantId })).map((x) => [x.action, x.severity])).toEqual([
      ['user.created', 'medium'],
      ['user.deactivated', 'high'],
      ['user.reactivated', 'medium'],
      ['user.role_changed', 'high'],
    ]);
  });

  test('when only the display name changes, then it is updated with a user.updated audit row holding the old and new name', async () => {
    const tenantId = uniqueTenant();
    const email = uniqueEmail();
    await users().provision({ email, role: 'user', tenantId }, actor);
    const r = await users().provision({ email, role: 'user', tenantId, displayName: 'New Name' }, actor);
    expect(r).toMatchObject({ outcome: 'updated', events: ['user.updated'] });
    expect(r.user.displayName).toBe('New Name');
    const rows = await auditFor(owner, { tenantId });
    expect(rows.map((x) => [x.action, x.severity])).toEqual([
      ['user.created', 'medium'],
      ['user.updated', 'low'],
    ]);
  });

  test('when the same e-mail is active in another tenant, then provisioning reports it (logins for it would be ambiguous)', async () => {
    const email = uniqueEmail();
    await users().provision({ email, role: 'user', tenantId: uniqueTenant() }, actor);
    const r = await users().provision({ email, role: 'user', tenantId: uniqueTenant() }, actor);
    expect(r.activeElsewhere).toBe(1);
  });

  test.each([
    ['an invalid e-mail', { email: 'not-an-email', role: 'user', tenantId: 'acme' }, /--email/],
    ['a non-ASCII e-mail', { email: 'jörg@example.com', role: 'user', tenantId: 'acme' }, /--email/],
    ['an unknown role', { email: 'a@example.com', role: 'superuser', tenantId: 'acme' }, /--role/],
    ['the reserved tenant _unknown', { email: 'a@example.com', role: 'user', tenantId: '_unknown' }, /--tenant/],
    ['a tenant with spaces', { email: 'a@example.com', role: 'user', tenantId: 'acme corp' }, /--tenant/],
    [
      'an injection string as tenant',
      { email: 'a@example.com', role: 'user', tenantId: "acme'; DROP TABLE users;--" },
      /--tenant/,
    ],
    [
      'a 300-character name',
      { email: 'a@example.com', role: 'user', tenantId: 'acme', displayName: 'x'.repeat(300) },
      /--name/,
    ],
    [
      'a NUL byte in the name',
      { email: 'a@example.com', role: 'user', tenantId: 'acme', displayName: 'a\u0000b' },
      /--name/,
    ],
  ])(
    'when provisioning with %s, then it is refused with a message naming the option and nothing is written',
    async (_name, input, message) => {
      await expect(users().provision(input, actor)).rejects.toThrow(UserInputError);
      await expect(users().provision(input, actor)).rejects.toThrow(message);
      const written = await owner.query(
        'SELECT count(*)::int AS n FROM users WHERE email = lower($1) OR tenant_id = $2',
        [input.email, input.tenantId],
      );
      expect(written.rows[0].n).toBe(0);
    },
  );
});

describe('user deactivation', () => {
  test('when a user is deactivated, then the flag is cleared, every session is revoked, and user.deactivated plus session.revoked.bulk are audited in one transaction', async () => {
    const l = await loginAs(t);
    await withTenant(t.composition.pool, l.tenantId, (c) =>
      openSession(t.composition, c, { userId: l.userId, tenantId: l.tenantId, ip: null, userAgent: 'x' }),
    );
    const r = await users().deactivate(
      { email: l.email, tenantId: l.tenantId, reason: 'left the company' },
      { source: 'cli:user:deactivate' },
    );
    expect(r).toMatchObject({
      outcome: 'deactivated',
      sessionsRevoked: 2,
      events: ['user.deactivated', 'session.revoked.bulk'],
    });
    const live = await owner.query(
      'SELECT count(*)::int AS n FROM sessions WHERE user_id = $1 AND revoked_at IS NULL',
      [l.userId],
    );
    expect(live.rows[0].n).toBe(0);
    const rows = await auditFor(owner, { tenantId: l.tenantId });
    expect(rows.map((x) => [x.action, x.severity])).toEqual([
      ['user.deactivated', 'high'],
      ['session.revoked.bulk', 'high'],
    ]);
    expect(rows[0]?.after).toMatchObject({ isActive: false, reason: 'left the company', sessionsRevoked: 2 });
    expect(rows[1]?.after).toMatchObject({ userId: l.userId, count: 2 });
  });

  test('when an already inactive user is deactivated again, then nothing is audited and it reports unchanged', async () => {
    const l = await loginAs(t);
    await users().deactivate({ email: l.email, tenantId: l.tenantId }, actor);
    const r = await users().deactivate({ email: l.email, tenantId: l.tenantId }, actor);
    expect(r).toMatchObject({ outcome: 'unchanged', sessionsRevoked: 0, events: [] });
    expect((await auditFor(owner, { tenantId: l.tenantId })).map((x) => x.action)).toEqual([
      'user.deactivated',
      'session.revoked.bulk',
    ]);
  });

  test('when the user does not exist in that tenant, then it is refused', async () => {
    const l = await loginAs(t);
    await expect(users().deactivate({ email: l.email, tenantId: uniqueTenant() }, actor)).rejects.toThrow(/no user/);
  });
});
