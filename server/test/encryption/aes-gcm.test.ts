/**
 * AES-256-GCM through the encryption service: round trips, interop with plain node:crypto,
 * IV uniqueness, and every kind of tampering refused with the one generic error.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import {
  createEncryptionService,
  DecryptionError,
  HKDF_INFO_ENCRYPTION,
  openAesGcm,
  parseEncryptedString,
  staticKeyProvider,
  type EncryptedData,
} from '../../src/services/encryption';

const K1 = randomBytes(32);
const K2 = randomBytes(32);
const service = createEncryptionService({ keyProvider: staticKeyProvider({ 'v-1': K1, 'v-2': K2 }, 'v-2') });
const encKey = (master: Buffer) => Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), HKDF_INFO_ENCRYPTION, 32));

function flipBit(b64: string, bit: number, encoding: 'base64' | 'base64url' = 'base64'): string {
  const buf = Buffer.from(b64, encoding);
  buf[bit >> 3] = (buf[bit >> 3] as number) ^ (1 << (bit & 7));
  return buf.toString(encoding);
}

async function expectGenericFailure(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DecryptionError);
  expect((err as Error).message).toBe('decryption operation failed');
  expect((err as DecryptionError).code).toBe('ERR_DECRYPTION_FAILED');
}

describe('AES-256-GCM round trip', () => {
  test.each([
    ['an empty string', ''],
    ['ASCII', 'fleet vehicle 42 telemetry'],
    ['odd Unicode (combining marks, RTL, emoji, CJK)', 'Ça\u0301 \u202Eabc\u202C 🚚🔐 車両 \u{1F468}\u200D\u{1F469}'],
    ['an injection string', "'; DROP TABLE users; -- <script>alert(1)</script> ${7*7}"],
  ])('when %s is encrypted, then decrypt returns it unchanged', async (_name, text) => {
    const data = await service.encrypt(text);
    expect(await service.decrypt(data)).toBe(text);
  });

  test('when bytes of every value are encrypted, then decryptToBuffer returns the same bytes', async () => {
    const bytes = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
    const data = await service.encrypt(bytes);
    expect((await service.decryptToBuffer(data)).equals(bytes)).toBe(true);
  });

  test('when 1 MiB is encrypted, then it round-trips and the ciphertext is exactly as long as the plaintext', async () => {
    const big = randomBytes(1 << 20);
    const data = await service.encrypt(big);
    expect(Buffer.from(data.ciphertext, 'base64')).toHaveLength(1 << 20);
    expect((await service.decryptToBuffer(data)).equals(big)).toBe(true);
  });

  test('when data is encrypted, then the envelope has the contract shape: v 1, current key version, 12-byte IV, 16-byte tag', async () => {
    const data = await service.encrypt('shape');
    expect(Object.keys(data).sort()).toEqual(['authTag', 'ciphertext', 'iv', 'keyVersion', 'v']);
    expect(data.v).toBe(1);
    expect(data.keyVersion).toBe('v-2');
    expect(Buffer.from(data.iv, 'base64')).toHaveLength(12);
    expect(Buffer.from(data.authTag, 'base64')).toHaveLength(16);
    expect(Buffer.from(data.ciphertext, 'base64').toString('utf8')).not.toContain('shape');
  });

  test('when the same plaintext is encrypted twice, then IV, ciphertext and tag differ', async () => {
    const a = await service.encrypt('same');
    const b = await service.encrypt('same');
    expect(a.iv).not.toBe(b.iv);
    expect(a.ciphertext).not.toBe(b.ciphertext);
    expect(a.authTag).not.toBe(b.authTag);
  });

  test('when 50,000 messages are encrypted, then no IV repeats and every IV is 12 bytes', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50_000; i++) {
      const d = await service.encryptBinary('x');
      expect(d.iv).toHaveLength(12);
      seen.add(d.iv.toString('hex'));
    }
    expect(seen.size).toBe(50_000);
  });

  test('when decrypt() meets a plaintext that is not UTF-8, then it refuses while decryptToBuffer returns the bytes', async () => {
    const data = await service.encrypt(Buffer.from([0xff, 0xfe, 0x00, 0xc3]));
    await expectGenericFailure(service.decrypt(data));
    expect([...(await service.decryptToBuffer(data))]).toEqual([0xff, 0xfe, 0x00, 0xc3]);
  });

  test('when the plaintext is a string with a lone surrogate, or not a string or bytes, then encrypt refuses it instead of altering it', async () => {
    await expect(service.encrypt('abc\uD800def')).rejects.toThrow(TypeError);
    await expect(service.encrypt(42 as unknown as string)).rejects.toThrow(TypeError);
    await expect(service.encrypt({ text: 'x' } as unknown as string)).rejects.toThrow(TypeError);
    await expect(service.encrypt('x', { aad: 7 as unknown as string })).rejects.toThrow(TypeError);
  });
});

describe('interop with plain node:crypto using the documented envelope', () => {
  test('when the service encrypts, then node:crypto decrypts with the HKDF-derived key, the IV, the tag and the AAD', async () => {
    const data = await service.encrypt('from the service', { aad: 'tenant-a:record-7' });
    const d = createDecipheriv('aes-256-gcm', encKey(K2), Buffer.from(data.iv, 'base64'), { authTagLength: 16 });
    d.setAuthTag(Buffer.from(data.authTag, 'base64'));
    d.setAAD(Buffer.from('tenant-a:record-7'));
    const plain = Buffer.concat([d.update(Buffer.from(data.ciphertext, 'base64')), d.final()]).toString('utf8');
    expect(plain).toBe('from the service');
  });

  test('when node:crypto encrypts an envelope by hand, then the service decrypts it (and the text form of it)', async () => {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', encKey(K1), iv, { authTagLength: 16 });
    c.setAAD(Buffer.from('ctx'));
    const ct = Buffer.concat([c.update('from node:crypto', 'utf8'), c.final()]);
    const tag = c.getAuthTag();
    const data: EncryptedData = {
      v: 1,
      keyVersion: 'v-1',
      iv: iv.toString('base64'),
      ciphertext: ct.toString('base64'),
      authTag: tag.toString('base64'),
    };
    expect(await service.decrypt(data, { aad: 'ctx' })).toBe('from node:crypto');
    const text = `v1:v-1:${iv.toString('base64url')}:${ct.toString('base64url')}:${tag.toString('base64url')}`;
    expect(await service.decryptFromString(text, { aad: Buffer.from('ctx') })).toBe('from node:crypto');
  });

  test('when the raw master key is used instead of the derived key, then node:crypto cannot decrypt (the master key is never used directly)', async () => {
    const data = await service.encrypt('derived keys only');
    const d = createDecipheriv('aes-256-gcm', K2, Buffer.from(data.iv, 'base64'), { authTagLength: 16 });
    d.setAuthTag(Buffer.from(data.authTag, 'base64'));
    d.update(Buffer.from(data.ciphertext, 'base64'));
    expect(() => d.final()).toThrow();
  });
});

describe('tampering is refused with one generic error', () => {
  const aad = 'tenant-1:secret-9';
  let data: EncryptedData;
  beforeAll(async () => {
    data = await service.encrypt('sixteen byte msg', { aad });
  });

  test('when any single bit of the ciphertext is flipped, then decryption fails', async () => {
    for (let bit = 0; bit < 16 * 8; bit++) {
      await expectGenericFailure(service.decrypt({ ...data, ciphertext: flipBit(data.ciphertext, bit) }, { aad }));
    }
  });

  test('when any single bit of the IV is flipped, then decryption fails', async () => {
    for (let bit = 0; bit < 12 * 8; bit++) {
      await expectGenericFailure(service.decrypt({ ...data, iv: flipBit(data.iv, bit) }, { aad }));
    }
  });

  test('when any single bit of the tag is flipped, then decryption fails', async () => {
    for (let bit = 0; bit < 16 * 8; bit++) {
      await expectGenericFailure(service.decrypt({ ...data, authTag: flipBit(data.authTag, bit) }, { aad }));
    }
  });

  test.each([12, 8, 4, 0])(
    'when the tag is shortened to %i bytes, then decryption fails in every form (envelope, text, binary, primitive)',
    async (len) => {
      const tag = Buffer.from(data.authTag, 'base64');
      const short = tag.subarray(0, len);
      await expectGenericFailure(service.decrypt({ ...data, authTag: short.toString('base64') }, { aad }));
      const bin = await service.encryptBinary('binary form', { aad });
      await expectGenericFailure(service.decryptBinary({ ...bin, authTag: bin.authTag.subarray(0, len) }, { aad }));
      const text = await service.encryptToString('text form', { aad });
      const parts = text.split(':');
      parts[4] = Buffer.from(parts[4] as string, 'base64url')
        .subarray(0, len)
        .toString('base64url');
      await expectGenericFailure(service.decryptFromString(parts.join(':'), { aad }));
      // the primitive itself checks the length (Node would accept short tags without authTagLength)
      const p = parseEncryptedString(text);
      expect(() => openAesGcm(encKey(K2), p.iv, p.ciphertext, p.authTag.subarray(0, len), Buffer.from(aad))).toThrow(
        DecryptionError,
      );
      expect(openAesGcm(encKey(K2), p.iv, p.ciphertext, p.authTag, Buffer.from(aad)).toString()).toBe('text form');
    },
  );

  test('when the key version is changed to another existing version, to an unknown one or to a malformed one, then decryption fails', async () => {
    await expectGenericFailure(service.decrypt({ ...data, keyVersion: 'v-1' }, { aad }));
    await expectGenericFailure(service.decrypt({ ...data, keyVersion: 'v-3' }, { aad }));
    await expectGenericFailure(service.decrypt({ ...data, keyVersion: 'v-2:x' }, { aad }));
    await expectGenericFailure(service.decrypt({ ...data, keyVersion: '' }, { aad }));
  });

  test('when the AAD is wrong, missing, or added, then decryption fails; the right AAD as bytes works', async () => {
    await expectGenericFailure(service.decrypt(data, { aad: 'tenant-2:secret-9' }));
    await expectGenericFailure(service.decrypt(data));
    const noAad = await service.encrypt('no aad');
    await expectGenericFailure(service.decrypt(noAad, { aad: 'x' }));
    expect(await service.decrypt(data, { aad: Buffer.from(aad) })).toBe('sixteen byte msg');
  });

  test('when the ciphertext is truncated or extended, then decryption fails', async () => {
    const ct = Buffer.from(data.ciphertext, 'base64');
    await expectGenericFailure(
      service.decrypt({ ...data, ciphertext: ct.subarray(0, 15).toString('base64') }, { aad }),
    );
    await expectGenericFailure(
      service.decrypt({ ...data, ciphertext: Buffer.concat([ct, Buffer.from([0])]).toString('base64') }, { aad }),
    );
    await expectGenericFailure(service.decrypt({ ...data, ciphertext: '' }, { aad }));
  });

  test('when decryption fails, then the error carries no plaintext, key or ciphertext detail', async () => {
    const err = await service
      .decrypt({ ...data, ciphertext: flipBit(data.ciphertext, 3) }, { aad })
      .catch((e: Error) => e);
    const dump = JSON.stringify(err) + String(err) + JSON.stringify(Object.getOwnPropertyDescriptors(err));
    expect(dump).not.toContain('sixteen');
    expect(dump).not.toContain(data.ciphertext);
    for (const k of [K1, K2]) expect(dump).not.toContain(k.toString('base64'));
    expect((err as DecryptionError).reason).toBe('authentication-failed');
  });
});

describe('malformed envelopes are refused with the same error', () => {
  let data: EncryptedData;
  beforeAll(async () => {
    data = await service.encrypt('valid');
  });

  test.each<[string, (d: EncryptedData) => unknown]>([
    ['null', () => null],
    ['an array', (d) => [d]],
    ['a string', (d) => JSON.stringify(d)],
    ['v 2', (d) => ({ ...d, v: 2 })],
    ['v "1" as a string', (d) => ({ ...d, v: '1' })],
    ['no keyVersion', (d) => ({ ...d, keyVersion: undefined })],
    ['a 64+ character key version', (d) => ({ ...d, keyVersion: 'v'.repeat(65) })],
    ['a key version with a NUL', (d) => ({ ...d, keyVersion: 'v-2\u0000' })],
    ['a 16-byte IV', (d) => ({ ...d, iv: randomBytes(16).toString('base64') })],
    ['an 8-byte IV', (d) => ({ ...d, iv: randomBytes(8).toString('base64') })],
    ['an IV with a stray character', (d) => ({ ...d, iv: `${d.iv.slice(0, 15)}!` })],
    ['an IV as a number', (d) => ({ ...d, iv: 12 })],
    ['a non-canonical tag encoding', (d) => ({ ...d, authTag: `${d.authTag.slice(0, 21)}B==` })],
    ['a tag without padding', (d) => ({ ...d, authTag: d.authTag.replace(/=+$/, '') })],
    [
      'a 17-byte tag',
      (d) => ({
        ...d,
        authTag: Buffer.concat([Buffer.from(d.authTag, 'base64'), Buffer.from([1])]).toString('base64'),
      }),
    ],
    ['a ciphertext with whitespace', (d) => ({ ...d, ciphertext: ` ${d.ciphertext}` })],
    [
      'a ciphertext with a stray character',
      (d) => ({ ...d, ciphertext: `${d.ciphertext.slice(0, 4)}*${d.ciphertext.slice(5)}` }),
    ],
    ['a ciphertext of the wrong length', (d) => ({ ...d, ciphertext: d.ciphertext.slice(0, -1) })],
    ['a ciphertext as an object', (d) => ({ ...d, ciphertext: { $gt: '' } })],
  ])('when the envelope is %s, then decryption fails generically', async (_name, mutate) => {
    await expectGenericFailure(service.decrypt(mutate(data) as EncryptedData));
  });
});

describe('compact text form', () => {
  test('when text is encrypted to a string, then it has the documented form and round-trips', async () => {
    const text = await service.encryptToString('column value', { aad: 'row-1' });
    expect(text).toMatch(/^v1:v-2:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]*:[A-Za-z0-9_-]{22}$/);
    expect(await service.decryptFromString(text, { aad: 'row-1' })).toBe('column value');
    expect((await service.decryptFromStringToBuffer(text, { aad: 'row-1' })).toString()).toBe('column value');
  });

  test('when the text form and the JSON envelope carry the same bytes, then both decrypt', async () => {
    const text = await service.encryptToString('same bytes');
    const p = parseEncryptedString(text);
    const data: EncryptedData = {
      v: 1,
      keyVersion: p.keyVersion,
      iv: p.iv.toString('base64'),
      ciphertext: p.ciphertext.toString('base64'),
      authTag: p.authTag.toString('base64'),
    };
    expect(await service.decrypt(data)).toBe('same bytes');
  });

  test('when an empty plaintext is encrypted to a string, then the ciphertext field is empty and it round-trips', async () => {
    const text = await service.encryptToString('');
    expect(text.split(':')[3]).toBe('');
    expect(await service.decryptFromString(text)).toBe('');
  });

  test.each<[string, (t: string) => unknown]>([
    ['a wrong prefix', (t) => t.replace(/^v1:/, 'v2:')],
    ['an extra field', (t) => `${t}:x`],
    ['a missing field', (t) => t.split(':').slice(0, 4).join(':')],
    ['padding characters', (t) => t.replace(/:([A-Za-z0-9_-]{22})$/, ':$1==')],
    ['a standard-base64 IV of the wrong length', (t) => t.replace(/^v1:v-2:[A-Za-z0-9_-]{16}:/, 'v1:v-2:AAAA:')],
    [
      'a bit flipped in the ciphertext',
      (t) => {
        const parts = t.split(':');
        parts[3] = flipBit(parts[3] as string, 0, 'base64url');
        return parts.join(':');
      },
    ],
    ['a different key version', (t) => t.replace(/^v1:v-2:/, 'v1:v-1:')],
    ['a number', () => 12345],
    ['surrounding whitespace', (t) => `${t}\n`],
  ])('when the text form has %s, then decryption fails generically', async (_name, mutate) => {
    const text = await service.encryptToString('text');
    await expectGenericFailure(service.decryptFromString(mutate(text) as string));
  });
});

describe('binary envelope', () => {
  test('when bytes are encrypted in binary form, then they round-trip without base64 and tampering fails', async () => {
    const payload = randomBytes(4096);
    const bin = await service.encryptBinary(payload, { aad: 'blob-1' });
    expect(Buffer.isBuffer(bin.ciphertext)).toBe(true);
    expect((await service.decryptBinary(bin, { aad: 'blob-1' })).equals(payload)).toBe(true);
    const ct = Buffer.from(bin.ciphertext);
    ct[100] = (ct[100] as number) ^ 1;
    await expectGenericFailure(service.decryptBinary({ ...bin, ciphertext: ct }, { aad: 'blob-1' }));
    await expectGenericFailure(service.decryptBinary({ ...bin, iv: Buffer.alloc(16) }, { aad: 'blob-1' }));
    await expectGenericFailure(service.decryptBinary(null as never));
  });
});
