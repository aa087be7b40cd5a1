/**
 * The writer's side of the per-tenant Merkle tree (RFC 9162 §2.1; CONTRACT.md §8): roots,
 * inclusion proofs (§2.1.3.1) and consistency proofs (§2.1.4.1) read from the complete-subtree
 * hashes that audit_seal() stores in audit_merkle (migrations/065_audit_merkle.sql).
 *
 * A proof is planned first as a list of ranges [a, b) of leaves whose hashes it needs; each
 * range splits into O(log n) aligned complete subtrees node(L, x), and node(L, x) is stored
 * in the audit_merkle row of leaf ((x + 1)·2^L) − 1 at byte offset 32·L. All rows one proof
 * needs are read in one query: O(log n) rows.
 *
 * Verification of what this module produces lives in merkle-verify.ts, written separately
 * and sharing no code with this file.
 */
import { createHash } from 'node:crypto';
import type { Queryable } from '../../db/pool';

const HASH_BYTES = 32;
const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

export function leafHash(rowHash: Buffer): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(rowHash).digest();
}

export function nodeHash(left: Buffer, right: Buffer): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/** SHA-256 of the empty string: the root of the empty tree (RFC 9162 §2.1.1). */
const EMPTY_ROOT = createHash('sha256').digest();

/** A complete, aligned subtree: leaves [index·2^level, (index+1)·2^level). */
export interface NodeRef {
  level: number;
  index: number;
}

/** A run of leaves [start, end) whose RFC 9162 hash a proof needs. */
export interface LeafRange {
  start: number;
  end: number;
}

/** Largest power of two strictly less than n (n ≥ 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * The aligned complete subtrees that make up [start, end), left to right (the range must be
 * one that RFC 9162's recursion produces: start aligned to a power of two ≥ end − start).
 */
function rangeNodes(r: LeafRange): NodeRef[] {
  const out: NodeRef[] = [];
  let a = r.start;
  while (a < r.end) {
    let level = 0;
    while (a % 2 ** (level + 1) === 0 && a + 2 ** (level + 1) <= r.end) level += 1;
    out.push({ level, index: a / 2 ** level });
    a += 2 ** level;
  }
  return out;
}

/** The audit_merkle row (leaf index) that stores node(level, index). */
function storageLeaf(n: NodeRef): number {
  return (n.index + 1) * 2 ** n.level - 1;
}

/** RFC 9162 §2.1.3.1 PATH(m, D[0:n]) as leaf ranges, bottom-up. */
export function inclusionPlan(leafIndex: number, treeSize: number): LeafRange[] {
  const out: LeafRange[] = [];
  const walk = (m: number, a: number, b: number): void => {
    if (b - a <= 1) return;
    const k = splitPoint(b - a);
    if (m < a + k) {
      walk(m, a, a + k);
      out.push({ start: a + k, end: b });
    } else {
      walk(m, a + k, b);
      out.push({ start: a, end: a + k });
    }
  };
  walk(leafIndex, 0, treeSize);
  return out;
}

/** RFC 9162 §2.1.4.1 PROOF(m, D[0:n]) as leaf ranges. */
export function consistencyPlan(from: number, to: number): LeafRange[] {
  const out: LeafRange[] = [];
  const sub = (m: number, a: number, b: number, complete: boolean): void => {
    if (m === b - a) {
      if (!complete) out.push({ start: a, end: b });
      return;
    }
    const k = splitPoint(b - a);
    if (m <= k) {
      sub(m, a, a + k, complete);
      out.push({ start: a + k, end: b });
    } else {
      sub(m - k, a + k, b, false);
      out.push({ start: a, end: a + k });
    }
  };
  if (from >= 1 && from < to) sub(from, 0, to, true);
  return out;
}

/** Reads stored node hashes; the key is storageLeaf(ref) and the level. */
export type NodeReader = (refs: readonly NodeRef[]) => Promise<Map<string, Buffer>>;

const refKey = (n: NodeRef): string => `${n.level}:${n.index}`;

class MerkleStorageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MerkleStorageError';
  }
}

/** Hashes of the given ranges, reading every node they need with one call of the reader. */
export async function rangeHashes(ranges: readonly LeafRange[], read: NodeReader): Promise<Buffer[]> {
  const perRange = ranges.map(rangeNodes);
  const all = new Map<string, NodeRef>();
  for (const refs of perRange) for (const r of refs) all.set(refKey(r), r);
  const got = await read([...all.values()]);
  return perRange.map((refs) => {
    let acc: Buffer | null = null;
    for (let j = refs.length - 1; j >= 0; j -= 1) {
      const ref = refs[j] as NodeRef;
      const h = got.get(refKey(ref));
      if (!h) throw new MerkleStorageError(`tree node ${ref.level}/${ref.index} is not stored`);
      acc = acc ? nodeHash(h, acc) : h;
    }
    if (!acc) throw new MerkleStorageError('empty range');
    return acc;
  });
}

const SELECT_TREE_SIZE = `SELECT coalesce(max(leaf) + 1, 0)::text AS size FROM audit_merkle WHERE tenant_id = $1`;

const SELECT_NODE_ROWS = `SELECT leaf::text AS leaf, hashes FROM audit_merkle WHERE tenant_id = $1 AND leaf = ANY ($2::bigint[])`;

const SELECT_LEAF_OF_AUDIT_ID = `
SELECT c.seq::text AS seq, c.row_hash
  FROM audit_chain c
 WHERE c.audit_id = $1::bigint AND c.tenant_id = $2`;

/** A reader over audit_merkle for one tenant (inside that tenant's transaction: RLS applies). */
export function storedNodeReader(q: Queryable, tenantId: string): NodeReader {
  return async (refs) => {
    const leaves = [...new Set(refs.map(storageLeaf))];
    const out = new Map<string, Buffer>();
    if (leaves.length === 0) return out;
    const { rows } = await q.query<{ leaf: string; hashes: Buffer }>({
      name: 'fleet_merkle_nodes',
      text: SELECT_NODE_ROWS,
      values: [tenantId, leaves.map(String)],
    });
    const byLeaf = new Map(rows.map((r) => [Number(r.leaf), r.hashes]));
    for (const ref of refs) {
      const hashes = byLeaf.get(storageLeaf(ref));
      if (hashes && hashes.length >= (ref.level + 1) * HASH_BYTES)
        out.set(refKey(ref), hashes.subarray(ref.level * HASH_BYTES, (ref.level + 1) * HASH_BYTES));
    }
    return out;
  };
}

/** Number of leaves the tenant's stored tree has (its sealed chain length, when complete). */
export async function storedTreeSize(q: Queryable, tenantId: string): Promise<number> {
  const { rows } = await q.query<{ size: string }>({
    name: 'fleet_merkle_size',
    text: SELECT_TREE_SIZE,
    values: [tenantId],
  });
  return Number(rows[0]?.size ?? '0');
}

/** MTH(D[0:size]) from storage. */
export async function storedRoot(q: Queryable, tenantId: string, size: number): Promise<Buffer> {
  if (size === 0) return EMPTY_ROOT;
  const [root] = await rangeHashes([{ start: 0, end: size }], storedNodeReader(q, tenantId));
  return root as Buffer;
}

export interface InclusionProof {
  leafIndex: number;
  treeSize: number;
  rowHash: Buffer;
  hashes: Buffer[];
}

/** null: no sealed entry of this tenant has that audit id. */
export async function inclusionProofForAuditId(
  q: Queryable,
  tenantId: string,
  auditId: string,
  treeSize: number,
): Promise<InclusionProof | 'unknown' | 'out_of_range'> {
  const { rows } = await q.query<{ seq: string; row_hash: Buffer }>(SELECT_LEAF_OF_AUDIT_ID, [auditId, tenantId]);
  const row = rows[0];
  if (!row) return 'unknown';
  const leafIndex = Number(row.seq) - 1;
  if (leafIndex >= treeSize) return 'out_of_range';
  const hashes = await rangeHashes(inclusionPlan(leafIndex, treeSize), storedNodeReader(q, tenantId));
  return { leafIndex, treeSize, rowHash: row.row_hash, hashes };
}

export async function consistencyProof(q: Queryable, tenantId: string, from: number, to: number): Promise<Buffer[]> {
  return rangeHashes(consistencyPlan(from, to), storedNodeReader(q, tenantId));
}
