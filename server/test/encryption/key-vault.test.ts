/**
 * The Key Vault provider through the real @azure/keyvault-secrets SDK against a local HTTPS
 * server speaking the Key Vault REST API (challenge flow, TLS with a self-signed CA).
 */
import https from 'node:https';
import type pg from 'pg';
import { ManualClock } from '../../src/lib/clock';
import type { Pool } from '../../src/db/pool';
import { createAuditService } from '../../src/services/audit/service';
import {
  auditKeyEvents,
  createCachedKeyProvider,
  createEncryptionService,
  createKeyVaultSource,
  DecryptionError,
  environmentKeyProvider,
  environmentKeyVersion,
  KeyUnavailableError,
  SYSTEM_TENANT,
  type CachedKeyProvider,
  type KeyEventSink,
} from '../../src/services/encryption';
import { ownerPool } from '../helpers/app';
import { appPool, key32, memoryLogger } from './helpers/env';
import {
  CHALLENGE_RESOURCE,
  newVaultKey,
  startFakeKeyVault,
  VAULT_TENANT_ID,
  type FakeKeyVault,
} from './helpers/fake-key-vault';

const TTL_MS = 60_000;
const SECRET = 'fleet-master-key';

let vault: FakeKeyVault;
let pool: Pool;
let owner: pg.Pool;
const { logger, lines } = memoryLogger();

beforeAll(async () => {
  vault = await startFakeKeyVault();
  pool = appPool(logger);
  owner = ownerPool();
});
afterAll(async () => {
  await vault.close();
  await pool.end();
  await owner.end();
});

let secretCounter = 0;
/** A fresh secret name per test, holding one version. */
function freshSecret(): { name: string; version: string; material: Buffer } {
  secretCounter += 1;
  const name = `${SECRET}-${process.pid}-${Date.now().toString(36)}-${secretCounter}`;
  const k = newVaultKey();
  return { name, version: vault.put(name, k.value), material: k.material };
}

function build(opts: {
  name: string;
  fallback?: Buffer | null;
  onEvent?: KeyEventSink;
  clock?: ManualClock;
  maxStaleMs?: number;
  retryIntervalMs?: number;
  clientOptions?: object;
}) {
  const clock = opts.clock ?? new ManualClock(Date.UTC(2030, 0, 1));
  const source = createKeyVaultSource({
    vaultUrl: vault.url,
    secretName: opts.name,
    credential: vault.credential,
    clientOptions: { ...vault.clientOptions, ...opts.clientOptions },
    timeoutMs: 5000,
  });
  const provider: CachedKeyProvider = createCachedKeyProvider({
    source,
    fallback: opts.fallback ? environmentKeyProvider({ currentKey: opts.fallback }) : null,
    ttlMs: TTL_MS,
    maxStaleMs: opts.maxStaleMs ?? 10 * TTL_MS,
    retryIntervalMs: opts.retryIntervalMs ?? 5_000,
    clock,
    logger,
    onEvent: opts.onEvent,
  });
  return { clock, provider, service: createEncryptionService({ keyProvider: provider }) };
}

async function systemAuditRows(
  action: string,
  keyId: string,
): Promise<Array<{ severity: string; result: string; error_message: string; after: Record<string, unknown> }>> {
  const { rows } = await owner.query(
    'SELECT severity, result, error_message, after FROM audit_logs WHERE tenant_id = $1 AND action = $2 AND resource_id = $3 ORDER BY id',
    [SYSTEM_TENANT, action, keyId],
  );
  return rows;
}

describe('Key Vault master key through the real SDK', () => {
  test('when the key is first read, then the SDK answers the 401 challenge, asks the credential for the resource scope and tenant, and gets the vault version', async () => {
    const s = freshSecret();
    const { provider } = build({ name: s.name });
    vault.resetCounts();
    const callsBefore = vault.credential.calls.length;
    const key = await provider.getCurrentKey();
    expect(key.version).toBe(s.version);
    expect(key.source).toBe('azure-key-vault');
    expect(key.keyId).toBe(`${vault.url}/secrets/${s.name}`);
    expect(key.material.equals(s.material)).toBe(true);
    // first request unauthenticated (challenge), then the authorized retry
    const latest = vault.requests.filter((r) => r.kind === 'get-latest');
    expect(latest.length).toBeGreaterThanOrEqual(1);
    expect(latest.some((r) => r.authorized)).toBe(true);
    const newCalls = vault.credential.calls.slice(callsBefore);
    expect(newCalls.length).toBeGreaterThan(0);
    expect(newCalls[0]?.scopes).toEqual([`${CHALLENGE_RESOURCE}/.default`]);
    expect(newCalls[0]?.tenantId).toBe(VAULT_TENANT_ID);
  });

  test('when a client has never talked to the vault, then its first request is unauthenticated and answered 401 with the Bearer challenge', async () => {
    const s = freshSecret();
    const { provider } = build({ name: s.name });
    vault.resetCounts();
    await provider.getCurrentKey();
    expect(vault.requests[0]?.authorized).toBe(false);
    expect(vault.requests[1]?.authorized).toBe(true);
    expect(vault.credential.calls.at(-1)).toEqual({
      scopes: [`${CHALLENGE_RESOURCE}/.default`],
      tenantId: VAULT_TENANT_ID,
    });
  });

  test('when the vault certificate is not trusted, then no key is obtained (TLS is verified)', async () => {
    const s = freshSecret();
    const untrusting = new https.Agent({ keepAlive: false });
    const base = untrusting.createConnection.bind(untrusting) as (o: object, cb?: unknown) => unknown;
    (untrusting as unknown as { createConnection: unknown }).createConnection = (o: object, cb?: unknown) =>
      base({ ...o, host: '127.0.0.1', servername: 'vault.localhost' }, cb);
    const { provider } = build({ name: s.name, clientOptions: { agent: untrusting } });
    await expect(provider.getCurrentKey()).rejects.toBeInstanceOf(KeyUnavailableError);
    untrusting.destroy();
  });

  test('when the key is used many times within the TTL, then the vault is read once; after the TTL it is read again', async () => {
    const s = freshSecret();
    const { service, clock } = build({ name: s.name });
    vault.resetCounts();
    for (let i = 0; i < 25; i++) await service.encrypt(`message ${i}`);
    expect(vault.count('get-latest')).toBe(1);
    clock.advance(TTL_MS - 1);
    await service.encrypt('still cached');
    expect(vault.count('get-latest')).toBe(1);
    clock.advance(2);
    await service.encrypt('refetched');
    expect(vault.count('get-latest')).toBe(2);
  });

  test('when a new version appears in the vault, then it becomes current after the TTL and the old version still decrypts', async () => {
    const s = freshSecret();
    const { service, clock } = build({ name: s.name });
    const old = await service.encrypt('before rotation');
    const next = newVaultKey();
    const newVersion = vault.put(s.name, next.value);
    expect((await service.encrypt('x')).keyVersion).toBe(s.version); // cached
    clock.advance(TTL_MS + 1);
    const fresh = await service.encrypt('after rotation');
    expect(fresh.keyVersion).toBe(newVersion);
    expect(await service.decrypt(old)).toBe('before rotation');
    expect(await service.decrypt(fresh)).toBe('after rotation');
  });

  test('when 50 callers need the key at once, then they share a single fetch', async () => {
    const s = freshSecret();
    const { service } = build({ name: s.name });
    vault.resetCounts();
    vault.delayMs = 150;
    try {
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => service.encrypt(`concurrent ${i}`)));
      expect(new Set(results.map((r) => r.keyVersion))).toEqual(new Set([s.version]));
      expect(vault.count('get-latest')).toBe(1);
    } finally {
      vault.delayMs = 0;
    }
  });

  test('when data names an older version, then that version is fetched once by version and cached', async () => {
    const s = freshSecret();
    const writer = build({ name: s.name });
    const oldData = await writer.service.encrypt('old data');
    vault.put(s.name, newVaultKey().value);
    const reader = build({ name: s.name }); // a fresh instance whose current key is the new version
    await reader.service.encrypt('warm up');
    vault.resetCounts();
    vault.delayMs = 50;
    try {
      const plain = await Promise.all(Array.from({ length: 10 }, () => reader.service.decrypt(oldData)));
      expect(plain).toEqual(Array(10).fill('old data'));
    } finally {
      vault.delayMs = 0;
    }
    expect(vault.count('get-version')).toBe(1);
    expect(vault.requests.find((r) => r.kind === 'get-version')?.path).toBe(`/secrets/${s.name}/${s.version}`);
    await reader.service.decrypt(oldData);
    expect(vault.count('get-version')).toBe(1);
  });

  test('when data names a version the vault does not have, then decryption fails generically and the miss is remembered', async () => {
    const s = freshSecret();
    const { service } = build({ name: s.name });
    const data = await service.encrypt('x');
    const forged = { ...data, keyVersion: 'ab'.repeat(16) };
    vault.resetCounts();
    await expect(service.decrypt(forged)).rejects.toThrow(new DecryptionError());
    await expect(service.decrypt(forged)).rejects.toBeInstanceOf(DecryptionError);
    expect(vault.count('get-version')).toBe(1);
    // an impossible version never reaches the vault
    await expect(service.decrypt({ ...data, keyVersion: 'not-a-vault-version' })).rejects.toBeInstanceOf(
      DecryptionError,
    );
    expect(vault.count('get-version')).toBe(1);
  });

  test('when a version is disabled in the vault, then data under it no longer decrypts once its cache entry expires', async () => {
    const s = freshSecret();
    const { service, clock } = build({ name: s.name });
    const data = await service.encrypt('soon unreadable');
    vault.put(s.name, newVaultKey().value);
    vault.disable(s.name, s.version);
    clock.advance(TTL_MS + 1);
    await service.encrypt('moves to the new current version');
    await expect(service.decrypt(data)).rejects.toBeInstanceOf(DecryptionError);
  });

  test('when the vault is down after the key was cached, then the cached key is served, the failure is logged and audited once (high)', async () => {
    const s = freshSecret();
    const { service, clock, provider } = build({
      name: s.name,
      onEvent: auditKeyEvents(createAuditService({ pool, logger })),
    });
    const before = await service.encrypt('before outage');
    const logStart = lines.length;
    vault.outage = 'unavailable';
    try {
      clock.advance(TTL_MS + 1);
      const during = await service.encrypt('during outage');
      expect(during.keyVersion).toBe(s.version);
      clock.advance(6_000); // past the retry interval: tries again, still failing
      expect(await service.decrypt(await service.encrypt('still'))).toBe('still');
      expect(await service.decrypt(before)).toBe('before outage');
      expect(provider.status().degraded).toBe(true);
    } finally {
      vault.outage = null;
    }
    const rows = await systemAuditRows('key.master.refresh_failed', `${vault.url}/secrets/${s.name}`);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      severity: 'high',
      result: 'failure',
      after: { servedVersion: s.version, servedSource: 'azure-key-vault' },
    });
    expect(rows[0]?.error_message).toMatch(/503|ServiceUnavailable|unavailable/i);
    const logged = lines.slice(logStart).join('\n');
    expect(logged).toContain('master key refresh failed; serving the cached key');
    // recovery
    clock.advance(6_000);
    await service.encrypt('after');
    expect(provider.status().degraded).toBe(false);
  });

  test('when the vault stays down past the hard limit and there is no fallback, then encryption fails with KeyUnavailableError', async () => {
    const s = freshSecret();
    const { service, clock } = build({ name: s.name, maxStaleMs: 3 * TTL_MS });
    await service.encrypt('cached');
    vault.outage = 'reset';
    try {
      clock.advance(2 * TTL_MS);
      expect((await service.encrypt('stale but allowed')).keyVersion).toBe(s.version);
      clock.advance(TTL_MS + 1);
      await expect(service.encrypt('too stale')).rejects.toBeInstanceOf(KeyUnavailableError);
    } finally {
      vault.outage = null;
    }
  });

  test('when the vault is unreachable and FLEET_ENCRYPTION_KEY is configured, then the fallback key is used and a high-severity key.master.fallback row is written', async () => {
    const s = freshSecret();
    const fallback = key32();
    const { service, clock, provider } = build({
      name: s.name,
      fallback,
      onEvent: auditKeyEvents(createAuditService({ pool, logger })),
    });
    vault.outage = 'unavailable';
    let data;
    try {
      data = await service.encrypt('written during the outage');
      expect(data.keyVersion).toBe(environmentKeyVersion(fallback));
      expect(provider.status()).toMatchObject({ source: 'environment', degraded: true });
      clock.advance(6_000);
      await service.encrypt('still on fallback'); // retried, still down: no second event
    } finally {
      vault.outage = null;
    }
    const rows = await systemAuditRows('key.master.fallback', `${vault.url}/secrets/${s.name}`);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      severity: 'high',
      result: 'failure',
      after: { servedVersion: environmentKeyVersion(fallback), servedSource: 'environment' },
    });
    // the vault answers again: new data goes back under the vault version; fallback data still decrypts
    clock.advance(6_000);
    expect((await service.encrypt('back')).keyVersion).toBe(s.version);
    expect(await service.decrypt(data)).toBe('written during the outage');
    expect(provider.status().degraded).toBe(false);
  });

  test('when the fallback cannot be audited, then the fallback key is not used (fail closed)', async () => {
    const s = freshSecret();
    const failingSink: KeyEventSink = async () => {
      throw new Error('audit database unavailable');
    };
    const { service } = build({ name: s.name, fallback: key32(), onEvent: failingSink });
    vault.outage = 'unavailable';
    try {
      await expect(service.encrypt('must not be written under an unaudited fallback')).rejects.toBeInstanceOf(
        KeyUnavailableError,
      );
    } finally {
      vault.outage = null;
    }
  });

  test('when rotateKey() runs, then the SDK writes a new secret version that becomes current, and old data still decrypts', async () => {
    const s = freshSecret();
    const { service } = build({ name: s.name });
    const old = await service.encrypt('old');
    vault.resetCounts();
    const info = await service.rotateKey();
    expect(vault.count('set')).toBe(1);
    expect(info.version).not.toBe(s.version);
    expect(info.source).toBe('azure-key-vault');
    const stored = vault.versionsOf(s.name);
    expect(stored.map((v) => v.version)).toEqual([s.version, info.version]);
    expect(Buffer.from(stored[1]?.value ?? '', 'base64')).toHaveLength(32);
    expect(stored[1]?.contentType).toBe('application/octet-stream; encoding=base64');
    const fresh = await service.encrypt('new');
    expect(fresh.keyVersion).toBe(info.version);
    expect(await service.decrypt(old)).toBe('old');
    expect(await service.decrypt(fresh)).toBe('new');
    expect(vault.count('get-latest')).toBe(0); // the rotated key is cached at once
  });

  test('when versions are listed, then every page of the vault listing is read and the current version is marked', async () => {
    const s = freshSecret();
    for (let i = 0; i < 29; i++) vault.put(s.name, newVaultKey().value);
    const { service } = build({ name: s.name });
    const current = await service.getMasterKey();
    vault.resetCounts();
    const versions = await service.listKeyVersions();
    expect(versions).toHaveLength(30);
    expect(vault.count('list')).toBe(2); // 25 + 5, following nextLink
    expect(versions.filter((v) => v.current).map((v) => v.version)).toEqual([current.version]);
  });

  test('when the vault holds a value that is not base64 of 32 bytes, then no key is used and the value is not echoed', async () => {
    const name = `${SECRET}-bad-${Date.now().toString(36)}`;
    const badValue = 'this-is-not-a-key-VALUE-1234567890';
    vault.put(name, badValue);
    const { provider } = build({ name });
    const err = await provider.getCurrentKey().then(
      () => null,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(KeyUnavailableError);
    expect(err?.message).toContain('not base64 of exactly 32 bytes');
    expect(err?.message).not.toContain(badValue);
  });
});
