/**
 * The operator commands run as real processes (tsx), against the test database, exactly as
 * `npm run user:add` / `user:deactivate` / `dev:token` run them.
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { ownerPool } from '../helpers/app';
import { TEST_SIGNING_KEY, testDbUrl, uniqueEmail, uniqueTenant } from '../helpers/env';
import { DEV_AUDIENCE, DEV_ISSUER, loadOrCreateDevIssuerKey } from '../../src/services/auth/dev-issuer';
import { auditFor, buildAuthApp, postLogin, uniqueIp } from './helpers';
import { makeKey, signJwt } from './oidc-issuer';

const ROOT = path.resolve(__dirname, '../../..');
const TSX = path.join(ROOT, 'node_modules/.bin/tsx');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(script: string, args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      TSX,
      [path.join(ROOT, 'server/src/cli', script), ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir(), ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

let owner: pg.Pool;
let dataDir: string;
let baseEnv: Record<string, string>;

beforeAll(() => {
  owner = ownerPool();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-auth-cli-'));
  baseEnv = {
    NODE_ENV: 'test',
    DATABASE_URL: testDbUrl(),
    JWT_SECRET: randomBytes(48).toString('base64'),
    FLEET_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    FLEET_DATA_DIR: dataDir,
  };
});
afterAll(async () => {
  await owner.end();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('npm run user:add / user:deactivate', () => {
  test('when user:add runs with valid options, then the user is created, the outcome printed, and user.created audited; user:deactivate then deactivates and reports revoked sessions', async () => {
    const email = uniqueEmail();
    const tenant = uniqueTenant();
    const add = await run(
      'user-add.ts',
      ['--email', email, '--role', 'admin', '--tenant', tenant, '--name', 'Ops Admin'],
      baseEnv,
    );
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    expect(add.stdout).toMatch(
      new RegExp(
        `^created: ${email.replace(/\./g, '\\.')} in tenant ${tenant}, role admin, name "Ops Admin" \\(id [0-9a-f-]{36}\\)\\naudit: user\\.created\\n$`,
      ),
    );
    const row = await owner.query('SELECT id, role, is_active FROM users WHERE tenant_id = $1 AND email = $2', [
      tenant,
      email,
    ]);
    expect(row.rows[0]).toMatchObject({ role: 'admin', is_active: true });
    const created = await auditFor(owner, { tenantId: tenant, action: 'user.created' });
    expect(created).toHaveLength(1);
    const ua = await owner.query('SELECT user_agent FROM audit_logs WHERE id = $1', [created[0]?.id]);
    expect(ua.rows[0].user_agent).toMatch(/^fleet-cli cli:user:add/);

    await owner.query(
      `INSERT INTO sessions (user_id, tenant_id, idle_expires_at, absolute_expires_at) VALUES ($1, $2, now() + interval '30 minutes', now() + interval '1 day')`,
      [row.rows[0].id, tenant],
    );
    const off = await run(
      'user-deactivate.ts',
      ['--email', email, '--tenant', tenant, '--reason', 'incident 42'],
      baseEnv,
    );
    expect(off.code).toBe(0);
    expect(off.stdout).toBe(
      `deactivated: ${email} in tenant ${tenant}; sessions revoked: 1\naudit: user.deactivated, session.revoked.bulk\n`,
    );
    const after = await owner.query('SELECT is_active FROM users WHERE id = $1', [row.rows[0].id]);
    expect(after.rows[0].is_active).toBe(false);
  });

  test.each([
    ['a missing --tenant', ['--email', 'x@example.com', '--role', 'user'], /needs --email, --role and --tenant/],
    [
      'an unknown role',
      ['--email', 'x@example.com', '--role', 'root', '--tenant', 'acme'],
      /--role must be admin, user or viewer/,
    ],
    [
      'an unknown option',
      ['--email', 'x@example.com', '--role', 'user', '--tenant', 'acme', '--password', 'x'],
      /Unknown option '--password'/,
    ],
    [
      'an invalid e-mail',
      ['--email', 'not-an-email', '--role', 'user', '--tenant', 'acme'],
      /--email must be an e-mail address/,
    ],
    [
      'an option twice',
      ['--email', 'x@example.com', '--role', 'user', '--role', 'admin', '--tenant', 'acme'],
      /--role given more than once/,
    ],
    [
      'a name with a newline and a terminal escape',
      ['--email', 'x@example.com', '--role', 'user', '--tenant', 'acme', '--name', 'evil\nname\u001b[31m'],
      /--name must be 1-200 characters of text, without control/,
    ],
    [
      'a name with a right-to-left override and a zero-width space',
      ['--email', 'x@example.com', '--role', 'user', '--tenant', 'acme', '--name', '\u202eevil\u200bx'],
      /--name must be 1-200 characters of text, without control, invisible or bidirectional formatting characters/,
    ],
  ])('when user:add gets %s, then it exits 2 with the usage and writes nothing', async (_name, args, message) => {
    const r = await run('user-add.ts', args, baseEnv);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain('Usage: npm run user:add');
    const n = await owner.query(
      `SELECT count(*)::int AS n FROM users WHERE email IN ('x@example.com', 'not-an-email')`,
    );
    expect(n.rows[0].n).toBe(0);
  });

  test('when user:deactivate names a user that does not exist, then it exits 1 (not a usage error) with a clear message', async () => {
    const r = await run('user-deactivate.ts', ['--email', uniqueEmail(), '--tenant', uniqueTenant()], baseEnv);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^user:deactivate: no user .* in tenant \S+\n$/);
    expect(r.stderr).not.toContain('Usage:');
  });

  test.each([
    ['a terminal escape', 'a\u001b[2Jb'],
    ['an empty reason', ''],
    ['a reason over 200 characters', 'x'.repeat(201)],
    ['a bidirectional override', 'ok\u202eko'],
  ])(
    'when user:deactivate gets %s as --reason, then it exits 2 before connecting, as revoke-sessions.sh does',
    async (_name, reason) => {
      const r = await run('user-deactivate.ts', ['--email', 'a@example.com', '--tenant', 'acme', '--reason', reason], {
        ...baseEnv,
        DATABASE_URL: 'postgres://postgres@127.0.0.1:1/unreachable',
      });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--reason must be 1-200 characters of text/);
    },
  );

  test('when user:deactivate gets an option twice, then it exits 2 and deactivates nobody', async () => {
    const r = await run(
      'user-deactivate.ts',
      ['--email', 'a@example.com', '--email', 'b@example.com', '--tenant', 'acme'],
      baseEnv,
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--email given more than once/);
  });
});

describe('npm run dev:token and the development issuer', () => {
  test('when dev:token runs with the development issuer enabled, then it prints an ID token that logs the provisioned user in, and the key file is private (0600)', async () => {
    const email = uniqueEmail();
    const tenant = uniqueTenant();
    const env = { ...baseEnv, FLEET_DEV_ISSUER: 'true' };
    expect((await run('user-add.ts', ['--email', email, '--role', 'user', '--tenant', tenant], env)).code).toBe(0);
    const tok = await run('dev-token.ts', ['--email', email.toUpperCase()], env);
    expect(tok.code).toBe(0);
    expect(tok.stdout).toMatch(/^eyJ[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const st = fs.statSync(path.join(dataDir, 'dev-issuer-key.pem'));
    expect(st.mode & 0o777).toBe(0o600);

    const app = await buildAuthApp(null, { env: { FLEET_DEV_ISSUER: 'true', FLEET_DATA_DIR: dataDir } });
    try {
      expect(app.config.idp.devIssuer).toBe(true);
      const rid = randomUUID();
      const res = await postLogin(app, { email, idToken: tok.stdout.trim() }, uniqueIp(), rid);
      expect(res.status).toBe(200);
      expect(res.body.user).toMatchObject({ email, tenantId: tenant, role: 'user' });
      const rows = await owner.query('SELECT after FROM audit_logs WHERE request_id = $1', [rid]);
      expect(rows.rows[0].after.issuer).toBe('https://dev-issuer.fleet.invalid/');
    } finally {
      await app.close();
    }
  });

  test('when NODE_ENV is production, then dev:token refuses and prints no token', async () => {
    const prod = {
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://app:S3cure-Passw0rd-xyz@127.0.0.1:5432/fleet',
      JWT_SECRET: randomBytes(48).toString('base64'),
      JWT_SIGNING_KEY: TEST_SIGNING_KEY,
      FLEET_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      AUTH0_DOMAIN: 'tenant.eu.auth0.com',
      AUTH0_CLIENT_ID: 'client-123',
      CORS_ORIGINS: 'https://app.example.com',
      FLEET_DATA_DIR: dataDir,
    };
    const r = await run('dev-token.ts', ['--email', 'a@example.com'], prod);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/development only; refused with NODE_ENV=production/);
    const asked = await run('dev-token.ts', ['--email', 'a@example.com'], { ...prod, FLEET_DEV_ISSUER: 'true' });
    expect(asked.code).toBe(1);
    expect(asked.stdout).toBe('');
    expect(asked.stderr).toMatch(/development only; refused with NODE_ENV=production/);
    // With nothing else set: one plain sentence, not the production configuration's errors.
    const bare = await run('dev-token.ts', ['--email', 'a@example.com'], {
      NODE_ENV: 'production',
      FLEET_DATA_DIR: dataDir,
    });
    expect(bare.code).toBe(1);
    expect(bare.stderr.trim()).toBe(
      'dev:token: development only; refused with NODE_ENV=production (log in through the identity provider).',
    );
  });

  test('when a real identity provider is configured, then dev:token refuses (the development issuer is off)', async () => {
    const r = await run('dev-token.ts', ['--email', 'a@example.com'], {
      ...baseEnv,
      NODE_ENV: 'development',
      AUTH0_ISSUER_BASE_URL: 'http://127.0.0.1:9/',
      AUTH0_CLIENT_ID: 'x',
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/development issuer is not enabled/);
  });

  test('when the development issuer is enabled, then tokens from any other key or issuer are refused', async () => {
    const app = await buildAuthApp(null, { env: { FLEET_DEV_ISSUER: 'true', FLEET_DATA_DIR: dataDir } });
    try {
      const kid = loadOrCreateDevIssuerKey(dataDir).kid;
      const email = uniqueEmail();
      await app.composition.services.users.provision(
        { email, role: 'user', tenantId: uniqueTenant() },
        { source: 'test' },
      );
      const now = Math.floor(Date.now() / 1000);
      const claims = {
        iss: DEV_ISSUER,
        aud: DEV_AUDIENCE,
        sub: 'dev|x',
        email,
        email_verified: true,
        iat: now,
        exp: now + 600,
      };
      const foreign = signJwt({ alg: 'RS256', kid }, claims, makeKey('RS256').privateKey);
      const rid = randomUUID();
      expect((await postLogin(app, { email, idToken: foreign }, uniqueIp(), rid)).status).toBe(401);
      const rows = await owner.query('SELECT error_message FROM audit_logs WHERE request_id = $1', [rid]);
      expect(rows.rows[0].error_message).toMatch(/invalid signature/);
    } finally {
      await app.close();
    }
  });
});
