/**
 * The audit hash-chain head an export records ("seq:hash", the newest sealed entry of the
 * tenant's chain when the export is planned; docs/AUDIT.md). It is bound into the export's
 * digest and lets archive:verify check later that this chain position still holds this hash
 * (an anchor: history rewritten and re-hashed after the export is detected). Without a chain
 * head (no sealed row yet) the export digest still chains the NDJSON hashes (format.ts).
 */
import type { Queryable } from '../../db/pool';
import type { AuditService } from '../audit/service';
import type { ChainAnchor } from '../audit/types';

export type ChainHeadReader = (q: Queryable, tenantId: string) => Promise<string | null>;

/** Reads the head through the audit service, inside the caller's tenant transaction. */
export function auditChainHeadReader(audit: Pick<AuditService, 'chainHead'>): ChainHeadReader {
  return async (q, tenantId) => {
    const head = await audit.chainHead(tenantId, q);
    return head ? `${head.seq}:${head.hash}` : null;
  };
}

/** "seq:hash" back to an anchor for chain verification; null when malformed. */
export function parseChainHead(value: string | null): ChainAnchor | null {
  if (!value) return null;
  const m = /^(\d+):([0-9a-f]{64})$/.exec(value);
  return m ? { seq: m[1] as string, hash: m[2] as string } : null;
}
