/**
 * Encrypted secrets (migration 030) and `npm run keys:rewrap`: the function and the CLI
 * re-encrypt stored ciphertexts under the current key version.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';
import { withTenant } from '../../src/db/transaction';
import {
  DecryptionError,
  environmentKeyVersion,
  RewrapRefusedError,
  rewrapEncryptedSecrets,
  secretAad,
} from '../../src/services/encryption';
import { buildTestApp, ownerPool, type TestApp } from '../helpers/app';
import { testDbUrl, uniqueTenant } from '../helpers/env';
import { newVaultKey, startFakeKeyVault, type FakeKeyVault } from './helpers/fake-key-vault';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..', '..');
let owner: pg.Pool;

beforeAll(() => {
  owner = ownerPool();
});
afterAll(async () => {
  await owner.end();
});

async function rowsOf(tenantId: string) {
  const { rows } = await owner.query<{
    id: string;
    name: string;
    key_version: string;
    ciphertext: string;
    rewrapped_at: Date | null;
    updated_at: Date;
  }>(
    'SELECT id, name, key_version, ciphertext, rewrapped_at, updated_at FROM encrypted_secrets WHERE tenant_id = $1 ORDER BY name',
    [tenantId],
  );
  return rows;
}

async function rewrapAudit(tenantId: string) {
  const { rows } = await owner.query(
    'SELECT action, severity, result, user_id, before, after, error_message FROM audit_logs WHERE tenant_id = $1 AND action = $2 ORDER BY id',
    [tenantId, 'key.rewrap'],
  );
  return rows;
}

const keyA = randomBytes(32);
const keyB = randomBytes(32);
const envA = { FLEET_ENCRYPTION_KEY: keyA.toString('base64') };
const envB = {
  FLEET_ENCRYPTION_KEY: keyB.toString('base64'),
  FLEET_ENCRYPTION_PREVIOUS_KEYS: `old-a:${keyA.toString('base64')}`,
};

describe('encrypted secrets store', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ env: envA });
  });
  afterAll(() => t.close());

  test('when a secret is stored, then the row holds only the text-form ciphertext under the current version and get returns the value', async () => {
    const tenant = uniqueTenant();
    const secrets = t.composition.services.secrets;
    const meta = await secrets.put(tenant, 'siem.api_key', 'hec-token-123456', { description: 'Splunk HEC token' });
    expect(meta).toMatchObject({
      tenantId: tenant,
      name: 'siem.api_key',
      keyVersion: environmentKeyVersion(keyA),
      description: 'Splunk HEC token',
      rewrappedAt: null,
    });
    const [row] = await rowsOf(tenant);
    expect(row?.ciphertext).toMatch(/^v1:env-[0-9a-f]{16}:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]+:[A-Za-z0-9_-]{22}$/);
    expect(row?.ciphertext).not.toContain('hec-token');
    expect(await secrets.get(tenant, 'siem.api_key')).toBe('hec-token-123456');
    expect(await secrets.get(tenant, 'missing')).toBeNull();
  });

  test('when secrets are listed, then metadata comes back without values; replacing and removing work', async () => {
    const tenant = uniqueTenant();
    const secrets = t.composition.services.secrets;
    await secrets.put(tenant, 'b.secret', 'value-b');
    await secrets.put(tenant, 'a.secret', 'value-a');
    await secrets.put(tenant, 'a.secret', 'value-a2');
    const list = await secrets.list(tenant);
    expect(list.map((s) => s.name)).toEqual(['a.secret', 'b.secret']);
    expect(JSON.stringify(list)).not.toContain('value-');
    expect(await secrets.get(tenant, 'a.secret')).toBe('value-a2');
    expect(await secrets.remove(tenant, 'b.secret')).toBe(true);
    expect(await secrets.remove(tenant, 'b.secret')).toBe(false);
    expect((await secrets.list(tenant)).map((s) => s.name)).toEqual(['a.secret']);
  });

  test('when a ciphertext is copied to another name or tenant, then it does not decrypt there (AAD binds tenant and name)', async () => {
    const t1 = uniqueTenant();
    const t2 = uniqueTenant();
    const secrets = t.composition.services.secrets;
    await secrets.put(t1, 'victim', 'top secret');
    await secrets.put(t1, 'other', 'decoy');
    await secrets.put(t2, 'victim', 'decoy');
    const [victim] = (await rowsOf(t1)).filter((r) => r.name === 'victim');
    await owner.query(
      'UPDATE encrypted_secrets SET ciphertext = $1, key_version = $2 WHERE tenant_id = $3 AND name = $4',
      [victim?.ciphertext, victim?.key_version, t1, 'other'],
    );
    await owner.query(
      'UPDATE encrypted_secrets SET ciphertext = $1, key_version = $2 WHERE tenant_id = $3 AND name = $4',
      [victim?.ciphertext, victim?.key_version, t2, 'victim'],
    );
    await expect(secrets.get(t1, 'other')).rejects.toBeInstanceOf(DecryptionError);
    await expect(secrets.get(t2, 'victim')).rejects.toBeInstanceOf(DecryptionError);
    expect(await secrets.get(t1, 'victim')).toBe('top secret');
  });

  test("when the application role reads under another tenant's context, then row-level security hides the rows", async () => {
    const t1 = uniqueTenant();
    const t2 = uniqueTenant();
    await t.composition.services.secrets.put(t1, 'mine', 'v');
    const seen = await withTenant(
      t.composition.pool,
      t2,
      async (c) =>
        (await c.query('SELECT count(*)::int AS n FROM encrypted_secrets WHERE tenant_id = $1', [t1])).rows[0],
    );
    expect(seen).toEqual({ n: 0 });
    const noContext = await t.composition.pool.query(
      'SELECT count(*)::int AS n FROM encrypted_secrets WHERE tenant_id = $1',
      [t1],
    );
    expect(noContext.rows[0]).toEqual({ n: 0 });
    await expect(
      withTenant(t.composition.pool, t2, (c) =>
        c.query(
          "INSERT INTO encrypted_secrets (tenant_id, name, key_version, ciphertext) VALUES ($1, 'x', 'k', 'v1:k:a:b:c')",
          [t1],
        ),
      ),
    ).rejects.toThrow(/row-level security/);
  });

  test('when a row names a different version than its ciphertext, then the database refuses it', async () => {
    const tenant = uniqueTenant();
    await t.composition.services.secrets.put(tenant, 'consistent', 'v');
    await expect(
      owner.query("UPDATE encrypted_secrets SET key_version = 'other' WHERE tenant_id = $1", [tenant]),
    ).rejects.toThrow(/encrypted_secrets_version_matches/);
  });

  test('when a name or value is invalid, then the store refuses it before touching the database', async () => {
    const tenant = uniqueTenant();
    const secrets = t.composition.services.secrets;
    for (const name of [
      '',
      'UPPER',
      'has space',
      "x'; DROP TABLE encrypted_secrets;--",
      '.dot-first',
      'n'.repeat(129),
      'nul\u0000',
    ]) {
      await expect(secrets.put(tenant, name, 'v')).rejects.toThrow(TypeError);
    }
    await expect(secrets.put(tenant, 'ok', '')).rejects.toThrow(TypeError);
    await expect(secrets.put(tenant, 'ok', 'x'.repeat(64 * 1024 + 1))).rejects.toThrow(RangeError);
    expect(await rowsOf(tenant)).toHaveLength(0);
  });
});

describe('rewrap (function)', () => {
  test('when the key rotates by configuration, then rewrap moves every row of the tenant to the new version, keeps values and writes high key.rewrap rows; a second run does nothing', async () => {
    const tenant = uniqueTenant();
    const before = await buildTestApp({ env: envA });
    for (let i = 0; i < 7; i++) await before.composition.services.secrets.put(tenant, `cred-${i}`, `value ${i} ✓`);
    await before.close();

    const after = await buildTestApp({ env: envB });
    try {
      const deps = {
        pool: after.composition.pool,
        encryption: after.composition.services.encryption,
        audit: after.composition.services.audit,
        logger: after.composition.logger,
      };
      const dry = await rewrapEncryptedSecrets(deps, { tenantId: tenant, dryRun: true });
      expect(dry).toMatchObject({ dryRun: true, stale: 7, rewrapped: 0, targetVersion: environmentKeyVersion(keyB) });
      expect(dry.before).toEqual([{ keyVersion: environmentKeyVersion(keyA), rows: 7 }]);
      expect((await rowsOf(tenant)).every((r) => r.key_version === environmentKeyVersion(keyA))).toBe(true);

      const report = await rewrapEncryptedSecrets(deps, { tenantId: tenant, batchSize: 3 });
      expect(report).toMatchObject({
        stale: 7,
        rewrapped: 7,
        failed: [],
        tenants: [{ tenantId: tenant, rewrapped: 7, failed: 0 }],
      });
      const rows = await rowsOf(tenant);
      expect(
        rows.every(
          (r) =>
            r.key_version === environmentKeyVersion(keyB) &&
            r.ciphertext.startsWith(`v1:${environmentKeyVersion(keyB)}:`) &&
            r.rewrapped_at !== null,
        ),
      ).toBe(true);
      for (let i = 0; i < 7; i++)
        expect(await after.composition.services.secrets.get(tenant, `cred-${i}`)).toBe(`value ${i} ✓`);
      const audits = await rewrapAudit(tenant);
      expect(audits).toHaveLength(3); // batches of 3, 3, 1
      expect(audits.every((a) => a.severity === 'high' && a.result === 'success' && a.user_id === null)).toBe(true);
      expect(audits.reduce((n, a) => n + (a.after as { rewrapped: number }).rewrapped, 0)).toBe(7);
      expect(audits[0]?.before).toEqual({ fromVersions: { [environmentKeyVersion(keyA)]: 3 } });

      const again = await rewrapEncryptedSecrets(deps, { tenantId: tenant });
      expect(again).toMatchObject({ stale: 0, rewrapped: 0, failed: [] });
      expect(await rewrapAudit(tenant)).toHaveLength(3);

      // once rewrapped, the old key can be removed from the configuration
      const onlyB = await buildTestApp({ env: { FLEET_ENCRYPTION_KEY: keyB.toString('base64') } });
      try {
        expect(await onlyB.composition.services.secrets.get(tenant, 'cred-3')).toBe('value 3 ✓');
      } finally {
        await onlyB.close();
      }
    } finally {
      await after.close();
    }
  });

  test('when a stored ciphertext was altered, then rewrap leaves that row unchanged, reports it, marks the audit row failed and still rewraps the rest', async () => {
    const tenant = uniqueTenant();
    const before = await buildTestApp({ env: envA });
    await before.composition.services.secrets.put(tenant, 'good', 'fine');
    await before.composition.services.secrets.put(tenant, 'tampered', 'will be altered');
    await before.close();
    const [, tampered] = await rowsOf(tenant);
    const parts = (tampered?.ciphertext as string).split(':');
    parts[4] = `${(parts[4] as string).startsWith('A') ? 'B' : 'A'}${(parts[4] as string).slice(1)}`;
    await owner.query('UPDATE encrypted_secrets SET ciphertext = $1 WHERE id = $2', [parts.join(':'), tampered?.id]);

    const after = await buildTestApp({ env: envB });
    try {
      const report = await rewrapEncryptedSecrets(
        {
          pool: after.composition.pool,
          encryption: after.composition.services.encryption,
          audit: after.composition.services.audit,
          logger: after.composition.logger,
        },
        { tenantId: tenant },
      );
      expect(report.rewrapped).toBe(1);
      expect(report.failed).toEqual([
        {
          tenantId: tenant,
          id: tampered?.id,
          name: 'tampered',
          keyVersion: environmentKeyVersion(keyA),
          reason: 'decryption failed (authentication-failed)',
        },
      ]);
      const rows = await rowsOf(tenant);
      expect(rows.find((r) => r.name === 'tampered')?.ciphertext).toBe(parts.join(':'));
      expect(rows.find((r) => r.name === 'good')?.key_version).toBe(environmentKeyVersion(keyB));
      const [audit] = await rewrapAudit(tenant);
      expect(audit).toMatchObject({
        result: 'failure',
        severity: 'high',
        after: { rewrapped: 1, failed: 1, failedIds: [tampered?.id] },
      });
      expect(audit?.error_message).toContain('1 row(s)');
    } finally {
      await after.close();
    }
  });

  test('when data was written under the environment key and Key Vault is configured later, then rewrap moves it to the vault version', async () => {
    const vault: FakeKeyVault = await startFakeKeyVault();
    const name = `rewrap-mk-${process.pid}-${Date.now().toString(36)}`;
    const version = vault.put(name, newVaultKey().value);
    const tenant = uniqueTenant();
    try {
      const before = await buildTestApp({ env: envA });
      await before.composition.services.secrets.put(tenant, 'pre-vault', 'from the environment era');
      await before.close();
      const kv = await buildTestApp({
        env: {
          AZURE_KEYVAULT_URL: vault.url,
          AZURE_KEYVAULT_MASTER_KEY_NAME: name,
          FLEET_ENCRYPTION_KEY: undefined,
          FLEET_ENCRYPTION_PREVIOUS_KEYS: `pre-vault:${keyA.toString('base64')}`,
        },
        keyVault: { credential: vault.credential, clientOptions: vault.clientOptions },
      });
      try {
        const deps = {
          pool: kv.composition.pool,
          encryption: kv.composition.services.encryption,
          audit: kv.composition.services.audit,
          logger: kv.composition.logger,
        };
        const report = await rewrapEncryptedSecrets(deps, { tenantId: tenant });
        expect(report).toMatchObject({ source: 'azure-key-vault', targetVersion: version, rewrapped: 1, failed: [] });
        expect((await rowsOf(tenant))[0]?.key_version).toBe(version);
        expect(await kv.composition.services.secrets.get(tenant, 'pre-vault')).toBe('from the environment era');
      } finally {
        await kv.close();
      }
    } finally {
      await vault.close();
    }
  });

  test('when the key source is degraded (vault down, fallback in use), then rewrap refuses to run', async () => {
    const vault: FakeKeyVault = await startFakeKeyVault();
    const name = `rewrap-degraded-${process.pid}-${Date.now().toString(36)}`;
    vault.put(name, newVaultKey().value);
    vault.outage = 'unavailable';
    const kv = await buildTestApp({
      env: {
        AZURE_KEYVAULT_URL: vault.url,
        AZURE_KEYVAULT_MASTER_KEY_NAME: name,
        FLEET_ENCRYPTION_KEY: keyA.toString('base64'),
      },
      keyVault: { credential: vault.credential, clientOptions: vault.clientOptions },
    });
    try {
      const deps = {
        pool: kv.composition.pool,
        encryption: kv.composition.services.encryption,
        audit: kv.composition.services.audit,
        logger: kv.composition.logger,
      };
      await expect(rewrapEncryptedSecrets(deps, { tenantId: uniqueTenant() })).rejects.toBeInstanceOf(
        RewrapRefusedError,
      );
    } finally {
      await kv.close();
      await vault.close();
    }
  });
});

describe('npm run keys:rewrap (CLI)', () => {
  const tsx = path.join(ROOT, 'node_modules', '.bin', 'tsx');
  const cli = path.join(ROOT, 'server', 'src', 'cli', 'keys-rewrap.ts');
  let dataDir: string;
  beforeAll(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-rewrap-'));
  });
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  function cliEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'test',
      DATABASE_URL: testDbUrl(),
      JWT_SECRET: randomBytes(48).toString('base64'),
      FLEET_DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      ...extra,
    };
  }

  async function runCli(
    args: string[],
    env: NodeJS.ProcessEnv,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const r = await run(tsx, [cli, ...args], { cwd: ROOT, env, timeout: 60_000 });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  test('when the CLI runs after a configured rotation, then it re-encrypts the tenant rows, prints the summary and exits 0; a second run finds nothing', async () => {
    const tenant = uniqueTenant();
    const before = await buildTestApp({ env: envA });
    await before.composition.services.secrets.put(tenant, 'cli-1', 'one');
    await before.composition.services.secrets.put(tenant, 'cli-2', 'two');
    await before.close();

    const env = cliEnv(envB);
    const dry = await runCli(['--dry-run', '--tenant', tenant], env);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`dry run: 2 row(s) would be re-encrypted under ${environmentKeyVersion(keyB)}`);
    expect((await rowsOf(tenant)).every((r) => r.key_version === environmentKeyVersion(keyA))).toBe(true);

    const res = await runCli(['--tenant', tenant], env);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(
      `master key: env:FLEET_ENCRYPTION_KEY version ${environmentKeyVersion(keyB)} (environment)`,
    );
    expect(res.stdout).toContain(`re-encrypted 2 of 2 row(s) under ${environmentKeyVersion(keyB)}; 0 failed`);
    expect((await rowsOf(tenant)).map((r) => r.key_version)).toEqual([
      environmentKeyVersion(keyB),
      environmentKeyVersion(keyB),
    ]);
    expect(await rewrapAudit(tenant)).toHaveLength(1);
    for (const k of [keyA, keyB]) expect(res.stdout + res.stderr).not.toContain(k.toString('base64'));

    const again = await runCli(['--tenant', tenant], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('re-encrypted 0 of 0 row(s)');
  }, 90_000);

  test('when a row cannot be decrypted, then the CLI lists it and exits 1', async () => {
    const tenant = uniqueTenant();
    const before = await buildTestApp({ env: envA });
    await before.composition.services.secrets.put(tenant, 'orphan', 'encrypted under A');
    await before.close();
    // B only: key A is gone from the configuration. The dry run already says so (and exits 1).
    const dry = await runCli(
      ['--dry-run', '--tenant', tenant],
      cliEnv({ FLEET_ENCRYPTION_KEY: keyB.toString('base64') }),
    );
    expect(dry.code).toBe(1);
    expect(dry.stdout).toContain('dry run: 1 row(s) would be re-encrypted');
    expect(dry.stdout).toMatch(
      new RegExp(`NO KEY for version ${environmentKeyVersion(keyA)}: its 1 row\\(s\\) would fail`),
    );
    const res = await runCli(['--tenant', tenant], cliEnv({ FLEET_ENCRYPTION_KEY: keyB.toString('base64') }));
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(
      /FAILED tenant=\S+ id=[0-9a-f-]{36} name=orphan version=env-[0-9a-f]{16}: decryption failed \(unknown-key-version\)/,
    );
    expect((await rowsOf(tenant))[0]?.key_version).toBe(environmentKeyVersion(keyA));
  }, 90_000);

  test('when the CLI gets --help, bad or unknown arguments, then it prints usage (exit 0) or refuses (exit 2)', async () => {
    const env = cliEnv(envA);
    const help = await runCli(['--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: npm run keys:rewrap');
    for (const args of [
      ['--batch-size', 'ten'],
      ['--batch-size', '0'],
      ['--frobnicate'],
      ['--tenant', "x'; DROP TABLE encrypted_secrets;--"],
      ['positional'],
      ['--tenant', 'a', '--tenant', 'b'],
    ]) {
      const r = await runCli(args, env);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toContain('keys:rewrap');
    }
  }, 90_000);
});

test('when the AAD helper is used, then it names table, tenant and name separated by NUL', () => {
  expect(secretAad('t1', 'n1').toString()).toBe('fleet:encrypted_secrets:v1\u0000t1\u0000n1');
});
