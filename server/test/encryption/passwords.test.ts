/** bcrypt with cost >= 12 and HMAC-SHA256 pre-hashing so nothing is ever silently truncated. */
import { randomBytes } from 'node:crypto';
import bcrypt from 'bcrypt';
import { loadConfig } from '../../src/config';
import {
  createEncryptionService,
  createPasswordHasher,
  MAX_PASSWORD_BYTES,
  PasswordPolicyError,
  prehashPassword,
  staticKeyProvider,
} from '../../src/services/encryption';
import { testEnv } from '../helpers/env';

const provider = staticKeyProvider({ k: randomBytes(32) }, 'k');
const service = createEncryptionService({ keyProvider: provider });

describe('password hashing', () => {
  test('when a password is hashed, then it is a bcrypt $2b$ hash at cost 12 that verifies, and a wrong password does not', async () => {
    const hash = await service.hashPassword('correct horse battery staple');
    expect(hash).toMatch(/^\$2b\$12\$[./A-Za-z0-9]{53}$/);
    expect(bcrypt.getRounds(hash)).toBe(12);
    expect(await service.verifyPassword('correct horse battery staple', hash)).toBe(true);
    expect(await service.verifyPassword('correct horse battery stapl', hash)).toBe(false);
    expect(service.passwordNeedsRehash(hash)).toBe(false);
  });

  test('when BCRYPT_COST is 13, then hashes use cost 13 and cost-12 hashes are flagged for re-hashing', async () => {
    const loaded = loadConfig(testEnv({ BCRYPT_COST: '13' }));
    const svc13 = createEncryptionService({ keyProvider: provider, bcryptCost: loaded.config?.bcryptCost });
    const hash = await svc13.hashPassword('pw-13');
    expect(bcrypt.getRounds(hash)).toBe(13);
    const old = await service.hashPassword('pw-12');
    expect(svc13.passwordNeedsRehash(old)).toBe(true);
    expect(await svc13.verifyPassword('pw-12', old)).toBe(true);
  });

  test('when a cost below 12 is configured, then it is refused (configurable upwards only)', () => {
    expect(() => createEncryptionService({ keyProvider: provider, bcryptCost: 11 })).toThrow(RangeError);
    expect(() => createPasswordHasher({ cost: 4 })).toThrow(/at least|from 12/);
    expect(() => createPasswordHasher({ cost: 12.5 })).toThrow(RangeError);
    const loaded = loadConfig(testEnv({ BCRYPT_COST: '10' }));
    expect(loaded.config).toBeNull();
    expect(loaded.errors.map((e) => e.variable)).toContain('BCRYPT_COST');
  });

  test('when two passwords share their first 72 bytes, then they do not verify against each other (plain bcrypt would truncate)', async () => {
    const prefix = 'p'.repeat(72);
    const a = `${prefix}-first`;
    const b = `${prefix}-second`;
    const hash = await service.hashPassword(a);
    expect(await service.verifyPassword(a, hash)).toBe(true);
    expect(await service.verifyPassword(b, hash)).toBe(false);
    expect(await service.verifyPassword(prefix, hash)).toBe(false);
    // the hazard being guarded against:
    expect(await bcrypt.compare(b, await bcrypt.hash(a, 4))).toBe(true);
  });

  test('when a long multi-byte passphrase or one with NUL bytes is hashed, then all of it counts', async () => {
    const unicode = '鍵'.repeat(40); // 120 bytes of UTF-8
    const h1 = await service.hashPassword(unicode);
    expect(await service.verifyPassword(unicode, h1)).toBe(true);
    expect(await service.verifyPassword('鍵'.repeat(39) + '錠', h1)).toBe(false);
    const nul = 'abc\u0000def';
    const h2 = await service.hashPassword(nul);
    expect(await service.verifyPassword(nul, h2)).toBe(true);
    expect(await service.verifyPassword('abc\u0000xyz', h2)).toBe(false);
    expect(await service.verifyPassword('abc', h2)).toBe(false);
  });

  test('when the same text is typed in composed or decomposed Unicode form, then it verifies (NFKC)', async () => {
    const composed = 'caf\u00e9-Passw0rd';
    const decomposed = 'cafe\u0301-Passw0rd';
    const hash = await service.hashPassword(composed);
    expect(await service.verifyPassword(decomposed, hash)).toBe(true);
  });

  test('when the pre-hash is inspected, then it is 44 base64 characters for any input length', () => {
    expect(prehashPassword('x')).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(prehashPassword('y'.repeat(MAX_PASSWORD_BYTES))).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  });

  test('when a password is empty, too long, not well-formed or not a string, then hashing refuses it and verifying returns false', async () => {
    const hash = await service.hashPassword('valid');
    for (const bad of ['', 'z'.repeat(MAX_PASSWORD_BYTES + 1), 'a\uD800b', 42, null, undefined]) {
      await expect(service.hashPassword(bad as string)).rejects.toBeInstanceOf(PasswordPolicyError);
      await expect(service.verifyPassword(bad as string, hash)).resolves.toBe(false);
    }
  });

  test('when the stored hash is malformed, then verification returns false without throwing', async () => {
    for (const bad of ['', 'not-a-hash', '$2b$12$short', '$1$md5$xxxxxxxx', null, 42]) {
      await expect(service.verifyPassword('valid', bad as string)).resolves.toBe(false);
      expect(service.passwordNeedsRehash(bad as string)).toBe(true);
    }
  });
});
