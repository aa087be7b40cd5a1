/**
 * The checkpoint signing key from Key Vault (a local vault speaking the REST API, driven by
 * the real SDK) and its rotation; configuration of the checkpoint settings.
 */
import { generateKeyPairSync } from 'node:crypto';
import { keyVaultCheckpointKey } from '../../src/services/audit/checkpoints';
import { loadConfig } from '../../src/config';
import { ManualClock } from '../../src/lib/clock';
import { parseVerifierKey, verifyCheckpointNote } from '../../src/services/audit/note-verify';
import { checkpointBody } from '../../src/services/audit/signed-note';
import { startFakeKeyVault, type FakeKeyVault } from '../encryption/helpers/fake-key-vault';
import { testEnv } from '../helpers/env';

const pkcs8 = () =>
  generateKeyPairSync('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');
const ROOT = Buffer.alloc(32, 7);

let vault: FakeKeyVault;
beforeAll(async () => {
  vault = await startFakeKeyVault();
});
afterAll(async () => {
  await vault.close();
});

describe('checkpoint key in Key Vault', () => {
  it('when the secret holds an Ed25519 key, then it signs; a new version takes over after the cache TTL and the old key still verifies old notes', async () => {
    const name = `fleet-checkpoint-key-${process.pid}`;
    vault.put(name, pkcs8());
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const src = keyVaultCheckpointKey({
      vaultUrl: vault.url,
      secretName: name,
      logName: 'prod',
      credential: vault.credential,
      clientOptions: vault.clientOptions,
      ttlMs: 60_000,
      clock,
      timeoutMs: 5000,
    });
    const first = await src.current();
    expect(first.keyName).toBe('fleet-security-api/prod');
    const oldNote = first.signBody(checkpointBody('fleet-security-api/prod/acme', 5, ROOT));
    vault.put(name, pkcs8()); // rotation: a new version
    expect((await src.current()).verifierKey).toBe(first.verifierKey); // cached
    clock.advance(60_001);
    const second = await src.current();
    expect(second.verifierKey).not.toBe(first.verifierKey);
    const newNote = second.signBody(checkpointBody('fleet-security-api/prod/acme', 6, ROOT));
    const keys = [parseVerifierKey(second.verifierKey), parseVerifierKey(first.verifierKey)];
    expect(verifyCheckpointNote(oldNote, keys).size).toBe(5);
    expect(verifyCheckpointNote(newNote, keys).size).toBe(6);
    expect(() => verifyCheckpointNote(oldNote, [parseVerifierKey(second.verifierKey)])).toThrow(
      /no signature by a known key/,
    );
  });

  it('when the vault is unreachable after a key was loaded, then the cached key keeps signing; with none loaded it fails without the secret in the message', async () => {
    const name = `fleet-checkpoint-key2-${process.pid}`;
    vault.put(name, pkcs8());
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const src = keyVaultCheckpointKey({
      vaultUrl: vault.url,
      secretName: name,
      logName: 'prod',
      credential: vault.credential,
      clientOptions: vault.clientOptions,
      ttlMs: 1000,
      clock,
      timeoutMs: 2000,
    });
    const k = await src.current();
    vault.outage = 'unavailable';
    clock.advance(5000);
    expect((await src.current()).verifierKey).toBe(k.verifierKey);
    const fresh = keyVaultCheckpointKey({
      vaultUrl: vault.url,
      secretName: name,
      logName: 'prod',
      credential: vault.credential,
      clientOptions: vault.clientOptions,
      ttlMs: 1000,
      clock,
      timeoutMs: 2000,
    });
    await expect(fresh.current()).rejects.toThrow(/could not be read from Key Vault/);
    vault.outage = null;
  });

  it('when the secret is not an Ed25519 PKCS#8 key, then it is refused', async () => {
    const name = `fleet-checkpoint-key3-${process.pid}`;
    vault.put(name, 'bm90IGEga2V5');
    const src = keyVaultCheckpointKey({
      vaultUrl: vault.url,
      secretName: name,
      logName: 'prod',
      credential: vault.credential,
      clientOptions: vault.clientOptions,
      ttlMs: 1000,
      clock: new ManualClock(),
      timeoutMs: 2000,
    });
    await expect(src.current()).rejects.toThrow(/could not be read/);
  });
});

describe('checkpoint settings', () => {
  const errorsFor = (env: Record<string, string | undefined>) =>
    (loadConfig(testEnv(env)).errors ?? []).map((e) => e.variable);

  it('when the settings are valid, then they are parsed with their defaults', () => {
    const key = pkcs8();
    const c = loadConfig(testEnv({ AUDIT_CHECKPOINT_SIGNING_KEY: key })).config;
    expect(c?.auditLog).toEqual({
      name: 'default',
      checkpointIntervalMs: 60_000,
      checkpointKeyVaultName: null,
      checkpointSigningKey: key,
      trustedKeys: [],
    });
  });

  it('when a setting is wrong, then start-up names it', () => {
    expect(errorsFor({ AUDIT_CHECKPOINT_SIGNING_KEY: 'bm90IGEga2V5' })).toContain('AUDIT_CHECKPOINT_SIGNING_KEY');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ format: 'der', type: 'pkcs8' })
      .toString('base64');
    expect(errorsFor({ AUDIT_CHECKPOINT_SIGNING_KEY: ec })).toContain('AUDIT_CHECKPOINT_SIGNING_KEY');
    expect(errorsFor({ AUDIT_LOG_NAME: 'has space' })).toContain('AUDIT_LOG_NAME');
    expect(errorsFor({ AUDIT_LOG_NAME: 'a+b' })).toContain('AUDIT_LOG_NAME');
    expect(errorsFor({ AUDIT_CHECKPOINT_INTERVAL: '100ms' })).toContain('AUDIT_CHECKPOINT_INTERVAL');
    expect(errorsFor({ AUDIT_CHECKPOINT_INTERVAL: '2h' })).toContain('AUDIT_CHECKPOINT_INTERVAL');
    expect(errorsFor({ AZURE_KEYVAULT_CHECKPOINT_KEY_NAME: 'cp-key' })).toContain('AZURE_KEYVAULT_CHECKPOINT_KEY_NAME');
    expect(errorsFor({ AUDIT_CHECKPOINT_TRUSTED_KEYS: 'not-a-key' })).toContain('AUDIT_CHECKPOINT_TRUSTED_KEYS');
  });

  it('when an error is reported, then the key itself is not in it', () => {
    const r = loadConfig(testEnv({ AUDIT_CHECKPOINT_SIGNING_KEY: 'c2VjcmV0LXZhbHVlLTEyMw==' }));
    expect(JSON.stringify(r.errors)).not.toContain('c2VjcmV0LXZhbHVlLTEyMw');
  });
});
