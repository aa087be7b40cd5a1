/**
 * Archive verification (`npm run archive:verify`): for every export of a tenant, re-reads the
 * blob and checks
 *  - the blob exists, its SHA-256 equals audit_exports.sha256 and its metadata agrees;
 *  - its lines are the rows first_id..last_id, in order, row_count of them;
 *  - the database rows of that range are the archived ones (a row changed, deleted or
 *    inserted in the database after the export is reported by id);
 *  - no row of the tenant lies between two exports (gap-free);
 *  - the digest chain: seq 1, 2, 3…, each prev_digest is the previous digest, each digest
 *    recomputes from the recorded fields (an altered audit_exports row breaks it);
 *  - with the audit service: the audit hash chain still holds the chain head recorded by the
 *    newest export (an anchor: history rewritten and re-hashed after the export is caught).
 * Unfinished (pending) exports, rows newer than the last export and archived rows removed from
 * the database by the retention purge (older than its anchor) are reported as warnings.
 * Finally the container itself is listed (under audit/, or audit/<tenant>/ for one tenant):
 * a blob no export record names is reported as blob_unknown, under the tenant its name
 * carries — deleting export records from the database cannot hide archived history.
 */
import type { Pool } from '../../db/pool';
import { withTenant } from '../../db/transaction';
import { countAuditRecordsAfter, countAuditRecordsBetween, selectAuditRecordRange } from '../audit/repository';
import type { AuditService } from '../audit/service';
import type { BlobStore } from './blob-store';
import { parseChainHead } from './chain-head';
import { GENESIS_DIGEST, canonicalJson, exportDigest, renderRow, sha256Hex, splitLines } from './format';
import * as repo from './repository';

export interface VerifyProblem {
  tenantId: string;
  seq: number | null;
  blob: string | null;
  kind:
    | 'sequence_gap'
    | 'chain_broken'
    | 'digest_mismatch'
    | 'blob_missing'
    | 'blob_modified'
    | 'metadata_mismatch'
    | 'content_mismatch'
    | 'database_differs'
    | 'rows_not_archived'
    | 'chain_anchor_broken'
    | 'blob_unknown';
  detail: string;
}

export interface TenantReport {
  tenantId: string;
  exports: number;
  rowsChecked: number;
  /** Rows newer than the last export (not archived yet). */
  rowsPending: number;
  problems: VerifyProblem[];
  warnings: string[];
}

export interface VerifyReport {
  valid: boolean;
  tenants: TenantReport[];
  firstProblem: VerifyProblem | null;
}

function parseLine(line: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(line) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

async function verifyTenant(
  pool: Pool,
  store: BlobStore,
  tenantId: string,
  audit: AuditService | undefined,
  known: Set<string>,
): Promise<TenantReport> {
  const report: TenantReport = { tenantId, exports: 0, rowsChecked: 0, rowsPending: 0, problems: [], warnings: [] };
  const problem = (e: repo.ExportRow | null, kind: VerifyProblem['kind'], detail: string) =>
    report.problems.push({ tenantId, seq: e?.seq ?? null, blob: e?.blob_name ?? null, kind, detail });
  const exports = await withTenant(pool, tenantId, (c) => repo.listExports(c, tenantId));
  report.exports = exports.length;
  for (const e of exports) if (e.container === store.container) known.add(e.blob_name);
  const purgedBefore = await withTenant(pool, tenantId, (c) => repo.purgedBefore(c, tenantId));
  let purged = 0;
  let prevDigest = GENESIS_DIGEST;
  let prevLast = '0';
  for (const [i, e] of exports.entries()) {
    if (e.seq !== i + 1) problem(e, 'sequence_gap', `expected export #${i + 1}, found #${e.seq}`);
    if (e.prev_digest !== prevDigest)
      problem(e, 'chain_broken', `prev_digest does not equal the digest of export #${e.seq - 1}`);
    const recomputed = exportDigest({
      tenantId,
      seq: e.seq,
      firstId: e.first_id,
      lastId: e.last_id,
      count: e.row_count,
      sha256: e.sha256,
      prevDigest: e.prev_digest,
      chainHead: e.chain_head,
    });
    if (recomputed !== e.digest)
      problem(e, 'digest_mismatch', 'the recorded digest does not match the export record (audit_exports row altered)');
    const gap = await withTenant(pool, tenantId, (c) => countAuditRecordsBetween(c, tenantId, prevLast, e.first_id));
    if (gap > 0)
      problem(e, 'rows_not_archived', `${gap} audit row(s) between ids ${prevLast} and ${e.first_id} are in no export`);
    prevDigest = e.digest;
    prevLast = e.last_id;
    if (e.status === 'pending') {
      report.warnings.push(`export #${e.seq} (${e.blob_name}) is not completed yet; the next export run finishes it`);
      continue;
    }
    const blob = await store.get(e.blob_name);
    if (!blob) {
      problem(e, 'blob_missing', `blob ${e.blob_name} does not exist in container ${store.container}`);
      continue;
    }
    const actual = sha256Hex(blob.content);
    if (actual !== e.sha256)
      problem(e, 'blob_modified', `blob SHA-256 ${actual} differs from the recorded ${e.sha256}`);
    if (
      blob.metadata.sha256 !== e.sha256 ||
      blob.metadata.digest !== e.digest ||
      blob.metadata.prevdigest !== e.prev_digest
    ) {
      problem(e, 'metadata_mismatch', 'blob metadata (sha256, digest, prevdigest) differs from the export record');
    }
    const lines = splitLines(blob.content);
    const archived = new Map<string, string>();
    const archivedAt = new Map<string, string>();
    let order = true;
    let prevId = -1n;
    for (const line of lines) {
      const o = parseLine(line);
      const id = o && typeof o.id === 'string' && /^\d+$/.test(o.id) ? o.id : null;
      if (!o || id === null || o.tenant_id !== tenantId) {
        problem(e, 'content_mismatch', 'a line is not an audit row of this tenant');
        order = false;
        break;
      }
      if (BigInt(id) <= prevId) order = false;
      prevId = BigInt(id);
      archived.set(id, canonicalJson(o));
      archivedAt.set(id, String(o.created_at));
    }
    if (!order) problem(e, 'content_mismatch', 'rows are not in ascending id order');
    if (lines.length !== e.row_count || (lines.length > 0 && (!archived.has(e.first_id) || !archived.has(e.last_id)))) {
      problem(
        e,
        'content_mismatch',
        `blob holds ${lines.length} rows, the export record says ${e.row_count} (${e.first_id}-${e.last_id})`,
      );
    }
    const dbRows = await withTenant(pool, tenantId, (c) =>
      selectAuditRecordRange(c, tenantId, String(BigInt(e.first_id) - 1n), e.last_id, e.row_count + 10_000),
    );
    const differing: string[] = [];
    const seen = new Set<string>();
    for (const r of dbRows) {
      seen.add(r.id);
      const a = archived.get(r.id);
      if (a === undefined || a !== canonicalJson(JSON.parse(renderRow(r)))) differing.push(r.id);
    }
    for (const id of archived.keys()) {
      if (seen.has(id)) continue;
      // Removed by the retention purge (audit_purge leaves an anchor with its cut-off): expected.
      if (purgedBefore && Date.parse(archivedAt.get(id) as string) < purgedBefore.getTime()) purged += 1;
      else differing.push(id);
    }
    if (differing.length > 0) {
      const ids = [...new Set(differing)].sort((x, y) => (BigInt(x) < BigInt(y) ? -1 : 1));
      problem(
        e,
        'database_differs',
        `database rows differ from the archive (changed, deleted or inserted): ids ${ids.slice(0, 20).join(', ')}${ids.length > 20 ? ', …' : ''}`,
      );
    }
    report.rowsChecked += lines.length;
  }
  report.rowsPending = await withTenant(pool, tenantId, (c) => countAuditRecordsAfter(c, tenantId, prevLast));
  if (report.rowsPending > 0)
    report.warnings.push(`${report.rowsPending} audit row(s) newer than the last export are not archived yet`);
  if (purged > 0)
    report.warnings.push(
      `${purged} archived row(s) were removed from the database by the retention purge (the archive keeps them)`,
    );
  const newest = [...exports].reverse().find((e) => e.status === 'complete' && parseChainHead(e.chain_head));
  const anchor = newest ? parseChainHead(newest.chain_head) : null;
  if (audit && newest && anchor) {
    const chain = await audit.verify(tenantId, { anchor });
    if (!chain.valid)
      problem(
        newest,
        'chain_anchor_broken',
        `the audit hash chain no longer holds the head recorded by export #${newest.seq} (${newest.chain_head}): ${chain.reason ?? 'broken'}`,
      );
  }
  return report;
}

/**
 * Verifies one tenant's archive, or every tenant that has exports. With `audit`, also checks
 * the recorded chain head against the audit hash chain and writes audit.verify /
 * audit.verify.failed per tenant.
 */
export async function verifyArchive(
  deps: { pool: Pool; store: BlobStore; audit?: AuditService },
  opts: { tenantId?: string } = {},
): Promise<VerifyReport> {
  const tenants = opts.tenantId ? [opts.tenantId] : await repo.archivedTenants(deps.pool);
  const known = new Set<string>();
  const reports: TenantReport[] = [];
  for (const t of tenants) reports.push(await verifyTenant(deps.pool, deps.store, t, deps.audit, known));
  // Blobs the database does not know: listed from the container, attributed to the tenant
  // their name carries (audit/<url-encoded tenant>/…).
  const prefix = opts.tenantId ? `audit/${encodeURIComponent(opts.tenantId)}/` : 'audit/';
  const unknown = (await deps.store.list(prefix)).filter((name) => !known.has(name)).sort();
  for (const name of unknown) {
    const enc = name.split('/')[1] ?? '';
    let tenantId: string;
    try {
      tenantId = decodeURIComponent(enc);
    } catch {
      tenantId = enc;
    }
    let r = reports.find((x) => x.tenantId === tenantId);
    if (!r) {
      r = { tenantId, exports: 0, rowsChecked: 0, rowsPending: 0, problems: [], warnings: [] };
      reports.push(r);
    }
    r.problems.push({
      tenantId,
      seq: null,
      blob: name,
      kind: 'blob_unknown',
      detail: `blob ${name} is in the archive container but no export record in the database names it (export records deleted?)`,
    });
  }
  for (const r of reports) {
    // A tenant name taken from a planted blob name may be no tenant at all: reported, not audited.
    if (deps.audit && /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(r.tenantId)) {
      const failed = r.problems.length > 0;
      await deps.audit.record({
        tenantId: r.tenantId,
        action: failed ? 'audit.verify.failed' : 'audit.verify',
        resourceType: 'audit_archive',
        resourceId: deps.store.container,
        result: failed ? 'failure' : 'success',
        severity: failed ? 'critical' : 'low',
        errorMessage: failed
          ? `${r.problems.length} archive problem(s); first: ${(r.problems[0] as VerifyProblem).kind}: ${(r.problems[0] as VerifyProblem).detail}`.slice(
              0,
              2000,
            )
          : null,
        after: {
          scope: 'archive',
          exports: r.exports,
          rowsChecked: r.rowsChecked,
          rowsPending: r.rowsPending,
          problems: r.problems.slice(0, 20),
        },
      });
    }
  }
  const first = reports.flatMap((r) => r.problems)[0] ?? null;
  return { valid: first === null, tenants: reports, firstProblem: first };
}
