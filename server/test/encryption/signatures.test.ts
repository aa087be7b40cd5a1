/** HMAC-SHA256 signatures under an HKDF-derived key, separate from the encryption key. */
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import {
  createEncryptionService,
  HKDF_INFO_ENCRYPTION,
  HKDF_INFO_SIGNATURE,
  staticKeyProvider,
} from '../../src/services/encryption';

const K1 = randomBytes(32);
const K2 = randomBytes(32);
const v1 = createEncryptionService({ keyProvider: staticKeyProvider({ a: K1 }, 'a') });
const v2 = createEncryptionService({ keyProvider: staticKeyProvider({ a: K1, b: K2 }, 'b') });
const derive = (k: Buffer, info: string) => Buffer.from(hkdfSync('sha256', k, Buffer.alloc(0), info, 32));

function tagOf(sig: string): Buffer {
  return Buffer.from(sig.split(':')[2] as string, 'base64url');
}

describe('createSignature / verifySignature', () => {
  test('when data is signed, then the signature has the form s1:<version>:<43 base64url chars> and verifies', async () => {
    const sig = await v1.createSignature('payload');
    expect(sig).toMatch(/^s1:a:[A-Za-z0-9_-]{43}$/);
    expect(await v1.verifySignature('payload', sig)).toBe(true);
    expect(await v1.verifySignature(Buffer.from('payload'), sig)).toBe(true);
  });

  test('when the signature is computed by hand, then it is HMAC-SHA256 under HKDF(master, "…/hmac-sha256") — not the master key, not the encryption key', async () => {
    const sig = await v1.createSignature('by hand');
    const expected = createHmac('sha256', derive(K1, HKDF_INFO_SIGNATURE)).update('by hand').digest();
    expect(tagOf(sig).equals(expected)).toBe(true);
    expect(tagOf(sig).equals(createHmac('sha256', K1).update('by hand').digest())).toBe(false);
    expect(tagOf(sig).equals(createHmac('sha256', derive(K1, HKDF_INFO_ENCRYPTION)).update('by hand').digest())).toBe(
      false,
    );
    expect(derive(K1, HKDF_INFO_SIGNATURE).equals(derive(K1, HKDF_INFO_ENCRYPTION))).toBe(false);
  });

  test('when the data changes in any byte, then the signature does not verify', async () => {
    const data = Buffer.from('amount=100&to=acct-1');
    const sig = await v1.createSignature(data);
    for (let i = 0; i < data.length; i++) {
      const altered = Buffer.from(data);
      altered[i] = (altered[i] as number) ^ 0x01;
      expect(await v1.verifySignature(altered, sig)).toBe(false);
    }
    expect(await v1.verifySignature('amount=100&to=acct-1 ', sig)).toBe(false);
    expect(await v1.verifySignature('', sig)).toBe(false);
  });

  test('when any bit of the tag is flipped, then the signature does not verify', async () => {
    const sig = await v1.createSignature('bits');
    const tag = tagOf(sig);
    for (let bit = 0; bit < 256; bit++) {
      const t = Buffer.from(tag);
      t[bit >> 3] = (t[bit >> 3] as number) ^ (1 << (bit & 7));
      expect(await v1.verifySignature('bits', `s1:a:${t.toString('base64url')}`)).toBe(false);
    }
  });

  test.each<[string, unknown]>([
    ['empty', ''],
    ['garbage', 'not a signature'],
    ['a bare hex digest', 'ab'.repeat(32)],
    ['a wrong prefix', 's2:a:' + 'A'.repeat(43)],
    ['a 16-byte (truncated) tag', 's1:a:' + randomBytes(16).toString('base64url')],
    ['a 42-character tag', 's1:a:' + 'A'.repeat(42)],
    ['a 44-character tag', 's1:a:' + 'A'.repeat(44)],
    ['a non-canonical last character', 's1:a:' + 'A'.repeat(42) + 'B'],
    ['padding', 's1:a:' + randomBytes(32).toString('base64')],
    ['an unknown version', 's1:zz:' + randomBytes(32).toString('base64url')],
    ['a malformed version', 's1:a b:' + randomBytes(32).toString('base64url')],
    ['an extra field', 's1:a:' + randomBytes(32).toString('base64url') + ':x'],
    ['a very long string', 's1:a:' + 'A'.repeat(10_000)],
    ['a number', 12345],
    ['null', null],
    ['undefined', undefined],
    ['an object', { toString: () => 's1:a:x' }],
    ['a Buffer', randomBytes(32)],
    ['an array', ['s1', 'a']],
  ])('when the signature is %s, then verification returns false without throwing', async (_name, sig) => {
    await expect(v1.verifySignature('data', sig)).resolves.toBe(false);
  });

  test('when the data is not a string or bytes, then verification returns false', async () => {
    const sig = await v1.createSignature('x');
    await expect(v1.verifySignature(undefined as unknown as string, sig)).resolves.toBe(false);
    await expect(v1.verifySignature({} as unknown as string, sig)).resolves.toBe(false);
  });

  test('when the master key rotates, then signatures made before still verify and new ones name the new version', async () => {
    const old = await v1.createSignature('long-lived');
    expect(await v2.verifySignature('long-lived', old)).toBe(true);
    const fresh = await v2.createSignature('long-lived');
    expect(fresh.startsWith('s1:b:')).toBe(true);
    expect(await v2.verifySignature('long-lived', fresh)).toBe(true);
    // relabelling an old tag with the new version does not verify
    expect(await v2.verifySignature('long-lived', old.replace('s1:a:', 's1:b:'))).toBe(false);
    // a service without the new version cannot verify the new signature (false, no throw)
    expect(await v1.verifySignature('long-lived', fresh)).toBe(false);
  });
});
