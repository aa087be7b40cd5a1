/**
 * The audit hash-chain head an export records. The audit trail's tamper-evidence lands on
 * another branch; until it does, audit_logs has no chain column and this returns null, and
 * exports are chained by their own digests only (format.ts exportDigest: SHA-256 over the
 * NDJSON hash and the previous export's digest). When audit_logs carries a chain column
 * (one of CHAIN_COLUMNS), the value at the export's last row is recorded and bound into the
 * digest. A composition may pass a reader of its own (e.g. the audit service's chain head).
 */
import type { Queryable } from '../../db/pool';

export type ChainHeadReader = (q: Queryable, tenantId: string, lastId: string) => Promise<string | null>;

/** Column names the audit trail may use for a row's chain hash, in order of preference. */
export const CHAIN_COLUMNS = ['row_hash', 'chain_hash', 'entry_hash', 'hash'] as const;

export const DETECT_CHAIN_COLUMN = `
SELECT column_name, data_type FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = 'audit_logs' AND column_name = ANY($1::text[])`;

const SELECT_HEAD: Record<string, { text: string; bytea: string }> = Object.fromEntries(
  CHAIN_COLUMNS.map((c) => [
    c,
    {
      text: `SELECT ${c}::text AS head FROM audit_logs WHERE tenant_id = $1 AND id = $2`,
      bytea: `SELECT encode(${c}, 'hex') AS head FROM audit_logs WHERE tenant_id = $1 AND id = $2`,
    },
  ]),
);

export function createChainHeadReader(): ChainHeadReader {
  let detected: { sql: string } | null | undefined;
  return async (q, tenantId, lastId) => {
    if (detected === undefined) {
      const { rows } = await q.query<{ column_name: string; data_type: string }>(DETECT_CHAIN_COLUMN, [[...CHAIN_COLUMNS]]);
      const found = CHAIN_COLUMNS.map((c) => rows.find((r) => r.column_name === c)).find(Boolean);
      detected = found ? { sql: (SELECT_HEAD[found.column_name] as { text: string; bytea: string })[found.data_type === 'bytea' ? 'bytea' : 'text'] } : null;
    }
    if (!detected) return null;
    const { rows } = await q.query<{ head: string | null }>(detected.sql, [tenantId, lastId]);
    const head = rows[0]?.head ?? null;
    return head === null ? null : head.slice(0, 256);
  };
}
