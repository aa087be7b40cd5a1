/**
 * The archive format: one JSON object per audit row (NDJSON, UTF-8, "\n" after every line),
 * keys in this fixed order, ids as strings, timestamps in UTC with microseconds, before/after
 * as PostgreSQL renders the stored jsonb. The blob's SHA-256 is over these exact bytes.
 * Each export also gets a digest that chains it to the tenant's previous export.
 */
import { createHash } from 'node:crypto';
import type { AuditRecord } from '../audit/record';

export const ARCHIVE_FORMAT = 'fleet-audit-ndjson-v1';
export const GENESIS_DIGEST = '0'.repeat(64);

const s = (v: string | null): string => (v === null ? 'null' : JSON.stringify(v));

/** One audit record as an archive line, in the record's output forms. */
export function renderRow(r: AuditRecord): string {
  return (
    `{"id":${s(r.id)},"tenant_id":${s(r.tenantId)},"user_id":${s(r.userId)},"action":${s(r.action)},` +
    `"resource_type":${s(r.resourceType)},"resource_id":${s(r.resourceId)},"before":${r.before ?? 'null'},"after":${r.after ?? 'null'},` +
    `"ip_address":${s(r.ipAddress)},"user_agent":${s(r.userAgent)},"result":${s(r.result)},"error_message":${s(r.errorMessage)},` +
    `"severity":${s(r.severity)},"request_id":${s(r.requestId)},"created_at":${s(r.createdAt)}}`
  );
}

export function renderNdjson(rows: readonly AuditRecord[]): Buffer {
  return Buffer.from(rows.map((r) => renderRow(r) + '\n').join(''), 'utf8');
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface DigestInput {
  tenantId: string;
  seq: number;
  firstId: string;
  lastId: string;
  count: number;
  sha256: string;
  prevDigest: string;
  chainHead: string | null;
}

/**
 * The export digest: SHA-256 over a canonical text of the export's identity, its content hash,
 * the previous export's digest and (when the audit trail provides one) the audit hash-chain
 * head at last_id. Without a chain head it is a plain digest chain over the NDJSON blobs.
 */
export function exportDigest(d: DigestInput): string {
  return sha256Hex(
    [
      'fleet-audit-export-v1',
      `tenant=${d.tenantId}`,
      `seq=${d.seq}`,
      `first_id=${d.firstId}`,
      `last_id=${d.lastId}`,
      `count=${d.count}`,
      `sha256=${d.sha256}`,
      `prev_digest=${d.prevDigest}`,
      `chain_head=${d.chainHead ?? ''}`,
    ].join('\n'),
  );
}

/** audit/<tenant>/<yyyy>/<mm>/<dd>/<firstId>-<lastId>.ndjson (date of the first row, UTC). */
export function blobName(tenantId: string, firstCreatedAt: string, firstId: string, lastId: string): string {
  const [y, m, d] = firstCreatedAt.slice(0, 10).split('-');
  return `audit/${encodeURIComponent(tenantId)}/${y}/${m}/${d}/${firstId}-${lastId}.ndjson`;
}

/** Parses NDJSON content into lines (the trailing newline ends the last line). */
export function splitLines(content: Buffer): string[] {
  const text = content.toString('utf8');
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** JSON with object keys sorted at every level: equal for semantically equal documents. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}
