/**
 * scripts/collect-evidence.sh on the shared test database: a tenant of its own with rows
 * before, inside and after the window, for the user, for other users, IPs and tenants.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { buildTestApp, ownerPool, type TestApp } from '../helpers/app';
import { loginAs, type TestLogin } from '../helpers/auth';
import { testDbUrl, uniqueEmail, uniqueTenant } from '../helpers/env';
import { hasAuditVerify, lastLine, run, scriptEnv, tmpDir, unprivileged } from './helpers';

jest.setTimeout(120_000);

let app: TestApp;
let owner: pg.Pool;
let work: string;
let logDir: string;
const tenant = uniqueTenant('ev');
const otherTenant = uniqueTenant('ev2');
const email = uniqueEmail('suspect');
let suspect: TestLogin;
let bystander: TestLogin;
let since: string;
let until: string;
const inWindow: string[] = [];
let failedLoginId: string;
let alertId: string;
let result: { code: number | null; stdout: string; stderr: string };
let folder: string;
let archive: string;
let sessionsBefore: unknown[];
let suspectSessionId: string;
let formulaId: string;

/** A session opened now (database clock), from `ip`. */
async function openSession(userId: string, tenantId: string, ip: string): Promise<string> {
  const { rows } = await owner.query<{ id: string }>(
    `INSERT INTO sessions (user_id, tenant_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, ip_address, user_agent)
     VALUES ($1, $2, clock_timestamp(), clock_timestamp(), now() + interval '30 minutes', now() + interval '1 day', $3, 'evidence-test') RETURNING id`,
    [userId, tenantId, ip],
  );
  return (rows[0] as { id: string }).id;
}

async function dbNow(): Promise<string> {
  const { rows } = await owner.query<{ t: string }>(
    `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`,
  );
  return (rows[0] as { t: string }).t;
}

function ndjson(file: string): Array<Record<string, unknown>> {
  const text = fs.readFileSync(path.join(folder, file), 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

beforeAll(async () => {
  app = await buildTestApp();
  owner = ownerPool();
  const audit = app.composition.services.audit;
  suspect = await loginAs(app, { tenantId: tenant, email, role: 'user' });
  bystander = await loginAs(app, { tenantId: tenant, role: 'admin' });
  const twin = await loginAs(app, { tenantId: otherTenant, email, role: 'user' });

  // Before the window.
  await audit.record({
    tenantId: tenant,
    userId: suspect.userId,
    action: 'fleet.report.read',
    resourceType: 'report',
    ipAddress: '203.0.113.7',
  });
  since = await dbNow();
  // Inside the window: three rows about the suspect...
  inWindow.push(
    (
      await audit.record({
        tenantId: tenant,
        userId: suspect.userId,
        action: 'fleet.vehicle.update',
        resourceType: 'vehicle',
        resourceId: 'v-1',
        ipAddress: '203.0.113.7',
        after: { note: 'comma, "quote"' },
      })
    ).id,
  );
  failedLoginId = (
    await audit.record({
      tenantId: tenant,
      userId: null,
      action: 'auth.login.failure',
      resourceType: 'user',
      resourceId: email,
      result: 'failure',
      errorMessage: 'bad id token',
      ipAddress: '203.0.113.7',
      severity: 'medium',
    })
  ).id;
  inWindow.push(failedLoginId);
  // Attacker-chosen text that a spreadsheet would run as a formula (CSV injection).
  formulaId = (
    await audit.record({
      tenantId: tenant,
      userId: suspect.userId,
      action: 'fleet.vehicle.update',
      resourceType: 'vehicle',
      resourceId: '=HYPERLINK("http://evil.example/x","click")',
      errorMessage: '@SUM(1+1)',
      result: 'failure',
      ipAddress: '203.0.113.7',
    })
  ).id;
  inWindow.push(formulaId);
  alertId = (
    await audit.record({
      tenantId: tenant,
      userId: null,
      action: 'security.alert.brute_force',
      resourceType: 'user',
      resourceId: email,
      ipAddress: '203.0.113.7',
      severity: 'critical',
    })
  ).id;
  inWindow.push(alertId);
  suspectSessionId = await openSession(suspect.userId, tenant, '203.0.113.7');
  // ...and rows that the filters exclude: another user, another tenant's same email, another IP.
  await openSession(suspect.userId, tenant, '198.51.100.1');
  await openSession(bystander.userId, tenant, '203.0.113.8');
  await openSession(twin.userId, otherTenant, '203.0.113.7');
  await audit.record({
    tenantId: tenant,
    userId: bystander.userId,
    action: 'fleet.vehicle.update',
    resourceType: 'vehicle',
    ipAddress: '203.0.113.7',
  });
  await audit.record({
    tenantId: otherTenant,
    userId: twin.userId,
    action: 'fleet.vehicle.update',
    resourceType: 'vehicle',
    ipAddress: '203.0.113.7',
  });
  await audit.record({
    tenantId: tenant,
    userId: suspect.userId,
    action: 'fleet.vehicle.read',
    resourceType: 'vehicle',
    ipAddress: '198.51.100.1',
  });
  until = await dbNow();
  // After the window.
  await audit.record({
    tenantId: tenant,
    userId: suspect.userId,
    action: 'fleet.vehicle.delete',
    resourceType: 'vehicle',
    ipAddress: '203.0.113.7',
  });

  work = tmpDir();
  logDir = path.join(work, 'logs');
  fs.mkdirSync(logDir);
  fs.writeFileSync(path.join(logDir, 'fleet-security-recent.log'), '{"level":"info","message":"recent"}\n');
  fs.writeFileSync(path.join(logDir, 'fleet-security-2020-01-01.log'), '{"level":"info","message":"old"}\n');
  fs.utimesSync(
    path.join(logDir, 'fleet-security-2020-01-01.log'),
    new Date('2020-01-01T00:00:00Z'),
    new Date('2020-01-01T00:00:00Z'),
  );

  sessionsBefore = (await owner.query('SELECT * FROM sessions WHERE tenant_id = $1 ORDER BY id', [tenant])).rows;
  result = await run(
    'collect-evidence.sh',
    [
      '--since',
      since,
      '--until',
      until,
      '--user',
      email.toUpperCase(),
      '--ip',
      '203.0.113.0/24',
      '--tenant',
      tenant,
      '--out',
      path.join(work, 'out'),
    ],
    scriptEnv(testDbUrl(), { LOG_DIR: logDir }),
  );
  const lines = result.stdout.trimEnd().split('\n');
  folder = lines[lines.length - 2] as string;
  archive = lastLine(result.stdout);
});

afterAll(async () => {
  await app?.close();
  await owner?.end();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('collect-evidence.sh', () => {
  test('when evidence is collected, then it prints the new folder and its archive', () => {
    expect(result.code).toBe(0);
    expect(folder).toMatch(new RegExp(`^${path.join(work, 'out')}/evidence-\\d{8}T\\d{6}Z-[0-9a-f]{6}$`));
    expect(archive).toBe(`${folder}.tar.gz`);
    expect(fs.statSync(folder).mode & 0o777).toBe(0o700);
  });

  test('when filtered by user, IP, tenant and window, then exactly the matching audit rows are exported as CSV and NDJSON', () => {
    const rows = ndjson('audit_logs.ndjson');
    expect(rows.map((r) => String(r.id))).toEqual(inWindow);
    expect(rows[0]).toMatchObject({
      tenant_id: tenant,
      user_id: suspect.userId,
      action: 'fleet.vehicle.update',
      ip_address: '203.0.113.7',
      after: { note: 'comma, "quote"' },
    });
    const csv = fs.readFileSync(path.join(folder, 'audit_logs.csv'), 'utf8').trimEnd().split('\n');
    expect(csv[0]).toMatch(/^id,tenant_id,user_id,action,/);
    expect(csv).toHaveLength(1 + inWindow.length);
    expect(csv[1]).toContain('"{""note"": ""comma, \\""quote\\""""}"');
    expect(ndjson('failed_logins.ndjson').map((r) => String(r.id))).toEqual([failedLoginId]);
    expect(ndjson('security_events.ndjson').map((r) => String(r.id))).toEqual([alertId]);
    expect(fs.readFileSync(path.join(folder, 'failed_logins.csv'), 'utf8').trimEnd().split('\n')).toHaveLength(2);
  });

  test('when a cell starts with a formula character, then the CSV prefixes it with a quote (OWASP) and the NDJSON keeps it exact', () => {
    const row = ndjson('audit_logs.ndjson').find((r) => String(r.id) === formulaId);
    expect(row).toMatchObject({
      resource_id: '=HYPERLINK("http://evil.example/x","click")',
      error_message: '@SUM(1+1)',
    });
    const line = fs
      .readFileSync(path.join(folder, 'audit_logs.csv'), 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${formulaId},`)) as string;
    expect(line).toContain(`"'=HYPERLINK(""http://evil.example/x"",""click"")"`);
    expect(line).toContain(`"'@SUM(1+1)"`);
    expect(line).not.toMatch(/(^|,)"?[=+@-]/);
  });

  test('when collected, then the sessions active in the window that match the filters and their users are included', () => {
    const sessions = ndjson('sessions.ndjson');
    expect(sessions.map((s) => s.id)).toEqual([suspectSessionId]);
    expect(sessions[0]).toMatchObject({
      email,
      tenant_id: tenant,
      user_id: suspect.userId,
      ip_address: '203.0.113.7',
      revoked_at: null,
    });
    const users = ndjson('users.ndjson');
    expect(users.map((u) => u.id)).toEqual([suspect.userId]);
  });

  test('when collected, then MANIFEST.sha256 verifies with sha256sum -c and catches a changed file', () => {
    const manifest = fs.readFileSync(path.join(folder, 'MANIFEST.sha256'), 'utf8');
    for (const f of [
      'audit_logs.csv',
      'audit_logs.ndjson',
      'sessions.csv',
      'failed_logins.ndjson',
      'security_events.csv',
      'users.csv',
      'audit_chain.txt',
      'host.txt',
      'CHAIN_OF_CUSTODY.md',
      'logs/fleet-security-recent.log',
    ]) {
      expect(manifest).toMatch(new RegExp(`^[0-9a-f]{64}  ${f.replace('.', '\\.')}$`, 'm'));
    }
    expect(manifest).not.toContain('MANIFEST.sha256');
    execFileSync('sha256sum', ['-c', 'MANIFEST.sha256'], { cwd: folder });
    const copy = `${folder}-tampered`;
    fs.cpSync(folder, copy, { recursive: true });
    fs.appendFileSync(path.join(copy, 'audit_logs.csv'), 'forged,row\n');
    expect(() =>
      execFileSync('sha256sum', ['--quiet', '-c', 'MANIFEST.sha256'], { cwd: copy, stdio: 'pipe' }),
    ).toThrow();
  });

  test('when collected, then the archive holds the folder and verifies against its own checksum', () => {
    execFileSync('sha256sum', ['-c', `${path.basename(archive)}.sha256`], { cwd: path.dirname(archive) });
    const listing = execFileSync('tar', ['-tzf', archive]).toString();
    const name = path.basename(folder);
    expect(listing).toContain(`${name}/MANIFEST.sha256`);
    expect(listing).toContain(`${name}/audit_logs.ndjson`);
    expect(listing).toContain(`${name}/CHAIN_OF_CUSTODY.md`);
  });

  test('when collected, then recent logs, host facts, the chain result and a chain-of-custody note are included', () => {
    expect(fs.readdirSync(path.join(folder, 'logs')).sort()).toEqual(['README.txt', 'fleet-security-recent.log']);
    const host = fs.readFileSync(path.join(folder, 'host.txt'), 'utf8');
    expect(host).toMatch(/^collected_at_utc: \d{4}-/m);
    expect(host).toMatch(/^hostname: \S+/m);
    expect(host).toMatch(/^node: v\d+/m);
    expect(host).toMatch(/^database_server_version: PostgreSQL \d+/m);
    expect(host).toMatch(/^database_transaction_read_only: on$/m);
    const chain = fs.readFileSync(path.join(folder, 'audit_chain.txt'), 'utf8');
    expect(chain).toContain(`command: npm run audit:verify -- --no-record --tenant ${tenant}`);
    if (hasAuditVerify()) expect(chain).toMatch(/^result: intact$/m);
    else expect(chain).toMatch(/^result: unavailable/m);
    const note = fs.readFileSync(path.join(folder, 'CHAIN_OF_CUSTODY.md'), 'utf8');
    expect(note).toMatch(/Collected by: \S+@\S+/);
    expect(note).toContain(`--tenant ${tenant}`);
    expect(note).toContain(`--since ${since}`);
    expect(note).toContain('sha256sum -c MANIFEST.sha256');
    expect(note).toContain('Rows: audit_logs 4, failed_logins 1, security_events 1, sessions 1, users 1');
  });

  test('when collected, then the database is unchanged except for one system.evidence_collected audit row', async () => {
    expect((await owner.query('SELECT * FROM sessions WHERE tenant_id = $1 ORDER BY id', [tenant])).rows).toEqual(
      sessionsBefore,
    );
    const { rows } = await owner.query(
      `SELECT * FROM audit_logs WHERE tenant_id = $1 AND created_at >= $2::timestamptz AND action LIKE 'system.%'`,
      [tenant, until],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      action: 'system.evidence_collected',
      severity: 'medium',
      result: 'success',
      resource_type: 'evidence',
      resource_id: path.basename(folder),
    });
    expect(rows[0].after).toMatchObject({
      auditRows: 4,
      failedLogins: 1,
      securityEvents: 1,
      sessions: 1,
      users: 1,
      tenant,
      user: email.toUpperCase(),
      ip: '203.0.113.0/24',
      archive,
    });
    expect(rows[0].after.archiveSha256).toBe(fs.readFileSync(`${archive}.sha256`, 'utf8').split(' ')[0]);
  });
});

describe('collect-evidence.sh users referred to by resource_id', () => {
  test('when audit rows name a user only in resource_id (user.created, user.role_changed), then users.* holds that user; a non-uuid resource_id does no harm', async () => {
    const t = uniqueTenant('evr');
    const users = app.composition.services.users;
    const actor = { source: 'cli:user:add', operator: 'evidence-test' };
    const unrelated = (await users.provision({ email: uniqueEmail('before'), role: 'user', tenantId: t }, actor)).user;
    const from = await dbNow();
    const subjectEmail = uniqueEmail('provisioned');
    const created = await users.provision({ email: subjectEmail, role: 'user', tenantId: t }, actor);
    const changed = await users.provision({ email: subjectEmail, role: 'admin', tenantId: t }, actor);
    expect(created.events).toEqual(['user.created']);
    expect(changed.events).toEqual(['user.role_changed']);
    const subject = created.user;
    // Another user named by an upper-case id, and a resource_id that is no uuid at all.
    const other = (
      await users.provision({ email: uniqueEmail('other'), role: 'viewer', tenantId: uniqueTenant('evr2') }, actor)
    ).user;
    await app.composition.services.audit.record({
      tenantId: t,
      userId: null,
      action: 'fleet.user.note',
      resourceType: 'user',
      resourceId: other.id.toUpperCase(),
    });
    await app.composition.services.audit.record({
      tenantId: t,
      userId: null,
      action: 'fleet.user.note',
      resourceType: 'user',
      resourceId: 'not-a-uuid',
    });
    const to = await dbNow();
    const dir = path.join(work, `refs-${Math.random().toString(36).slice(2)}`);
    const r = await run(
      'collect-evidence.sh',
      ['--since', from, '--until', to, '--tenant', t, '--out', dir],
      scriptEnv(testDbUrl()),
    );
    expect(r.code).toBe(0);
    const evidence = r.stdout.trimEnd().split('\n')[0] as string;
    const read = (f: string) =>
      fs
        .readFileSync(path.join(evidence, f), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const rows = read('audit_logs.ndjson');
    // Every row about the subject names it only in resource_id (user_id is empty: a CLI acted).
    const about = rows.filter((x) => x.resource_id === subject.id);
    expect(about.map((x) => x.action)).toEqual(expect.arrayContaining(['user.created', 'user.role_changed']));
    expect(about.map((x) => x.user_id)).toEqual(about.map(() => null));
    const ids = read('users.ndjson').map((u) => u.id);
    expect(ids.sort()).toEqual([subject.id, other.id].sort());
    expect(ids).not.toContain(unrelated.id);
    expect(read('users.ndjson').find((u) => u.id === subject.id)).toMatchObject({
      email: subjectEmail,
      role: 'admin',
      tenant_id: t,
    });
  });
});

describe('collect-evidence.sh arguments', () => {
  const env = () => scriptEnv(testDbUrl());
  const out = () => path.join(work, `bad-${Math.random().toString(36).slice(2)}`);
  const cases: Array<[string, string[], string]> = [
    ['no --since', ['--out', 'X'], '--since is required'],
    ['no --out', ['--since', '2026-01-01'], '--out is required'],
    ['a --since that is not ISO 8601', ['--since', 'yesterday', '--out', 'X'], '--since must be an ISO 8601 time'],
    [
      'an injection string as --since',
      ['--since', "2026-01-01'; DROP TABLE audit_logs; --", '--out', 'X'],
      '--since must be an ISO 8601 time',
    ],
    [
      'an impossible date',
      ['--since', '2026-02-31T00:00:00Z', '--out', 'X'],
      '--since 2026-02-31T00:00:00Z is not a valid time (accepted: ISO 8601',
    ],
    [
      'an impossible --until',
      ['--since', '2026-01-01', '--until', '2026-01-01T25:00', '--out', 'X'],
      '--until 2026-01-01T25:00 is not a valid time',
    ],
    [
      '--since after --until',
      ['--since', '2026-02-01', '--until', '2026-01-01', '--out', 'X'],
      'must be before --until',
    ],
    [
      'an IP that is not one',
      ['--since', '2026-01-01', '--ip', '300.1.2.3', '--out', 'X'],
      '--ip 300.1.2.3 is not a valid IP address or CIDR block',
    ],
    [
      'a malformed email',
      ['--since', '2026-01-01', '--user', 'not an email', '--out', 'X'],
      '--user must be an email address',
    ],
    [
      'a tenant with a path',
      ['--since', '2026-01-01', '--tenant', '../etc', '--out', 'X'],
      '--tenant must be a tenant id',
    ],
    ['an unknown option', ['--since', '2026-01-01', '--out', 'X', '--format', 'xml'], 'unknown argument: --format'],
    ['an option without its value', ['--since'], '--since needs a value'],
    [
      'an option whose value is the next option',
      ['--since', '--out', 'X'],
      '--since needs a value (got the option --out)',
    ],
    [
      '--user twice',
      ['--since', '2026-01-01', '--user', 'a@example.com', '--user', 'b@example.com', '--out', 'X'],
      '--user was given more than once',
    ],
    [
      '--since twice',
      ['--since', '2026-01-01', '--since', '2026-01-02', '--out', 'X'],
      '--since was given more than once',
    ],
    ['--out twice', ['--since', '2026-01-01', '--out', 'X', '--out', 'X'], '--out was given more than once'],
    [
      '--until twice',
      ['--since', '2026-01-01', '--until', '2026-02-01', '--until', '2026-03-01', '--out', 'X'],
      '--until was given more than once',
    ],
  ];
  test.each(cases)('when given %s, then it exits 2 and creates nothing', async (_name, args, message) => {
    const dir = out();
    const r = await run(
      'collect-evidence.sh',
      args.map((a) => (a === 'X' ? dir : a)),
      env(),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(fs.existsSync(dir)).toBe(false);
  });

  test('when --since is not a real date (2026-13-45), then it exits 2 with one line naming --since and the accepted format, and no SQL text', async () => {
    for (const [option, value] of [
      ['--since', '2026-13-45'],
      ['--until', '2026-13-45'],
    ] as const) {
      const dir = out();
      const args =
        option === '--since'
          ? ['--since', value, '--out', dir]
          : ['--since', '2026-01-01', '--until', value, '--out', dir];
      const r = await run('collect-evidence.sh', args, env());
      expect(r.code).toBe(2);
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines).toEqual([
        `collect-evidence.sh: ${option} ${value} is not a valid time (accepted: ISO 8601, YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|+HH:MM], a real date and time, no zone = UTC, e.g. 2026-01-31T22:00:00Z)`,
        expect.stringMatching(/^Try: \S*collect-evidence\.sh --help$/),
      ]);
      expect(r.stderr).not.toMatch(/LINE \d|SELECT|timestamptz|HINT|datestyle|ERROR/i);
      expect(fs.existsSync(dir)).toBe(false);
    }
  });

  test('when --out cannot be created (under /proc, an existing regular file, below a regular file), then it exits 2 with a prefixed error naming --out', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'plain-file');
    fs.writeFileSync(file, 'keep');
    const cases: Array<[string, string]> = [
      [`/proc/fleet-evidence-test-${process.pid}`, 'cannot be created (No such file or directory)'],
      [file, 'exists and is not a folder'],
      [path.join(file, 'sub'), 'cannot be created (Not a directory)'],
    ];
    for (const [target, why] of cases) {
      const r = await run('collect-evidence.sh', ['--since', '2026-01-01', '--out', target], env());
      expect({ target, code: r.code }).toEqual({ target, code: 2 });
      expect(r.stderr).toContain(`collect-evidence.sh: error: --out ${target} ${why}`);
      expect(r.stderr).not.toMatch(/^mkdir:/m);
      expect(r.stdout).toBe('');
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('keep');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const asUser = unprivileged();
  (asUser ? test : test.skip)(
    'when --out is a read-only folder for the user running it, then it exits 2 saying --out is not writable',
    async () => {
      const u = asUser as NonNullable<typeof asUser>;
      const dir = tmpDir();
      fs.chmodSync(dir, 0o755);
      const ro = path.join(dir, 'read-only');
      fs.mkdirSync(ro, { mode: 0o555 });
      fs.chmodSync(ro, 0o555);
      for (const [target, why] of [
        [ro, 'is not writable by'],
        [path.join(ro, 'new'), 'cannot be created (Permission denied)'],
      ] as const) {
        const r = await u.run('collect-evidence.sh', ['--since', '2026-01-01', '--out', target], env());
        expect({ target, code: r.code, stderr: r.stderr }).toEqual({
          target,
          code: 2,
          stderr: expect.stringContaining(`collect-evidence.sh: error: --out ${target} ${why}`),
        });
      }
      expect(fs.readdirSync(ro)).toEqual([]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  );

  test('when asked for --help, then it prints the usage', async () => {
    const r = await run('collect-evidence.sh', ['--help'], env());
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: scripts/collect-evidence.sh --since ISO');
    expect(r.stdout).toContain('MANIFEST.sha256');
  });
});
