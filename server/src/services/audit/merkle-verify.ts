/**
 * Independent verification of the audit Merkle tree (RFC 9162 §2.1.3.2 and §2.1.4.2) and a
 * streaming tree builder for verifiers that rebuild a tree from the rows themselves.
 *
 * Deliberately shares no code with the writer (merkle.ts, migrations/065_audit_merkle.sql):
 * its own hashing, its own index arithmetic (BigInt), the RFC's verification algorithms
 * rather than the writer's proof generation. A bug in one is not repeated in the other.
 */
import { createHash, hash as oneShot } from 'node:crypto';

function h(...parts: Uint8Array[]): Buffer {
  const d = createHash('sha256');
  for (const p of parts) d.update(p);
  return d.digest();
}
const ZERO = Uint8Array.of(0);
const ONE = Uint8Array.of(1);
// One-shot SHA-256 over a scratch buffer: the verifier hashes millions of 33- and 65-byte inputs.
const LEAF_IN = Buffer.alloc(33);
const NODE_IN = Buffer.alloc(65);
NODE_IN[0] = 0x01;

/** RFC 9162 leaf hash of one chain entry. */
export function merkleLeaf(rowHash: Uint8Array): Buffer {
  if (rowHash.length !== 32) return h(ZERO, rowHash);
  LEAF_IN.set(rowHash, 1);
  return oneShot('sha256', LEAF_IN, 'buffer');
}
function interior(l: Uint8Array, r: Uint8Array): Buffer {
  if (l.length !== 32 || r.length !== 32) return h(ONE, l, r);
  NODE_IN.set(l, 1);
  NODE_IN.set(r, 33);
  return oneShot('sha256', NODE_IN, 'buffer');
}

const bytesEqual = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

/** RFC 9162 §2.1.3.2: does `leaf` (a leaf hash) sit at leafIndex of the tree with this root? */
export function verifyInclusion(
  leafIndex: number | bigint,
  treeSize: number | bigint,
  leaf: Uint8Array,
  path: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  const index = BigInt(leafIndex);
  const size = BigInt(treeSize);
  if (index < 0n || index >= size) return false;
  if (path.some((p) => p.length !== 32) || leaf.length !== 32 || root.length !== 32) return false;
  let fn = index;
  let sn = size - 1n;
  let r: Buffer = Buffer.from(leaf);
  for (const p of path) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      r = interior(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = interior(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && bytesEqual(r, root);
}

/** RFC 9162 §2.1.4.2: is the tree (second, secondRoot) an append-only extension of (first, firstRoot)? */
export function verifyConsistency(
  first: number | bigint,
  second: number | bigint,
  firstRoot: Uint8Array,
  secondRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  const m = BigInt(first);
  const n = BigInt(second);
  if (m < 0n || m > n) return false;
  if (proof.some((p) => p.length !== 32) || firstRoot.length !== 32 || secondRoot.length !== 32) return false;
  if (m === n) return proof.length === 0 && bytesEqual(firstRoot, secondRoot);
  if (m === 0n) return proof.length === 0; // the empty tree is a prefix of every tree
  if (proof.length === 0) return false;
  const path: Uint8Array[] = [...proof];
  if ((m & (m - 1n)) === 0n) path.unshift(firstRoot);
  let fn = m - 1n;
  let sn = n - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr: Buffer = Buffer.from(path[0] as Uint8Array);
  let sr: Buffer = Buffer.from(path[0] as Uint8Array);
  for (const c of path.slice(1)) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      fr = interior(c, fr);
      sr = interior(c, sr);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = interior(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && bytesEqual(fr, firstRoot) && bytesEqual(sr, secondRoot);
}

/**
 * Builds a tree leaf by leaf with O(log n) memory (the hashes of the complete subtrees on its
 * right edge) and answers its root at the current size at any time.
 */
export class TreeBuilder {
  /** Complete subtrees on the right edge: their sizes (powers of two, decreasing) and hashes. */
  private readonly sizes: number[] = [];
  private readonly hashes: Buffer[] = [];
  private count = 0;

  get size(): bigint {
    return BigInt(this.count);
  }

  /** Appends the leaf of one chain entry (its row_hash). */
  addRowHash(rowHash: Uint8Array): void {
    this.addLeafHash(merkleLeaf(rowHash));
  }

  addLeafHash(leaf: Uint8Array): void {
    let size = 1;
    let hash: Buffer = Buffer.isBuffer(leaf) ? leaf : Buffer.from(leaf);
    while (this.sizes.length > 0 && this.sizes[this.sizes.length - 1] === size) {
      this.sizes.pop();
      hash = interior(this.hashes.pop() as Buffer, hash);
      size *= 2;
    }
    this.sizes.push(size);
    this.hashes.push(hash);
    this.count += 1;
  }

  /** MTH of the leaves added so far (SHA-256 of nothing for none). */
  root(): Buffer {
    if (this.hashes.length === 0) return h();
    let acc = this.hashes[this.hashes.length - 1] as Buffer;
    for (let i = this.hashes.length - 2; i >= 0; i -= 1) acc = interior(this.hashes[i] as Buffer, acc);
    return acc;
  }
}
