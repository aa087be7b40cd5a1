/**
 * scripts/revoke-sessions.sh: revoked sessions' live tokens fail on the next request through
 * the real requireAuth guard; everything is audited; arguments are checked.
 */
import express, { type Express, type Request, type Response } from 'express';
import type pg from 'pg';
import request from 'supertest';
import { errorHandler } from '../../src/middleware/error-handler';
import { requestContext } from '../../src/middleware/request-context';
import { buildTestApp, ownerPool, type TestApp } from '../helpers/app';
import { loginAs, type TestLogin } from '../helpers/auth';
import { testDbUrl, uniqueEmail, uniqueTenant } from '../helpers/env';
import { lastLine, run, scratchDb, scriptEnv, type ScratchDb } from './helpers';
import { withTenant } from '../../src/db/transaction';

jest.setTimeout(120_000);

let app: TestApp;
let owner: pg.Pool;
let probe: Express;

/** A route behind the app's real requireAuth guard (the same guard every protected route uses). */
function probeApp(t: TestApp): Express {
  const p = express();
  p.use(requestContext({ logger: t.composition.logger, accessLog: false }));
  p.get('/probe', ...t.composition.guards.requireAuth, (req: Request, res: Response) => {
    res.json({ success: true, userId: req.auth?.userId, sessionId: req.auth?.sessionId });
  });
  p.use(errorHandler());
  return p;
}

async function status(login: TestLogin): Promise<number> {
  return (await request(probe).get('/probe').set('Authorization', login.authorization)).status;
}

async function sessionRow(id: string): Promise<{ revoked_at: Date | null; revoked_reason: string | null }> {
  return (await owner.query('SELECT revoked_at, revoked_reason FROM sessions WHERE id = $1', [id])).rows[0];
}

beforeAll(async () => {
  app = await buildTestApp();
  owner = ownerPool();
  probe = probeApp(app);
});

afterAll(async () => {
  await app?.close();
  await owner?.end();
});

describe('revoke-sessions.sh', () => {
  test("when a user's sessions are revoked, then their live tokens fail on the next request and other users keep working", async () => {
    const tenant = uniqueTenant('rv');
    const email = uniqueEmail('victim');
    const laptop = await loginAs(app, { tenantId: tenant, email });
    const phone = await loginAs(app, { tenantId: tenant, email });
    const colleague = await loginAs(app, { tenantId: tenant });
    expect(await status(laptop)).toBe(200);
    expect(await status(phone)).toBe(200);

    const reason = "stolen laptop'); DROP TABLE sessions; --";
    const r = await run(
      'revoke-sessions.sh',
      ['--user', email.toUpperCase(), '--reason', reason],
      scriptEnv(testDbUrl()),
    );
    expect(r.code).toBe(0);
    expect(lastLine(r.stdout)).toBe(`revoked 2 session(s) of user ${email.toUpperCase()} (1 tenant(s) affected)`);

    const denied = await request(probe).get('/probe').set('Authorization', laptop.authorization);
    expect(denied.status).toBe(401);
    expect(denied.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(denied.body).toMatchObject({ success: false, error: { code: 'UNAUTHENTICATED' } });
    expect(await status(phone)).toBe(401);
    expect(await status(colleague)).toBe(200);
    const claims = app.composition.services.tokens.verify(laptop.token).claims;
    expect(claims).not.toBeNull();
    const refused = await app.composition.services.sessions.authenticate(claims as NonNullable<typeof claims>);
    expect(refused.auth).toBeNull();
    expect(refused.reason).toMatch(/^session revoked/);

    expect(await sessionRow(laptop.sessionId)).toMatchObject({ revoked_reason: reason });
    expect((await sessionRow(laptop.sessionId)).revoked_at).toBeInstanceOf(Date);
    expect((await sessionRow(colleague.sessionId)).revoked_at).toBeNull();
    const { rows } = await owner.query(
      `SELECT * FROM audit_logs WHERE tenant_id = $1 AND action = 'session.revoked.bulk'`,
      [tenant],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      severity: 'high',
      result: 'success',
      resource_type: 'session',
      resource_id: email,
      user_id: null,
    });
    expect(rows[0].after).toEqual({ scope: 'user', revoked: 2, reason, user: email, tenant: null });
    expect(rows[0].user_agent).toMatch(/^fleet-ops\/revoke-sessions\.sh \(\S+@\S+\)$/);
    expect(rows[0].request_id).toMatch(/^ops-\d{8}T\d{6}Z-[0-9a-f]{8}$/);
  });

  test("when a tenant's sessions are revoked, then every session of that tenant fails and other tenants are untouched", async () => {
    const tenant = uniqueTenant('rvt');
    const a = await loginAs(app, { tenantId: tenant, role: 'admin' });
    const b = await loginAs(app, { tenantId: tenant, role: 'viewer' });
    const outsider = await loginAs(app, { tenantId: uniqueTenant('rvo') });
    const r = await run('revoke-sessions.sh', ['--tenant', tenant], scriptEnv(testDbUrl()));
    expect(r.code).toBe(0);
    expect(lastLine(r.stdout)).toBe(`revoked 2 session(s) of tenant ${tenant} (1 tenant(s) affected)`);
    expect(await status(a)).toBe(401);
    expect(await status(b)).toBe(401);
    expect(await status(outsider)).toBe(200);
    expect(await sessionRow(a.sessionId)).toMatchObject({
      revoked_reason: 'revoked by an operator (revoke-sessions.sh)',
    });
    const { rows } = await owner.query(
      `SELECT after FROM audit_logs WHERE tenant_id = $1 AND action = 'session.revoked.bulk'`,
      [tenant],
    );
    expect(rows.map((x) => x.after)).toEqual([
      { scope: 'tenant', revoked: 2, reason: 'revoked by an operator (revoke-sessions.sh)', user: null, tenant },
    ]);
  });

  test('when --user is narrowed with --tenant, then the same email in another tenant keeps its session', async () => {
    const email = uniqueEmail('twin');
    const here = await loginAs(app, { tenantId: uniqueTenant('rvh'), email });
    const there = await loginAs(app, { tenantId: uniqueTenant('rvx'), email });
    const r = await run('revoke-sessions.sh', ['--user', email, '--tenant', here.tenantId], scriptEnv(testDbUrl()));
    expect(r.code).toBe(0);
    expect(lastLine(r.stdout)).toContain('revoked 1 session(s)');
    expect(await status(here)).toBe(401);
    expect(await status(there)).toBe(200);
  });

  test('when there is nothing left to revoke, then it reports 0 and still writes its audit row', async () => {
    const tenant = uniqueTenant('rvz');
    // A known tenant (it has a user) whose only session has already ended.
    const gone = await loginAs(app, { tenantId: tenant });
    await withTenant(app.composition.pool, tenant, (c) =>
      app.composition.services.sessions.revoke(c, gone.sessionId, tenant, 'logout'),
    );
    const r1 = await run('revoke-sessions.sh', ['--tenant', tenant, '--reason', 'drill'], scriptEnv(testDbUrl()));
    expect(r1.code).toBe(0);
    expect(lastLine(r1.stdout)).toBe(`revoked 0 session(s) of tenant ${tenant} (0 tenant(s) affected)`);
    const { rows } = await owner.query(
      `SELECT after FROM audit_logs WHERE tenant_id = $1 AND action = 'session.revoked.bulk'`,
      [tenant],
    );
    expect(rows.map((x) => x.after)).toEqual([{ scope: 'tenant', revoked: 0, reason: 'drill', user: null, tenant }]);
  });

  test('when the tenant does not exist (no user in it), then it exits 1 naming the tenant and revokes and writes nothing', async () => {
    const tenant = uniqueTenant('nosuchtenant');
    const witness = await loginAs(app, { tenantId: uniqueTenant('rvw') });
    const r = await run('revoke-sessions.sh', ['--tenant', tenant, '--reason', 'typo check'], scriptEnv(testDbUrl()));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `revoke-sessions.sh: error: unknown tenant ${tenant} (it has no users): nothing revoked`,
    );
    expect(r.stdout).toBe('');
    const { rows } = await owner.query(`SELECT 1 FROM audit_logs WHERE tenant_id = $1 OR resource_id = $1`, [tenant]);
    expect(rows).toHaveLength(0);
    expect((await sessionRow(witness.sessionId)).revoked_at).toBeNull();
  });

  test('when the user does not exist, then it exits 1 naming the email and writes nothing', async () => {
    const email = uniqueEmail('ghost');
    const r = await run('revoke-sessions.sh', ['--user', email], scriptEnv(testDbUrl()));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no user with email ${email}`);
    const { rows } = await owner.query(`SELECT 1 FROM audit_logs WHERE resource_id = $1`, [email]);
    expect(rows).toHaveLength(0);
  });
});

describe('revoke-sessions.sh --all', () => {
  let db: ScratchDb;
  afterAll(async () => {
    await db?.drop();
  });

  test('when every session is revoked, then all tenants lose them and one audit row per tenant records the count', async () => {
    db = await scratchDb({ migrate: true });
    const scratch = await buildTestApp({ env: { DATABASE_URL: db.url } });
    try {
      const sessions = [
        await loginAs(scratch, { tenantId: 'alpha' }),
        await loginAs(scratch, { tenantId: 'alpha' }),
        await loginAs(scratch, { tenantId: 'beta' }),
      ];
      const already = await loginAs(scratch, { tenantId: 'beta' });
      await withTenant(scratch.composition.pool, 'beta', (c) =>
        scratch.composition.services.sessions.revoke(c, already.sessionId, 'beta', 'logout'),
      );
      const r = await run('revoke-sessions.sh', ['--all', '--reason', 'signing key leaked'], scriptEnv(db.url));
      expect(r.code).toBe(0);
      expect(lastLine(r.stdout)).toBe('revoked 3 session(s) of all tenants (2 tenant(s) affected)');
      const p = db.pool();
      const live = await p.query('SELECT count(*)::int AS n FROM sessions WHERE revoked_at IS NULL');
      expect(live.rows[0].n).toBe(0);
      const reasons = await p.query('SELECT id, revoked_reason FROM sessions ORDER BY id');
      for (const row of reasons.rows)
        expect(row.revoked_reason).toBe(row.id === already.sessionId ? 'logout' : 'signing key leaked');
      const audit = await p.query(
        `SELECT tenant_id, after FROM audit_logs WHERE action = 'session.revoked.bulk' ORDER BY tenant_id`,
      );
      expect(audit.rows.map((x) => [x.tenant_id, x.after.revoked, x.after.scope])).toEqual([
        ['alpha', 2, 'all'],
        ['beta', 1, 'all'],
      ]);
      for (const s of sessions) {
        const claims = scratch.composition.services.tokens.verify(s.token).claims as NonNullable<
          ReturnType<typeof scratch.composition.services.tokens.verify>['claims']
        >;
        const refused = await scratch.composition.services.sessions.authenticate(claims);
        expect(refused.auth).toBeNull();
        expect(refused.reason).toMatch(/^session revoked/);
      }
    } finally {
      await scratch.close();
    }
  });
});

describe('revoke-sessions.sh repeated options', () => {
  test('when --user is given twice for two real users, then it exits 2 and neither user loses a session', async () => {
    const tenant = uniqueTenant('rvr');
    const a = await loginAs(app, { tenantId: tenant, email: uniqueEmail('first') });
    const b = await loginAs(app, { tenantId: tenant, email: uniqueEmail('second') });
    const r = await run('revoke-sessions.sh', ['--user', a.email, '--user', b.email], scriptEnv(testDbUrl()));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--user was given more than once');
    expect(r.stdout).toBe('');
    expect(await status(a)).toBe(200);
    expect(await status(b)).toBe(200);
    const { rows } = await owner.query(
      `SELECT 1 FROM audit_logs WHERE tenant_id = $1 AND action = 'session.revoked.bulk'`,
      [tenant],
    );
    expect(rows).toHaveLength(0);
  });
});

describe('revoke-sessions.sh arguments', () => {
  const cases: Array<[string, string[], string]> = [
    ['no scope', [], 'say whose sessions'],
    ['--all with --tenant', ['--all', '--tenant', 'x'], '--all cannot be combined'],
    ['a malformed email', ['--user', 'nobody'], '--user must be an email address'],
    ['an email with a newline', ['--user', 'a@b.c\nx@y.z'], '--user must be an email address'],
    ['a tenant id with a quote', ['--tenant', "x' OR '1'='1"], '--tenant must be a tenant id'],
    ['a reason over 200 characters', ['--all', '--reason', 'r'.repeat(201)], 'longer than 200'],
    ['a reason with a control character', ['--all', '--reason', 'line\nbreak'], 'control characters'],
    ['an unknown option', ['--everyone'], 'unknown argument: --everyone'],
    ['an option without its value', ['--user'], '--user needs a value'],
    ['--user twice', ['--user', 'a@example.com', '--user', 'b@example.com'], '--user was given more than once'],
    ['--tenant twice', ['--tenant', 'a', '--tenant', 'b'], '--tenant was given more than once'],
    ['--all twice', ['--all', '--all'], '--all was given more than once'],
    ['--reason twice', ['--all', '--reason', 'one', '--reason', 'two'], '--reason was given more than once'],
  ];
  test.each(cases)('when given %s, then it exits 2 and revokes nothing', async (_name, args, message) => {
    const witness = await loginAs(app, { tenantId: uniqueTenant('rvw') });
    const r = await run('revoke-sessions.sh', args, scriptEnv(testDbUrl()));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain('Try:');
    expect((await sessionRow(witness.sessionId)).revoked_at).toBeNull();
  });

  test('when asked for --help, then it prints the usage', async () => {
    const r = await run('revoke-sessions.sh', ['--help'], scriptEnv(testDbUrl()));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: scripts/revoke-sessions.sh --user EMAIL');
    expect(r.stdout).toContain('session.revoked.bulk');
  });

  test('when the database does not answer, then it exits 1 with a clear message', async () => {
    const r = await run('revoke-sessions.sh', ['--all'], scriptEnv('postgres://ops:pw-not-shown@127.0.0.1:1/none'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot connect to ops@127.0.0.1:1/none');
    expect(r.stderr).not.toContain('pw-not-shown');
  });
});
