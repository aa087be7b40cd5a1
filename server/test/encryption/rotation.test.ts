/** Rotation keeps old data decryptable and puts new data under the new version (static and environment keys). */
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config';
import {
  createEncryptionService,
  createMasterKeyProviderFromConfig,
  DecryptionError,
  environmentKeyProvider,
  environmentKeyVersion,
  RotationNotSupportedError,
  staticKeyProvider,
} from '../../src/services/encryption';
import { ManualClock } from '../../src/lib/clock';
import { testEnv } from '../helpers/env';
import { memoryLogger } from './helpers/env';

describe('key rotation with static keys', () => {
  test('when a new version becomes current, then old data still decrypts and new data is under the new version', async () => {
    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    const before = createEncryptionService({ keyProvider: staticKeyProvider({ '1': k1 }, '1') });
    const oldData = await before.encrypt('old', { aad: 'r1' });
    const oldText = await before.encryptToString('old text');
    const after = createEncryptionService({ keyProvider: staticKeyProvider({ '1': k1, '2': k2 }, '2') });
    expect(await after.decrypt(oldData, { aad: 'r1' })).toBe('old');
    expect(await after.decryptFromString(oldText)).toBe('old text');
    const newData = await after.encrypt('new');
    expect(newData.keyVersion).toBe('2');
    expect(oldData.keyVersion).toBe('1');
    // once version 1 is retired, its data no longer decrypts (generic failure)
    const retired = createEncryptionService({ keyProvider: staticKeyProvider({ '2': k2 }, '2') });
    await expect(retired.decrypt(oldData, { aad: 'r1' })).rejects.toBeInstanceOf(DecryptionError);
    expect(await retired.decrypt(newData)).toBe('new');
  });

  test('when a static provider is asked to rotate, then it explains that a new provider is needed', async () => {
    const svc = createEncryptionService({ keyProvider: staticKeyProvider({ a: randomBytes(32) }, 'a') });
    await expect(svc.rotateKey()).rejects.toBeInstanceOf(RotationNotSupportedError);
  });

  test('when a static provider is built from bad input, then it refuses (wrong key length, unknown current version, bad version name)', () => {
    expect(() => staticKeyProvider({ a: randomBytes(16) }, 'a')).toThrow(TypeError);
    expect(() => staticKeyProvider({ a: randomBytes(32) }, 'b')).toThrow(/currentVersion/);
    expect(() => staticKeyProvider({ 'a:b': randomBytes(32) }, 'a:b')).toThrow(TypeError);
  });
});

describe('key rotation with environment keys (rotation by configuration)', () => {
  const { logger } = memoryLogger();
  function serviceFor(env: Record<string, string>) {
    const loaded = loadConfig(testEnv(env));
    if (!loaded.config) throw new Error(JSON.stringify(loaded.errors));
    const provider = createMasterKeyProviderFromConfig({ config: loaded.config, logger, clock: new ManualClock() });
    return createEncryptionService({ keyProvider: provider });
  }

  test('when FLEET_ENCRYPTION_KEY is replaced and the old key moves to FLEET_ENCRYPTION_PREVIOUS_KEYS under any name, then old data decrypts and new data uses the new key', async () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const before = serviceFor({ FLEET_ENCRYPTION_KEY: oldKey.toString('base64') });
    const data = await before.encrypt('configured rotation');
    expect(data.keyVersion).toBe(environmentKeyVersion(oldKey));
    expect(data.keyVersion).toMatch(/^env-[0-9a-f]{16}$/);

    const after = serviceFor({
      FLEET_ENCRYPTION_KEY: newKey.toString('base64'),
      FLEET_ENCRYPTION_PREVIOUS_KEYS: `retired-2029:${oldKey.toString('base64')}`,
    });
    expect(await after.decrypt(data)).toBe('configured rotation');
    const fresh = await after.encrypt('new');
    expect(fresh.keyVersion).toBe(environmentKeyVersion(newKey));
    // by the configured name too
    expect(await after.decrypt({ ...(await before.encrypt('x')), keyVersion: 'retired-2029' })).toBe('x');
  });

  test('when the new key is first added as a previous key (phase 1 of a rolling rotation), then instances still on the old key can decrypt data written by updated ones', async () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const phase1 = serviceFor({
      FLEET_ENCRYPTION_KEY: oldKey.toString('base64'),
      FLEET_ENCRYPTION_PREVIOUS_KEYS: `next:${newKey.toString('base64')}`,
    });
    const phase2 = serviceFor({
      FLEET_ENCRYPTION_KEY: newKey.toString('base64'),
      FLEET_ENCRYPTION_PREVIOUS_KEYS: `old:${oldKey.toString('base64')}`,
    });
    const fromPhase2 = await phase2.encrypt('written by an updated instance');
    expect(await phase1.decrypt(fromPhase2)).toBe('written by an updated instance');
    expect(await phase2.decrypt(await phase1.encrypt('written by an old instance'))).toBe('written by an old instance');
  });

  test('when rotation is requested with the environment source, then the error explains rotation by configuration', async () => {
    const svc = serviceFor({ FLEET_ENCRYPTION_KEY: randomBytes(32).toString('base64') });
    const err = await svc.rotateKey().catch((e: Error) => e);
    expect(err).toBeInstanceOf(RotationNotSupportedError);
    expect((err as Error).message).toContain('FLEET_ENCRYPTION_KEY');
    expect((err as Error).message).toContain('FLEET_ENCRYPTION_PREVIOUS_KEYS');
    expect((err as Error).message).toContain('keys:rewrap');
  });

  test('when only previous keys are configured, then old data decrypts but nothing new can be encrypted', async () => {
    const oldKey = randomBytes(32);
    const writer = createEncryptionService({ keyProvider: environmentKeyProvider({ currentKey: oldKey }) });
    const data = await writer.encrypt('archived');
    const readOnly = createEncryptionService({
      keyProvider: environmentKeyProvider({ currentKey: null, previousKeys: { old: oldKey } }),
    });
    expect(await readOnly.decrypt(data)).toBe('archived');
    await expect(readOnly.encrypt('new')).rejects.toThrow(/FLEET_ENCRYPTION_KEY is not set/);
  });
});
