/**
 * The hash chain, seen from the application: an independent implementation of the chain
 * encoding (migrations/021_audit_chain.sql seals with the same format in SQL) and the
 * verifier that walks a tenant's chain.
 *
 *   row_hash = SHA-256( "fleet-audit-chain-v1\n" || prev_hash || NS(seq) || NS(id)
 *              || NS(tenant_id) || NS(user_id) || NS(action) || NS(resource_type)
 *              || NS(resource_id) || NS(before) || NS(after) || NS(ip_address)
 *              || NS(user_agent) || NS(result) || NS(error_message) || NS(severity)
 *              || NS(request_id) || NS(created_at) )
 *
 * NS(v) = "<UTF-8 byte length>:" || v || "," (a netstring), or "-," for NULL.
 */
import { createHash } from 'node:crypto';
import type { Queryable } from '../../db/pool';
import type { AuditRecord } from './record';
import { selectChainBatch, selectLatestAnchor, selectUnsealedSummary } from './repository';
import type { ChainAnchor, VerifyResult } from './types';

const CHAIN_TAG = Buffer.from('fleet-audit-chain-v1\n', 'utf8');
export const GENESIS_HASH = Buffer.alloc(32);
const NULL_FIELD = Buffer.from('-,', 'utf8');
const COMMA = Buffer.from(',', 'utf8');

/**
 * The fields a chain entry covers, as text (NULL as null): an audit record's, with the address
 * as `ip_address::text` prints it (always with its prefix length). Read from an archive by the
 * offline verifier too, hence result and severity as plain text.
 */
export interface CanonicalFields extends Omit<AuditRecord, 'ipAddress' | 'result' | 'severity'> {
  ipAddress: string | null;
  result: string;
  severity: string;
}

function netstring(v: string | null): Buffer {
  if (v === null) return NULL_FIELD;
  const b = Buffer.from(v, 'utf8');
  return Buffer.concat([Buffer.from(`${b.length}:`, 'utf8'), b, COMMA]);
}

export function computeRowHash(f: CanonicalFields, seq: string, prevHash: Buffer): Buffer {
  const h = createHash('sha256');
  h.update(CHAIN_TAG);
  h.update(prevHash);
  for (const v of [
    seq,
    f.id,
    f.tenantId,
    f.userId,
    f.action,
    f.resourceType,
    f.resourceId,
    f.before,
    f.after,
    f.ipAddress,
    f.userAgent,
    f.result,
    f.errorMessage,
    f.severity,
    f.requestId,
    f.createdAt,
  ]) {
    h.update(netstring(v));
  }
  return h.digest();
}

export { epochToChainTimestamp } from './record';

/** Hex of a chain hash for display and export. */
const hex = (b: Buffer): string => b.toString('hex');

/** A record's fields in the chain's text forms: inet::text carries the prefix length the output form omits for a host. */
function fieldsOf(r: AuditRecord): CanonicalFields {
  const ip = r.ipAddress;
  return { ...r, ipAddress: ip === null || ip.includes('/') ? ip : `${ip}/${ip.includes(':') ? 128 : 32}` };
}

export interface VerifyOptions {
  /** Entries read per query (default 2000). */
  batchSize?: number;
  /** A head exported earlier (e.g. by the archive): that position must still hold that hash. */
  anchor?: ChainAnchor;
  /** Called for every entry that verified, in seq order (e.g. to rebuild the Merkle tree). */
  onEntry?: (seq: bigint, rowHash: Buffer) => void;
}

/**
 * Walks one tenant's chain in seq order and stops at the first entry that does not hold:
 * a sequence gap (entries removed or inserted), a link that does not match the previous
 * hash (reordered or replaced entries), a missing audit row (deleted), a row of another
 * tenant, or a recomputed hash that differs (modified row). Also counts unsealed rows.
 * Run it in one REPEATABLE READ transaction that can see the tenant's rows.
 */
export async function verifyTenantChain(
  q: Queryable,
  tenantId: string,
  opts: VerifyOptions = {},
): Promise<VerifyResult> {
  const batchSize = opts.batchSize ?? 2000;
  const start = await selectLatestAnchor(q, tenantId);
  let prevHash = start?.hash ?? GENESIS_HASH;
  let expectedSeq = start ? BigInt(start.seq) + 1n : 1n;
  let lastSeq = start?.seq ?? '0';
  let checked = 0;
  let broken: { id: string; reason: string } | null = null;
  let anchorSeen = false;
  const anchorSeq = opts.anchor ? BigInt(opts.anchor.seq) : null;
  if (opts.anchor && start && anchorSeq !== null && anchorSeq <= BigInt(start.seq)) {
    // The exported head lies in the purged part; only the anchor position itself can be compared.
    anchorSeen = true;
    if (anchorSeq === BigInt(start.seq) && hex(start.hash) !== opts.anchor.hash.toLowerCase()) {
      broken = { id: '', reason: `the purge anchor at seq ${start.seq} differs from the exported head` };
    }
  }

  outer: while (!broken) {
    const rows = await selectChainBatch(q, tenantId, lastSeq, batchSize);
    for (const r of rows) {
      checked += 1;
      const seq = BigInt(r.seq);
      if (seq !== expectedSeq) {
        broken = {
          id: r.auditId,
          reason: `sequence gap: expected seq ${expectedSeq}, found ${seq} (entries removed or inserted)`,
        };
        break outer;
      }
      if (!r.prevHash.equals(prevHash)) {
        broken = {
          id: r.auditId,
          reason: `link mismatch at seq ${seq}: prev_hash is not the previous entry's hash (entries reordered, inserted or replaced)`,
        };
        break outer;
      }
      if (!r.record) {
        broken = { id: r.auditId, reason: `audit row ${r.auditId} at seq ${seq} is missing (deleted)` };
        break outer;
      }
      if (r.record.tenantId !== tenantId) {
        broken = { id: r.auditId, reason: `audit row ${r.auditId} at seq ${seq} belongs to another tenant` };
        break outer;
      }
      const recomputed = computeRowHash(fieldsOf(r.record), r.seq, prevHash);
      if (!recomputed.equals(r.rowHash)) {
        broken = { id: r.auditId, reason: `audit row ${r.auditId} at seq ${seq} does not match its hash (modified)` };
        break outer;
      }
      if (anchorSeq !== null && seq === anchorSeq) {
        anchorSeen = true;
        if (hex(r.rowHash) !== opts.anchor?.hash.toLowerCase()) {
          broken = {
            id: r.auditId,
            reason: `the entry at seq ${seq} differs from the exported head (history rewritten)`,
          };
          break outer;
        }
      }
      opts.onEntry?.(seq, r.rowHash);
      prevHash = r.rowHash;
      expectedSeq = seq + 1n;
      lastSeq = r.seq;
    }
    if (rows.length < batchSize) break;
  }

  let reason = broken?.reason ?? null;
  let valid = broken === null;
  if (valid && anchorSeq !== null && !anchorSeen) {
    valid = false;
    reason = `the chain ends at seq ${expectedSeq - 1n}, before the exported head at seq ${anchorSeq} (entries removed from the end)`;
  }
  const unsealed = await selectUnsealedSummary(q, tenantId);
  const headSeq = expectedSeq - 1n;
  return {
    tenantId,
    valid,
    checked,
    firstBrokenId: broken?.id ? broken.id : null,
    reason,
    unsealed: unsealed.count,
    oldestUnsealedId: unsealed.oldestId,
    head: valid && headSeq > 0n ? { seq: headSeq.toString(), hash: hex(prevHash) } : null,
    resumedFrom: start ? { seq: start.seq, hash: hex(start.hash) } : null,
  };
}
