/**
 * The audit Merkle tree (CONTRACT.md §8): the writer's proofs (merkle.ts) checked by the
 * independent verifier (merkle-verify.ts) against roots computed by a third implementation
 * here (RFC 9162 §2.1.1's recursive definition, written out directly), and the RFC 6962 /
 * Certificate Transparency reference vectors.
 */
import { createHash } from 'node:crypto';
import {
  consistencyPlan,
  inclusionPlan,
  leafHash,
  rangeHashes,
  type NodeReader,
  type NodeRef,
} from '../../src/services/audit/merkle';
import { TreeBuilder, verifyConsistency, verifyInclusion } from '../../src/services/audit/merkle-verify';

const sha = (...parts: Buffer[]): Buffer => createHash('sha256').update(Buffer.concat(parts)).digest();
/** RFC 9162 §2.1.1 MTH over leaf hashes, recursively, exactly as written in the RFC. */
function mth(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return sha();
  if (leaves.length === 1) return leaves[0] as Buffer;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha(Buffer.from([1]), mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

/** A NodeReader over an in-memory list of leaf hashes (node(L, x) = MTH of its 2^L leaves). */
function memoryReader(leaves: Buffer[], counter?: { reads: number }): NodeReader {
  return async (refs: readonly NodeRef[]) => {
    if (counter) counter.reads += refs.length;
    const out = new Map<string, Buffer>();
    for (const r of refs) {
      const start = r.index * 2 ** r.level;
      const end = start + 2 ** r.level;
      if (end <= leaves.length) out.set(`${r.level}:${r.index}`, mth(leaves.slice(start, end)));
    }
    return out;
  };
}

const rowHashes = (n: number, salt = 'x'): Buffer[] =>
  Array.from({ length: n }, (_, i) => sha(Buffer.from(`${salt}-${i}`)));
const hex = (b: Buffer): string => b.toString('hex');
const unhex = (s: string): Buffer => Buffer.from(s, 'hex');

// RFC 6962 test data (certificate-transparency merkle_tree_test, also used by Trillian).
const CT_ENTRIES = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map(unhex);
const CT_ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const CT_INCLUSION: Array<[number, number, string[]]> = [
  [
    0,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    5,
    8,
    [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [
    1,
    5,
    [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
];
const CT_CONSISTENCY: Array<[number, number, string[]]> = [
  [1, 1, []],
  [
    1,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    6,
    8,
    [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
  [
    2,
    5,
    [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
];

describe('RFC 6962 / Certificate Transparency reference vectors', () => {
  const leaves = CT_ENTRIES.map(leafHash);

  it('when the reference entries are hashed, then every tree size 0..8 has the published root (writer and verifier)', async () => {
    for (let n = 0; n <= 8; n += 1) {
      const b = new TreeBuilder();
      for (const l of leaves.slice(0, n)) b.addLeafHash(l);
      expect(hex(b.root())).toBe(CT_ROOTS[n]);
      if (n > 0) {
        const [root] = await rangeHashes([{ start: 0, end: n }], memoryReader(leaves));
        expect(hex(root as Buffer)).toBe(CT_ROOTS[n]);
      }
    }
  });

  it.each(CT_INCLUSION)(
    'when the inclusion proof of leaf %i in a tree of %i is generated, then it is the published one and verifies',
    async (index, size, expected) => {
      const proof = await rangeHashes(inclusionPlan(index, size), memoryReader(leaves));
      expect(proof.map(hex)).toEqual(expected);
      expect(
        verifyInclusion(index, size, leaves[index] as Buffer, expected.map(unhex), unhex(CT_ROOTS[size] as string)),
      ).toBe(true);
    },
  );

  it.each(CT_CONSISTENCY)(
    'when the consistency proof %i -> %i is generated, then it is the published one and verifies',
    async (m, n, expected) => {
      const proof = await rangeHashes(consistencyPlan(m, n), memoryReader(leaves));
      expect(proof.map(hex)).toEqual(expected);
      expect(
        verifyConsistency(m, n, unhex(CT_ROOTS[m] as string), unhex(CT_ROOTS[n] as string), expected.map(unhex)),
      ).toBe(true);
    },
  );
});

describe('proofs for every leaf and size', () => {
  const leaves = rowHashes(70).map(leafHash);
  const roots = Array.from({ length: 71 }, (_, n) => mth(leaves.slice(0, n)));

  it('when inclusion proofs are made for every leaf of trees of sizes 1..70, then each verifies against the independently computed root, and fails for another leaf, index or root', async () => {
    let checked = 0;
    for (let n = 1; n <= 70; n += 1) {
      for (let m = 0; m < n; m += 1) {
        const proof = await rangeHashes(inclusionPlan(m, n), memoryReader(leaves));
        expect(verifyInclusion(m, n, leaves[m] as Buffer, proof, roots[n] as Buffer)).toBe(true);
        if (n > 1) {
          expect(verifyInclusion(m, n, leaves[(m + 1) % n] as Buffer, proof, roots[n] as Buffer)).toBe(false);
          expect(verifyInclusion((m + 1) % n, n, leaves[m] as Buffer, proof, roots[n] as Buffer)).toBe(false);
          expect(verifyInclusion(m, n, leaves[m] as Buffer, proof, roots[n - 1] as Buffer)).toBe(false);
        }
        checked += 1;
      }
    }
    expect(checked).toBe((70 * 71) / 2);
  });

  it('when consistency proofs are made for every pair 1 <= m <= n <= 40, then each verifies against the independent roots and fails for a wrong old root', async () => {
    for (let n = 1; n <= 40; n += 1) {
      for (let m = 1; m <= n; m += 1) {
        const proof = await rangeHashes(consistencyPlan(m, n), memoryReader(leaves));
        expect(verifyConsistency(m, n, roots[m] as Buffer, roots[n] as Buffer, proof)).toBe(true);
        if (m < n) {
          expect(verifyConsistency(m, n, roots[m === 1 ? 2 : m - 1] as Buffer, roots[n] as Buffer, proof)).toBe(false);
          expect(verifyConsistency(m, n, roots[m] as Buffer, roots[n - 1] as Buffer, proof)).toBe(false);
        }
      }
    }
  });

  it('when a proof is made in a tree of 1,000,000 leaves, then it reads O(log n) nodes', async () => {
    const n = 1_000_000;
    const counter = { reads: 0 };
    const fake: NodeReader = async (refs) => {
      counter.reads += refs.length;
      return new Map(refs.map((r) => [`${r.level}:${r.index}`, sha(Buffer.from(`${r.level}:${r.index}`))]));
    };
    for (const m of [0, 1, 499_999, 524_287, 999_999]) {
      counter.reads = 0;
      const p = await rangeHashes(inclusionPlan(m, n), fake);
      expect(p.length).toBeLessThanOrEqual(20);
      expect(counter.reads).toBeLessThanOrEqual(2 * 20 + 20);
    }
    counter.reads = 0;
    await rangeHashes(consistencyPlan(333_333, n), fake);
    expect(counter.reads).toBeLessThanOrEqual(3 * 20);
  });
});

describe('hostile input to the verifier', () => {
  const leaves = rowHashes(9).map(leafHash);
  const root = mth(leaves);

  it('when indexes, sizes or hash lengths are out of range, then verification fails rather than throws', async () => {
    const proof = await rangeHashes(inclusionPlan(3, 9), memoryReader(leaves));
    expect(verifyInclusion(9, 9, leaves[3] as Buffer, proof, root)).toBe(false);
    expect(verifyInclusion(-1, 9, leaves[3] as Buffer, proof, root)).toBe(false);
    expect(verifyInclusion(3, 9, leaves[3] as Buffer, [...proof, Buffer.alloc(32)], root)).toBe(false);
    expect(verifyInclusion(3, 9, leaves[3] as Buffer, proof.slice(1), root)).toBe(false);
    expect(verifyInclusion(3, 9, leaves[3] as Buffer, [Buffer.alloc(31), ...proof.slice(1)], root)).toBe(false);
    expect(verifyInclusion(3, 9, Buffer.alloc(0), proof, root)).toBe(false);
    expect(verifyConsistency(5, 4, mth(leaves.slice(0, 5)), mth(leaves.slice(0, 4)), [])).toBe(false);
    expect(verifyConsistency(4, 9, mth(leaves.slice(0, 4)), root, [])).toBe(false);
    expect(verifyConsistency(4, 4, mth(leaves.slice(0, 4)), root, [])).toBe(false);
    expect(verifyConsistency(4, 4, root, root, [Buffer.alloc(32)])).toBe(false);
  });

  it('when stored nodes are missing, then the writer reports it instead of producing a wrong proof', async () => {
    await expect(rangeHashes(inclusionPlan(3, 12), memoryReader(leaves))).rejects.toThrow(/not stored/);
  });
});
