/**
 * Verification of a tenant's audit trail against its signed checkpoints (GET /audit/verify,
 * `npm run audit:verify`; docs/AUDIT.md "Trust model"):
 *   - the hash chain, as before (chain.ts): every row recomputes to its hash, links hold;
 *   - the Merkle tree is rebuilt from the verified row hashes with the independent builder
 *     (merkle-verify.ts), and at every size a checkpoint names its root must be the signed one;
 *   - every checkpoint stored in the database and the newest ones published to Blob storage
 *     must carry a valid signature by a trusted key and this tenant's origin;
 *   - no checkpoint may name a size beyond the chain (entries removed from the end);
 *   - the stored subtree hashes (which proofs are served from) must give the rebuilt root.
 * A database owner can rewrite rows and recompute every hash, but cannot sign: the rewrite
 * shows as a root that differs from a signed one, in the database or, if the owner also
 * removed or edited checkpoint rows, in the published copies.
 */
import type { Queryable } from '../../db/pool';
import type { BlobStore } from '../archive/blob-store';
import { verifyTenantChain, type VerifyOptions } from './chain';
import { listCheckpoints } from './checkpoints';
import { storedRoot, storedTreeSize } from './merkle';
import { TreeBuilder } from './merkle-verify';
import { NoteError, verifyCheckpointNote, type VerifierKey } from './note-verify';
import type { VerifyResult } from './types';

export interface CheckpointVerification {
  /** Checkpoint notes checked (database rows and published copies). */
  checked: number;
  /** Published copies found / fetched and checked. */
  published: number;
  publishedChecked: number;
  /** Largest checkpointed size seen, and the tree size now. */
  latestSize: number | null;
  treeSize: number;
  /** First problem, or null. */
  problem: string | null;
  /** Checks that could not be made (e.g. rows purged by retention), in words. */
  notes: string[];
}

export interface TrailVerifyResult extends VerifyResult {
  checkpoints: CheckpointVerification | null;
}

export interface PublishedNote {
  name: string;
  size: number;
  note: string;
}

/** Newest `limit` published notes of a tenant (by size), plus how many exist. Throws on storage errors. */
export async function readPublishedNotes(
  store: BlobStore,
  tenantId: string,
  limit: number,
): Promise<{ total: number; notes: PublishedNote[]; badNames: string[] }> {
  const prefix = `checkpoints/${encodeURIComponent(tenantId)}/`;
  const names = await store.list(prefix);
  const sized: Array<{ name: string; size: number }> = [];
  const badNames: string[] = [];
  for (const name of names) {
    const tail = name.slice(prefix.length);
    if (/^\d+\.ids$/.test(tail)) continue; // leaf order companions (see checkpoints.ts)
    if (/^(0|[1-9]\d{0,15})$/.test(tail)) sized.push({ name, size: Number(tail) });
    else badNames.push(name);
  }
  sized.sort((a, b) => b.size - a.size);
  const notes: PublishedNote[] = [];
  for (const s of sized.slice(0, limit)) {
    const blob = await store.get(s.name);
    if (blob) notes.push({ ...s, note: blob.content.toString('utf8') });
  }
  return { total: sized.length, notes, badNames };
}

export interface TrailVerifyDeps {
  keys: readonly VerifierKey[];
  origin: string;
  /** Published notes read beforehand (readPublishedNotes), or null when no archive is configured. */
  published: { total: number; notes: PublishedNote[]; badNames: string[] } | null;
}

/**
 * Runs inside one REPEATABLE READ transaction that sees the tenant (tenant context set).
 * `deps` null: only the chain is verified (no checkpoint key configured).
 */
export async function verifyTrailIn(
  q: Queryable,
  tenantId: string,
  deps: TrailVerifyDeps | null,
  opts: Pick<VerifyOptions, 'anchor' | 'batchSize'> = {},
): Promise<TrailVerifyResult> {
  if (!deps) return { ...(await verifyTenantChain(q, tenantId, opts)), checkpoints: null };

  const cv: CheckpointVerification = {
    checked: 0,
    published: deps.published?.total ?? 0,
    publishedChecked: 0,
    latestSize: null,
    treeSize: 0,
    problem: null,
    notes: [],
  };
  const fail = (p: string) => {
    if (!cv.problem) cv.problem = p;
  };
  // size -> [root, where it was stated]
  const targets = new Map<number, Array<{ root: Buffer; source: string }>>();
  const addTarget = (size: number, root: Buffer, source: string) => {
    const list = targets.get(size) ?? [];
    list.push({ root, source });
    targets.set(size, list);
    cv.latestSize = Math.max(cv.latestSize ?? 0, size);
  };
  const checkNote = (note: string, source: string): { size: number; root: Buffer } | null => {
    try {
      const cp = verifyCheckpointNote(note, deps.keys, deps.origin);
      cv.checked += 1;
      return { size: cp.size, root: cp.root };
    } catch (err) {
      fail(`${source}: ${err instanceof NoteError ? err.message : 'unreadable note'}`);
      return null;
    }
  };

  if (deps.published) {
    for (const name of deps.published.badNames) fail(`published copy ${name} is not named checkpoints/<tenant>/<size>`);
    for (const p of deps.published.notes) {
      const cp = checkNote(p.note, `published checkpoint ${p.name}`);
      cv.publishedChecked += 1;
      if (!cp) continue;
      if (cp.size !== p.size) fail(`published checkpoint ${p.name} states size ${cp.size}`);
      else addTarget(cp.size, cp.root, `published checkpoint ${p.name}`);
    }
  }
  const seen = new Set<string>();
  for (const row of await listCheckpoints(q, tenantId)) {
    if (seen.has(row.note)) continue;
    seen.add(row.note);
    const cp = checkNote(row.note, `stored checkpoint #${row.id}`);
    if (!cp) continue;
    if (cp.size !== row.treeSize || !cp.root.equals(row.rootHash))
      fail(`stored checkpoint #${row.id}: its columns differ from its signed note`);
    addTarget(cp.size, cp.root, `stored checkpoint #${row.id} (size ${cp.size})`);
  }

  const builder = new TreeBuilder();
  let rebuildable = true;
  const compare = (size: number, root: Buffer) => {
    for (const t of targets.get(size) ?? []) {
      if (!t.root.equals(root))
        fail(
          `the tree of the first ${size} entries differs from the ${t.source}: history was rewritten after it was signed`,
        );
    }
  };
  const chain = await verifyTenantChain(q, tenantId, {
    ...opts,
    onEntry: (seq, rowHash) => {
      if (!rebuildable) return;
      if (seq !== builder.size + 1n) {
        rebuildable = false; // resumed after a retention purge: the prefix is gone
        return;
      }
      builder.addRowHash(rowHash);
      const n = Number(builder.size);
      if (targets.has(n)) compare(n, builder.root());
    },
  });
  const chainSize = chain.head ? Number(chain.head.seq) : chain.resumedFrom ? Number(chain.resumedFrom.seq) : 0;
  cv.treeSize = await storedTreeSize(q, tenantId);

  if (chain.resumedFrom) {
    rebuildable = false;
    cv.notes.push(
      `rows up to seq ${chain.resumedFrom.seq} were purged by retention: checkpoints were compared with the stored tree, not rebuilt from rows`,
    );
    for (const [size, list] of targets) {
      if (size > cv.treeSize) continue;
      const root = await storedRoot(q, tenantId, size);
      for (const t of list)
        if (!t.root.equals(root)) fail(`the stored tree of size ${size} differs from the ${t.source}`);
    }
  }
  if (chain.valid) {
    for (const [size, list] of targets) {
      if (size > chainSize)
        fail(
          `the chain has ${chainSize} entries but the ${list[0]?.source} covers ${size}: entries were removed from the end`,
        );
    }
    if (cv.treeSize !== chainSize && !cv.problem)
      fail(`the stored Merkle tree has ${cv.treeSize} leaves but the chain ${chainSize} entries`);
    if (
      rebuildable &&
      chainSize > 0 &&
      cv.treeSize === chainSize &&
      !(await storedRoot(q, tenantId, chainSize)).equals(builder.root())
    ) {
      fail('the stored Merkle tree differs from the tree of the chain (proofs served from it would not verify)');
    }
  }
  const valid = chain.valid && cv.problem === null;
  return { ...chain, valid, reason: chain.reason ?? cv.problem, checkpoints: cv };
}
