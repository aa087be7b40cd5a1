/**
 * Group commit for audit rows written outside a caller's transaction (most of them:
 * POST /audit/log, denials, token rejections). Rows recorded during one event-loop turn are
 * written together when the turn ends, one statement per tenant (so one transaction and one
 * WAL flush for many rows), instead of one round trip and one commit each. Each caller still
 * waits for its own row to be committed and gets its own id: the request is answered only
 * after its audit row is durable, and fails if it could not be written.
 */
import type { Pool } from '../../db/pool';
import { perTurn, slices } from '../../lib/turn-batch';
import { insertAuditLogInTenant, insertAuditLogsInTenant, type AuditRow } from './repository';
import type { RecordedAudit } from './types';

/** Most rows one statement carries. */
const AUDIT_BATCH_MAX = 64;

interface Pending {
  row: AuditRow;
  resolve(r: RecordedAudit): void;
  reject(err: unknown): void;
}

/** A PostgreSQL error report (SQLSTATE): the statement failed on the server and committed nothing. */
function failedOnServer(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

export function createAuditGroupCommit(
  pool: Pool,
  maxBatch = AUDIT_BATCH_MAX,
): (row: AuditRow) => Promise<RecordedAudit> {
  function one(p: Pending): void {
    insertAuditLogInTenant(pool, p.row).then(p.resolve, p.reject);
  }

  function run(tenantId: string, items: Pending[]): void {
    if (items.length === 1) {
      one(items[0] as Pending);
      return;
    }
    insertAuditLogsInTenant(
      pool,
      tenantId,
      items.map((p) => p.row),
    ).then(
      (recorded) => items.forEach((p, i) => p.resolve(recorded[i] as RecordedAudit)),
      (err: unknown) => {
        // The statement committed nothing: write each row on its own, so a row the database
        // refuses fails only its own request. Any other failure (connection lost: the outcome
        // is unknown) is reported to every caller rather than risking duplicate rows.
        if (failedOnServer(err)) items.forEach(one);
        else for (const p of items) p.reject(err);
      },
    );
  }

  const submit = perTurn<Pending>((all) => {
    const byTenant = new Map<string, Pending[]>();
    for (const p of all) {
      const list = byTenant.get(p.row.tenantId);
      if (list) list.push(p);
      else byTenant.set(p.row.tenantId, [p]);
    }
    for (const [tenantId, list] of byTenant) for (const batch of slices(list, maxBatch)) run(tenantId, batch);
  });

  return (row) => new Promise<RecordedAudit>((resolve, reject) => submit({ row, resolve, reject }));
}
