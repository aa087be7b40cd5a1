/**
 * Project Wycheproof test vectors (C2SP/wycheproof, Apache-2.0; copied unchanged into
 * server/test/fixtures/wycheproof with their README).
 * Policy: AES-256 keys, 96-bit IVs, 128-bit tags; HMAC-SHA256 with full 256-bit tags.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DecryptionError, hmacSha256, openAesGcm, sealAesGcm, verifyHmacSha256 } from '../../src/services/encryption';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'wycheproof');

interface AeadTest {
  tcId: number;
  comment: string;
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
  result: 'valid' | 'invalid' | 'acceptable';
}
interface AeadGroup {
  keySize: number;
  ivSize: number;
  tagSize: number;
  tests: AeadTest[];
}
interface MacTest {
  tcId: number;
  key: string;
  msg: string;
  tag: string;
  result: 'valid' | 'invalid' | 'acceptable';
}
interface MacGroup {
  keySize: number;
  tagSize: number;
  tests: MacTest[];
}

const gcm = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'aes_gcm_test.json'), 'utf8')) as {
  algorithm: string;
  numberOfTests: number;
  testGroups: AeadGroup[];
};
const hmac = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'hmac_sha256_test.json'), 'utf8')) as {
  algorithm: string;
  numberOfTests: number;
  testGroups: MacGroup[];
};
const hex = (s: string) => Buffer.from(s, 'hex');

const inPolicy = (g: AeadGroup) => g.keySize === 256 && g.ivSize === 96 && g.tagSize === 128;
const gcmCases = gcm.testGroups.flatMap((g) => g.tests.map((t) => ({ g, t })));
const policyValid = gcmCases.filter(({ g, t }) => inPolicy(g) && t.result === 'valid');
const policyInvalid = gcmCases.filter(({ g, t }) => inPolicy(g) && t.result !== 'valid');
const outOfPolicy = gcmCases.filter(({ g }) => !inPolicy(g));

describe('Wycheproof AES-GCM', () => {
  test('when the fixture is loaded, then it is the unchanged AES-GCM file with vectors in each class', () => {
    expect(gcm.algorithm).toBe('AES-GCM');
    expect(gcmCases).toHaveLength(gcm.numberOfTests);
    expect(policyValid.length).toBeGreaterThan(30);
    expect(policyInvalid.length).toBeGreaterThan(10);
    expect(outOfPolicy.filter(({ g }) => g.keySize === 256 && g.ivSize !== 96).length).toBeGreaterThan(20);
  });

  test('when every 256-bit-key, 96-bit-IV, 128-bit-tag valid vector is decrypted, then it yields msg, and encrypting msg with that IV yields ct and tag', () => {
    for (const { t } of policyValid) {
      const out = openAesGcm(hex(t.key), hex(t.iv), hex(t.ct), hex(t.tag), hex(t.aad));
      expect({ tcId: t.tcId, msg: out.toString('hex') }).toEqual({ tcId: t.tcId, msg: t.msg });
      const sealed = sealAesGcm(hex(t.key), hex(t.msg), hex(t.aad), hex(t.iv));
      expect({ tcId: t.tcId, ct: sealed.ciphertext.toString('hex'), tag: sealed.authTag.toString('hex') }).toEqual({
        tcId: t.tcId,
        ct: t.ct,
        tag: t.tag,
      });
    }
  });

  test('when every invalid vector of that shape is decrypted, then it is refused with DecryptionError', () => {
    for (const { t } of policyInvalid) {
      let out: Buffer | null = null;
      let err: unknown = null;
      try {
        out = openAesGcm(hex(t.key), hex(t.iv), hex(t.ct), hex(t.tag), hex(t.aad));
      } catch (e) {
        err = e;
      }
      expect({ tcId: t.tcId, refused: err instanceof DecryptionError, out }).toEqual({
        tcId: t.tcId,
        refused: true,
        out: null,
      });
    }
  });

  test('when a vector has any other IV size or key size, then it is refused by policy even when the vector is valid', () => {
    for (const { g, t } of outOfPolicy) {
      let err: unknown = null;
      try {
        openAesGcm(hex(t.key), hex(t.iv), hex(t.ct), hex(t.tag), hex(t.aad));
      } catch (e) {
        err = e;
      }
      expect({ tcId: t.tcId, keySize: g.keySize, ivSize: g.ivSize, refused: err instanceof DecryptionError }).toEqual({
        tcId: t.tcId,
        keySize: g.keySize,
        ivSize: g.ivSize,
        refused: true,
      });
    }
  });
});

const macCases = hmac.testGroups.flatMap((g) => g.tests.map((t) => ({ g, t })));

describe('Wycheproof HMAC-SHA256', () => {
  test('when the fixture is loaded, then it is the unchanged HMAC-SHA256 file', () => {
    expect(hmac.algorithm).toBe('HMACSHA256');
    expect(macCases).toHaveLength(hmac.numberOfTests);
  });

  test('when a full-length (256-bit) tag is checked, then valid vectors match and verify, invalid ones do not verify', () => {
    const full = macCases.filter(({ g }) => g.tagSize === 256);
    expect(full.length).toBeGreaterThan(50);
    for (const { t } of full) {
      const ok = verifyHmacSha256(hex(t.key), hex(t.msg), hex(t.tag));
      if (t.result === 'valid') {
        expect({ tcId: t.tcId, tag: hmacSha256(hex(t.key), hex(t.msg)).toString('hex'), ok }).toEqual({
          tcId: t.tcId,
          tag: t.tag,
          ok: true,
        });
      } else {
        expect({ tcId: t.tcId, ok }).toEqual({ tcId: t.tcId, ok: false });
      }
    }
  });

  test('when a truncated (128-bit) tag is checked, then the MAC prefix is right for valid vectors but verification refuses it by policy', () => {
    const truncated = macCases.filter(({ g }) => g.tagSize === 128);
    expect(truncated.length).toBeGreaterThan(50);
    for (const { t } of truncated) {
      expect({ tcId: t.tcId, ok: verifyHmacSha256(hex(t.key), hex(t.msg), hex(t.tag)) }).toEqual({
        tcId: t.tcId,
        ok: false,
      });
      if (t.result === 'valid') expect(hmacSha256(hex(t.key), hex(t.msg)).subarray(0, 16).toString('hex')).toBe(t.tag);
    }
  });
});
