/**
 * GET /api/v1/security/master-key and POST /master-key/rotate over HTTP, with the environment
 * key and with Key Vault (real SDK, local HTTPS vault).
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import request from 'supertest';
import {
  deriveSubkey,
  environmentKeyVersion,
  HKDF_INFO_ENCRYPTION,
  HKDF_INFO_SIGNATURE,
} from '../../src/services/encryption';
import { buildTestApp, ownerPool, type TestApp } from '../helpers/app';
import { loginAs } from '../helpers/auth';
import { uniqueTenant } from '../helpers/env';
import { spellings } from './helpers/env';
import { newVaultKey, startFakeKeyVault, type FakeKeyVault } from './helpers/fake-key-vault';

const BASE = '/api/v1/security';
let owner: pg.Pool;
let vault: FakeKeyVault;

beforeAll(async () => {
  owner = ownerPool();
  vault = await startFakeKeyVault();
});
afterAll(async () => {
  await owner.end();
  await vault.close();
});

/** Every spelling of the master key and of its two derived keys. */
function forbiddenStrings(master: Buffer): string[] {
  return [master, deriveSubkey(master, HKDF_INFO_ENCRYPTION), deriveSubkey(master, HKDF_INFO_SIGNATURE)].flatMap(
    spellings,
  );
}

function expectNoLeak(haystacks: string[], master: Buffer): void {
  const all = haystacks.join('\n');
  for (const s of forbiddenStrings(master)) expect(all.includes(s)).toBe(false);
}

/** Rows of a tenant and action, by one user when given (the platform tenant is shared by the tests of one app). */
async function auditRows(tenantId: string, action: string, userId?: string) {
  const { rows } = await owner.query(
    'SELECT user_id, action, resource_type, resource_id, result, severity, error_message, before, after, request_id, ip_address FROM audit_logs WHERE tenant_id = $1 AND action = $2 AND ($3::uuid IS NULL OR user_id = $3) ORDER BY id',
    [tenantId, action, userId ?? null],
  );
  return rows;
}

/**
 * Since CONTRACT §9 the master key belongs to platform admins: admins of the platform tenant.
 * Each app gets its own platform tenant (PLATFORM_TENANT) so the tests' key events stay apart.
 */
const platformAdmin = (t: TestApp) => loginAs(t, { role: 'admin', tenantId: t.composition.config.platformTenant });

describe('master key with the environment source', () => {
  const envKey = randomBytes(32);
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({
      env: { FLEET_ENCRYPTION_KEY: envKey.toString('base64'), PLATFORM_TENANT: uniqueTenant('platform') },
      logLevel: 'debug',
    });
  });
  afterAll(() => t.close());

  test('when an admin reads /master-key, then metadata comes back (no material), no-store, and a high-severity key.master.read row is written', async () => {
    const admin = await platformAdmin(t);
    const res = await request(t.app)
      .get(`${BASE}/master-key`)
      .set('Authorization', admin.authorization)
      .set('X-Request-Id', 'mk-read-1');
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({
      success: true,
      key: {
        keyId: 'env:FLEET_ENCRYPTION_KEY',
        version: environmentKeyVersion(envKey),
        algorithm: 'AES-256-GCM',
        source: 'environment',
        fingerprint: expect.stringMatching(/^[0-9a-f]{32}$/),
        cachedUntil: null,
      },
    });
    const rows = await auditRows(admin.tenantId, 'key.master.read', admin.userId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      user_id: admin.userId,
      resource_type: 'master_key',
      resource_id: 'env:FLEET_ENCRYPTION_KEY',
      result: 'success',
      severity: 'high',
      request_id: 'mk-read-1',
      after: { version: environmentKeyVersion(envKey), source: 'environment', fingerprint: res.body.key.fingerprint },
    });
    expectNoLeak([res.text, JSON.stringify(res.headers), ...t.logs, JSON.stringify(rows)], envKey);
  });

  test.each(['user', 'viewer'] as const)(
    'when a %s reads /master-key, then 403 and an access.denied row',
    async (role) => {
      const who = await loginAs(t, { role });
      const res = await request(t.app).get(`${BASE}/master-key`).set('Authorization', who.authorization);
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('FORBIDDEN');
      expect(res.text).not.toContain('fingerprint');
      const denied = await auditRows(who.tenantId, 'access.denied');
      expect(denied).toHaveLength(1);
      expect(denied[0]?.error_message).toContain('keys:read');
      expect(await auditRows(who.tenantId, 'key.master.read')).toHaveLength(0);
    },
  );

  test('when nobody is logged in, then /master-key and /master-key/rotate answer 401 with WWW-Authenticate', async () => {
    for (const r of [
      request(t.app).get(`${BASE}/master-key`),
      request(t.app).post(`${BASE}/master-key/rotate`),
      request(t.app).get(`${BASE}/master-key`).set('Authorization', 'Bearer not.a.token'),
    ]) {
      const res = await r;
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(res.body.error.code).toBe('UNAUTHENTICATED');
    }
  });

  test('when an admin asks to rotate an environment key, then 409 explains rotation by configuration and a failed key.master.rotated row is written', async () => {
    const admin = await platformAdmin(t);
    const res = await request(t.app).post(`${BASE}/master-key/rotate`).set('Authorization', admin.authorization);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('CONFLICT');
    expect(res.body.error.message).toContain('FLEET_ENCRYPTION_KEY');
    expect(res.body.error.message).toContain('npm run keys:rewrap');
    const rows = await auditRows(admin.tenantId, 'key.master.rotated', admin.userId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ result: 'failure', severity: 'critical', user_id: admin.userId });
    expectNoLeak([res.text, ...t.logs], envKey);
  });

  test('when a user asks to rotate, then 403 and nothing is rotated', async () => {
    const user = await loginAs(t, { role: 'user' });
    const res = await request(t.app).post(`${BASE}/master-key/rotate`).set('Authorization', user.authorization);
    expect(res.status).toBe(403);
    expect(await auditRows(user.tenantId, 'key.master.rotated')).toHaveLength(0);
  });

  test.each<[string, (r: request.Test) => request.Test, number, string]>([
    ['an unknown body key', (r) => r.send({ force: true }), 400, 'VALIDATION_FAILED'],
    [
      'an injection string as a key',
      (r) => r.send({ "version'; DROP TABLE audit_logs;--": 1 }),
      400,
      'VALIDATION_FAILED',
    ],
    ['a JSON array body', (r) => r.send([1, 2]), 400, 'VALIDATION_FAILED'],
    ['malformed JSON', (r) => r.set('Content-Type', 'application/json').send('{"a":'), 400, 'MALFORMED_JSON'],
    [
      'a text/plain body',
      (r) => r.set('Content-Type', 'text/plain').send('rotate please'),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    ['a NUL byte in a key', (r) => r.send({ 'a\u0000b': 1 }), 400, 'VALIDATION_FAILED'],
    ['an oversized body', (r) => r.send({ pad: 'x'.repeat(200 * 1024) }), 413, 'PAYLOAD_TOO_LARGE'],
  ])('when rotate is sent %s, then it is refused before anything happens', async (_name, build, status, code) => {
    const admin = await platformAdmin(t);
    const res = await build(request(t.app).post(`${BASE}/master-key/rotate`).set('Authorization', admin.authorization));
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect(await auditRows(admin.tenantId, 'key.master.rotated', admin.userId)).toHaveLength(0);
  });

  test('when /master-key is called with a query parameter, then 400', async () => {
    const admin = await platformAdmin(t);
    const res = await request(t.app)
      .get(`${BASE}/master-key?include=material`)
      .set('Authorization', admin.authorization);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
  });
});

describe('master key with Key Vault', () => {
  function kvEnv(name: string, extra: Record<string, string | undefined> = {}) {
    return {
      AZURE_KEYVAULT_URL: vault.url,
      AZURE_KEYVAULT_MASTER_KEY_NAME: name,
      FLEET_ENCRYPTION_KEY: undefined,
      PLATFORM_TENANT: uniqueTenant('platform'),
      ...extra,
    };
  }
  let n = 0;
  function secretName(): string {
    n += 1;
    return `route-mk-${process.pid}-${Date.now().toString(36)}-${n}`;
  }

  test('when an admin reads /master-key, then the vault version, key id and cache expiry come back, and neither body nor logs hold the key in base64, base64url or hex', async () => {
    const name = secretName();
    const k = newVaultKey();
    const version = vault.put(name, k.value);
    const t = await buildTestApp({
      env: kvEnv(name),
      keyVault: { credential: vault.credential, clientOptions: vault.clientOptions },
      logLevel: 'debug',
    });
    try {
      const admin = await platformAdmin(t);
      const before = Date.now();
      const res = await request(t.app).get(`${BASE}/master-key`).set('Authorization', admin.authorization);
      expect(res.status).toBe(200);
      expect(res.body.key).toMatchObject({
        keyId: `${vault.url}/secrets/${name}`,
        version,
        algorithm: 'AES-256-GCM',
        source: 'azure-key-vault',
      });
      expect(res.body.key.fingerprint).toMatch(/^[0-9a-f]{32}$/);
      const until = Date.parse(res.body.key.cachedUntil);
      expect(until).toBeGreaterThanOrEqual(before + 3600_000 - 5000);
      expect(until).toBeLessThanOrEqual(Date.now() + 3600_000 + 5000);
      expect(Object.keys(res.body.key).sort()).toEqual([
        'algorithm',
        'cachedUntil',
        'fingerprint',
        'keyId',
        'source',
        'version',
      ]);
      const rows = await auditRows(admin.tenantId, 'key.master.read', admin.userId);
      expect(rows[0]).toMatchObject({
        severity: 'high',
        resource_id: `${vault.url}/secrets/${name}`,
        after: { version, source: 'azure-key-vault' },
      });
      // the secret value appears in the vault's HTTP response only, never in the app's output
      expectNoLeak([res.text, JSON.stringify(res.headers), ...t.logs, JSON.stringify(rows)], k.material);
    } finally {
      await t.close();
    }
  });

  test('when an admin rotates, then a new vault version becomes current (critical audit row with both versions) and data under the old version still decrypts', async () => {
    const name = secretName();
    const k = newVaultKey();
    const oldVersion = vault.put(name, k.value);
    const t = await buildTestApp({
      env: kvEnv(name),
      keyVault: { credential: vault.credential, clientOptions: vault.clientOptions },
      logLevel: 'debug',
    });
    try {
      const enc = t.composition.services.encryption;
      const oldData = await enc.encrypt('encrypted before rotation');
      const admin = await platformAdmin(t);
      const res = await request(t.app)
        .post(`${BASE}/master-key/rotate`)
        .set('Authorization', admin.authorization)
        .send({});
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      const newVersion = res.body.key.version as string;
      expect(newVersion).toMatch(/^[0-9a-f]{32}$/);
      expect(newVersion).not.toBe(oldVersion);
      expect(res.body.key.source).toBe('azure-key-vault');
      expect(vault.versionsOf(name).map((v) => v.version)).toEqual([oldVersion, newVersion]);
      const rows = await auditRows(admin.tenantId, 'key.master.rotated', admin.userId);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        result: 'success',
        severity: 'critical',
        user_id: admin.userId,
        before: { version: oldVersion },
        after: { version: newVersion, source: 'azure-key-vault' },
      });
      expect(await enc.decrypt(oldData)).toBe('encrypted before rotation');
      expect((await enc.encrypt('after')).keyVersion).toBe(newVersion);
      const read = await request(t.app).get(`${BASE}/master-key`).set('Authorization', admin.authorization);
      expect(read.body.key.version).toBe(newVersion);
      const newMaterial = Buffer.from(vault.versionsOf(name)[1]?.value ?? '', 'base64');
      expectNoLeak([res.text, read.text, ...t.logs, JSON.stringify(rows)], newMaterial);
      expectNoLeak([res.text, read.text, ...t.logs], k.material);
    } finally {
      await t.close();
    }
  });

  test('when the vault is down and there is no fallback key, then /master-key answers 503 and a failed key.master.read row is written', async () => {
    const name = secretName();
    vault.put(name, newVaultKey().value);
    const t = await buildTestApp({
      env: kvEnv(name),
      keyVault: { credential: vault.credential, clientOptions: vault.clientOptions },
    });
    vault.outage = 'unavailable';
    try {
      const admin = await platformAdmin(t);
      const res = await request(t.app).get(`${BASE}/master-key`).set('Authorization', admin.authorization);
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('SERVICE_UNAVAILABLE');
      expect(res.text).not.toContain(vault.url); // internal reason stays in the log
      const rows = await auditRows(admin.tenantId, 'key.master.read', admin.userId);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ result: 'failure', severity: 'high' });
      const rot = await request(t.app).post(`${BASE}/master-key/rotate`).set('Authorization', admin.authorization);
      expect(rot.status).toBe(503);
      expect((await auditRows(admin.tenantId, 'key.master.rotated', admin.userId))[0]).toMatchObject({
        result: 'failure',
        severity: 'critical',
      });
    } finally {
      vault.outage = null;
      await t.close();
    }
  });

  test('when the vault is down at start-up and FLEET_ENCRYPTION_KEY is set, then the environment key serves (source shows it), key.master.fallback is audited and readiness reports the vault down without failing', async () => {
    const name = secretName();
    vault.put(name, newVaultKey().value);
    const fallback = randomBytes(32);
    const t = await buildTestApp({
      env: kvEnv(name, { FLEET_ENCRYPTION_KEY: fallback.toString('base64') }),
      keyVault: { credential: vault.credential, clientOptions: vault.clientOptions },
      logLevel: 'debug',
    });
    vault.outage = 'unavailable';
    try {
      await t.composition.start();
      const admin = await platformAdmin(t);
      const res = await request(t.app).get(`${BASE}/master-key`).set('Authorization', admin.authorization);
      expect(res.status).toBe(200);
      expect(res.body.key).toMatchObject({ source: 'environment', version: environmentKeyVersion(fallback) });
      // Key events belong to the platform tenant's trail (CONTRACT §9).
      const { rows } = await owner.query(
        'SELECT severity, result, after FROM audit_logs WHERE tenant_id = $1 AND action = $2 AND resource_id = $3',
        [t.composition.config.platformTenant, 'key.master.fallback', `${vault.url}/secrets/${name}`],
      );
      expect(rows).toEqual([
        {
          severity: 'high',
          result: 'failure',
          after: { servedVersion: environmentKeyVersion(fallback), servedSource: 'environment' },
        },
      ]);
      const ready = await request(t.app).get('/api/health/ready');
      expect(ready.status).toBe(200);
      expect(ready.body.dependencies.keyVault).toMatchObject({ status: 'down', critical: false });
      expect(t.logs.join('\n')).toContain('falling back to FLEET_ENCRYPTION_KEY');
      expectNoLeak([res.text, ready.text, ...t.logs], fallback);
    } finally {
      vault.outage = null;
      await t.close();
    }
  });

  test('when the vault answers, then readiness lists it up', async () => {
    const name = secretName();
    vault.put(name, newVaultKey().value);
    const t = await buildTestApp({
      env: kvEnv(name),
      keyVault: { credential: vault.credential, clientOptions: vault.clientOptions },
    });
    try {
      const ready = await request(t.app).get('/api/health/ready');
      expect(ready.status).toBe(200);
      expect(ready.body.dependencies.keyVault).toMatchObject({ status: 'up', critical: false });
    } finally {
      await t.close();
    }
  });
});
