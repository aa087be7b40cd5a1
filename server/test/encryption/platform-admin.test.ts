/**
 * CONTRACT §9: the master key belongs to platform admins (admins of PLATFORM_TENANT, default
 * `_platform`), its events go to the platform tenant's trail, rotation is throttled, and the
 * Key Vault call holds no database transaction open. Real SDK against the local vault.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import request from 'supertest';
import { ManualClock } from '../../src/lib/clock';
import { buildTestApp, ownerPool } from '../helpers/app';
import { loginAs } from '../helpers/auth';
import { testDbUrl, uniqueEmail, uniqueTenant } from '../helpers/env';
import { newVaultKey, startFakeKeyVault, type FakeKeyVault } from './helpers/fake-key-vault';

const BASE = '/api/v1/security';
let owner: pg.Pool;
let vault: FakeKeyVault;
let n = 0;

beforeAll(async () => {
  owner = ownerPool();
  vault = await startFakeKeyVault();
});
afterAll(async () => {
  await owner.end();
  await vault.close();
});

function kvApp(extra: Record<string, string | undefined> = {}, clock?: ManualClock) {
  n += 1;
  const name = `platform-mk-${process.pid}-${Date.now().toString(36)}-${n}`;
  vault.put(name, newVaultKey().value);
  return {
    name,
    build: () =>
      buildTestApp({
        env: {
          AZURE_KEYVAULT_URL: vault.url,
          AZURE_KEYVAULT_MASTER_KEY_NAME: name,
          FLEET_ENCRYPTION_KEY: undefined,
          ...extra,
        },
        keyVault: { credential: vault.credential, clientOptions: vault.clientOptions },
        clock,
      }),
  };
}

async function rows(tenantId: string, action: string, userId: string) {
  const r = await owner.query(
    'SELECT tenant_id, result, severity, error_message FROM audit_logs WHERE tenant_id = $1 AND action = $2 AND user_id = $3 ORDER BY id',
    [tenantId, action, userId],
  );
  return r.rows;
}

describe('platform administration of the master key', () => {
  test('when an admin of an ordinary tenant reads or rotates the master key, then 403 FORBIDDEN, access.denied in their tenant, and the vault is not asked for a new version', async () => {
    const { name, build } = kvApp();
    const t = await build();
    try {
      const admin = await loginAs(t, { role: 'admin' });
      const read = await request(t.app).get(`${BASE}/master-key`).set('Authorization', admin.authorization);
      expect(read.status).toBe(403);
      expect(read.body.error.code).toBe('FORBIDDEN');
      expect(read.text).not.toContain('fingerprint');
      const rot = await request(t.app)
        .post(`${BASE}/master-key/rotate`)
        .set('Authorization', admin.authorization)
        .send({});
      expect(rot.status).toBe(403);
      expect(vault.versionsOf(name)).toHaveLength(1);
      const denied = await rows(admin.tenantId, 'access.denied', admin.userId);
      expect(denied).toHaveLength(2);
      expect(denied[0]?.error_message).toMatch(/platform/);
      expect(await rows(admin.tenantId, 'key.master.read', admin.userId)).toEqual([]);
    } finally {
      await t.close();
    }
  });

  test('when a platform admin (default PLATFORM_TENANT _platform) reads the key, then 200 and key.master.read lands in the _platform trail', async () => {
    const { build } = kvApp({ PLATFORM_TENANT: undefined });
    const t = await build();
    try {
      expect(t.config.platformTenant).toBe('_platform');
      const admin = await loginAs(t, { role: 'admin', tenantId: '_platform' });
      const res = await request(t.app).get(`${BASE}/master-key`).set('Authorization', admin.authorization);
      expect(res.status).toBe(200);
      expect(await rows('_platform', 'key.master.read', admin.userId)).toEqual([
        expect.objectContaining({ result: 'success', severity: 'high' }),
      ]);
      // A user (not admin) of the platform tenant is still refused by the role check.
      const viewer = await loginAs(t, { role: 'viewer', tenantId: '_platform' });
      expect((await request(t.app).get(`${BASE}/master-key`).set('Authorization', viewer.authorization)).status).toBe(
        403,
      );
    } finally {
      await t.close();
    }
  });

  test('when a platform admin rotates twice within a minute, then the second gets 429 RATE_LIMITED with Retry-After and no vault version; another instance is throttled too (the trail); a minute later (this instance) the throttle lets the attempt through to the trail check', async () => {
    const platform = uniqueTenant('platform');
    const clock = new ManualClock(Date.now());
    const { name, build } = kvApp({ PLATFORM_TENANT: platform }, clock);
    const t = await build();
    const other = await buildTestApp({
      env: {
        AZURE_KEYVAULT_URL: vault.url,
        AZURE_KEYVAULT_MASTER_KEY_NAME: name,
        FLEET_ENCRYPTION_KEY: undefined,
        PLATFORM_TENANT: platform,
      },
      keyVault: { credential: vault.credential, clientOptions: vault.clientOptions },
    });
    try {
      const admin = await loginAs(t, { role: 'admin', tenantId: platform });
      const first = await request(t.app)
        .post(`${BASE}/master-key/rotate`)
        .set('Authorization', admin.authorization)
        .send({});
      expect(first.status).toBe(200);
      const second = await request(t.app)
        .post(`${BASE}/master-key/rotate`)
        .set('Authorization', admin.authorization)
        .send({});
      expect(second.status).toBe(429);
      expect(second.body.error.code).toBe('RATE_LIMITED');
      const retry = Number(second.headers['retry-after']);
      expect(retry).toBeGreaterThan(0);
      expect(retry).toBeLessThanOrEqual(60);
      const otherAdmin = await loginAs(other, { role: 'admin', tenantId: platform });
      const third = await request(other.app)
        .post(`${BASE}/master-key/rotate`)
        .set('Authorization', otherAdmin.authorization)
        .send({});
      expect(third.status).toBe(429);
      expect(vault.versionsOf(name)).toHaveLength(2);
      expect(await rows(platform, 'key.master.rotated', admin.userId)).toEqual([
        expect.objectContaining({ result: 'success', severity: 'critical' }),
      ]);
    } finally {
      await t.close();
      await other.close();
    }
  });

  test('when the vault is slow during a rotation, then no database transaction is held meanwhile: a one-connection pool still serves other queries', async () => {
    const platform = uniqueTenant('platform');
    const { build } = kvApp({ PLATFORM_TENANT: platform, DB_POOL_SIZE: '1' });
    const t = await build();
    try {
      const admin = await loginAs(t, { role: 'admin', tenantId: platform });
      await t.composition.services.encryption.getMasterKey(); // cached: only the rotation talks to the vault
      vault.resetCounts();
      vault.delayMs = 1500;
      const order: string[] = [];
      const rotation = request(t.app)
        .post(`${BASE}/master-key/rotate`)
        .set('Authorization', admin.authorization)
        .send({})
        .then((r) => {
          order.push('rotation');
          return r;
        });
      // Wait until the rotation is at the vault (the throttle's short transaction is over).
      for (let i = 0; i < 300 && vault.requests.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(vault.requests.length).toBeGreaterThan(0);
      await t.composition.pool.query('SELECT 1');
      order.push('query');
      const res = await rotation;
      expect(res.status).toBe(200);
      expect(order).toEqual(['query', 'rotation']);
    } finally {
      vault.delayMs = 0;
      await t.close();
    }
  });
});

describe('npm run user:add for the platform tenant', () => {
  test('when user:add runs with --tenant _platform --role admin, then the platform admin is created', async () => {
    const ROOT = path.resolve(__dirname, '../../..');
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-platform-cli-'));
    const email = uniqueEmail('platform');
    try {
      const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          path.join(ROOT, 'node_modules/.bin/tsx'),
          [path.join(ROOT, 'server/src/cli/user-add.ts'), '--email', email, '--role', 'admin', '--tenant', '_platform'],
          {
            cwd: ROOT,
            timeout: 60_000,
            env: {
              PATH: process.env.PATH ?? '',
              HOME: os.tmpdir(),
              NODE_ENV: 'test',
              DATABASE_URL: testDbUrl(),
              JWT_SECRET: randomBytes(48).toString('base64'),
              FLEET_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
              FLEET_DATA_DIR: dataDir,
            },
          },
          (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
      expect(out.stderr).toBe('');
      expect(out.code).toBe(0);
      expect(out.stdout).toContain(`created: ${email} in tenant _platform, role admin`);
      const r = await owner.query('SELECT role FROM users WHERE tenant_id = $1 AND email = $2', ['_platform', email]);
      expect(r.rows).toEqual([{ role: 'admin' }]);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
