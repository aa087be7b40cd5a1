/**
 * RFC 9162 proofs over a tenant's audit Merkle tree (GET /audit/proof/inclusion and
 * /audit/proof/consistency), each read in one tenant transaction.
 */
import type { Pool } from '../../db/pool';
import { withTenant } from '../../db/transaction';
import { notFound, validationFailed } from '../../lib/errors';
import { latestCheckpoint } from './checkpoints';
import { consistencyProof, inclusionProofForAuditId, storedTreeSize, type InclusionProof } from './merkle';

export interface AuditProofs {
  /**
   * The inclusion proof of sealed row `id` in the tree of `treeSize` leaves; by default the latest
   * checkpoint's size when it holds the entry, else the current tree. 404 for an unknown or
   * unsealed row; 400 VALIDATION_FAILED (query.treeSize) when the tree is too small.
   */
  inclusion(tenantId: string, id: string, treeSize?: number): Promise<InclusionProof>;
  /** The consistency proof between sizes `from` ≤ `to`; 400 VALIDATION_FAILED (query.to) past the current tree. */
  consistency(tenantId: string, from: number, to: number): Promise<Buffer[]>;
}

export function createAuditProofs(deps: { pool: Pool }): AuditProofs {
  const { pool } = deps;
  return {
    async inclusion(tenantId, id, wanted) {
      const out = await withTenant(pool, tenantId, async (tx) => {
        const size = await storedTreeSize(tx, tenantId);
        let treeSize: number;
        if (wanted !== undefined) {
          treeSize = wanted;
          if (treeSize > size)
            throw validationFailed([
              {
                path: 'query.treeSize',
                message: `must be at most the current tree size ${size}`,
                code: 'out_of_range',
              },
            ]);
        } else {
          // Default: the latest checkpoint's size when it holds the entry (the proof then checks
          // against GET /audit/checkpoint), else the current tree.
          const cp = await latestCheckpoint(tx, tenantId);
          treeSize = cp && cp.treeSize <= size ? cp.treeSize : size;
        }
        let proof = treeSize > 0 ? await inclusionProofForAuditId(tx, tenantId, id, treeSize) : ('unknown' as const);
        if (proof === 'out_of_range' && wanted === undefined && size > treeSize)
          proof = await inclusionProofForAuditId(tx, tenantId, id, size);
        return proof;
      });
      if (out === 'unknown') throw notFound('Sealed audit entry');
      if (out === 'out_of_range')
        throw validationFailed([
          { path: 'query.treeSize', message: 'the entry is not in a tree of that size', code: 'out_of_range' },
        ]);
      return out;
    },

    consistency(tenantId, from, to) {
      return withTenant(pool, tenantId, async (tx) => {
        const size = await storedTreeSize(tx, tenantId);
        if (to > size)
          throw validationFailed([
            { path: 'query.to', message: `must be at most the current tree size ${size}`, code: 'out_of_range' },
          ]);
        return consistencyProof(tx, tenantId, from, to);
      });
    },
  };
}
