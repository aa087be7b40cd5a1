/**
 * Delivery of claimed outbox batches and the report of their outcome: claims a batch with a
 * lease (renewed while in flight), hands it to the connector, then deletes delivered events,
 * reschedules retryable ones with backoff and moves permanent failures to the dead letter.
 */
import { isDatabaseUnavailable } from '../../db/pool';
import { withSiemWorker, withTenant } from '../../db/transaction';
import { periodic } from '../../lib/periodic';
import { backoffDelayMs } from './backoff';
import type { SiemContext } from './context';
import { selectAuditRecordsById } from '../audit/repository';
import { eventFromAuditRecord } from './events';
import * as repo from './repository';
import type { FlushResult } from './service';
import type { EventOutcome, SiemEvent } from './types';

/** Waits between attempts to record a delivered batch while the database is away (~16 s in all, under the 30 s lease). */
const RECORD_RETRY_MS = [250, 500, 1000, 2000, 4000, 4000, 4000];

async function retryWhileUnavailable<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const wait = RECORD_RETRY_MS[attempt];
      if (wait === undefined || !isDatabaseUnavailable(err)) throw err;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

export interface SiemDelivery {
  /** Claims and delivers one batch now. */
  flushOnce(): Promise<FlushResult>;
}

export function createSiemDelivery(ctx: SiemContext): SiemDelivery {
  const { pool, clock, audit, metrics, connector, provider, batchSize, leaseMs, random, instanceId, log, now } = ctx;

  async function applyReport(
    rows: repo.OutboxRow[],
    outcomes: Map<string, EventOutcome>,
    batchError: string | undefined,
  ): Promise<FlushResult> {
    const at = now();
    const delivered: string[] = [];
    const resched: repo.Reschedule[] = [];
    const dead: Array<{ row: repo.OutboxRow; reason: string }> = [];
    for (const row of rows) {
      const o = outcomes.get(row.event_id) ?? { kind: 'retry', reason: `${provider}: no outcome reported` };
      if (o.kind === 'delivered') delivered.push(row.seq);
      else if (o.kind === 'dead') dead.push({ row, reason: o.reason });
      else if (o.penalize === false) resched.push({ seq: row.seq, nextAt: at, reason: o.reason, inc: 0 });
      else {
        const attempt = row.attempts + 1;
        resched.push({
          seq: row.seq,
          nextAt: new Date(at.getTime() + backoffDelayMs(attempt, random, o.retryAfterMs)),
          reason: o.reason,
          inc: 1,
        });
      }
    }
    // What the SIEM accepted is recorded even across a database restart: retried while the
    // database is unavailable (well inside the lease), so a crash-restart does not resend it.
    await retryWhileUnavailable(() =>
      withSiemWorker(pool, async (c) => {
        await repo.deleteDelivered(c, delivered, instanceId);
        await repo.reschedule(c, resched, instanceId);
        if (delivered.length > 0) await repo.recordFlushSuccess(c, instanceId, at);
        if (batchError) await repo.recordFlushError(c, instanceId, batchError, at);
      }),
    );
    const byTenant = new Map<string, Array<{ row: repo.OutboxRow; reason: string }>>();
    for (const d of dead) byTenant.set(d.row.tenant_id, [...(byTenant.get(d.row.tenant_id) ?? []), d]);
    let deadCount = 0;
    for (const [tenantId, items] of byTenant) {
      await withTenant(pool, tenantId, async (c) => {
        const moved = await repo.moveToDeadLetter(
          c,
          items.map((i) => ({ seq: i.row.seq, reason: i.reason })),
          instanceId,
          at,
        );
        if (moved.length === 0) return;
        deadCount += moved.length;
        await audit.record(
          {
            tenantId,
            action: 'audit.siem.dead_letter',
            resourceType: 'siem_event',
            resourceId: moved[0] as string,
            result: 'failure',
            severity: 'high',
            errorMessage: (items[0] as { reason: string }).reason.slice(0, 2000),
            after: {
              provider,
              count: moved.length,
              eventIds: moved,
              reasons: [...new Set(items.map((i) => i.reason))].slice(0, 5),
            },
          },
          c,
        );
      });
    }
    metrics.delivered.inc(delivered.length);
    metrics.retried.inc(resched.filter((r) => r.inc === 1).length);
    if (deadCount > 0) metrics.deadLettered.inc({ reason: 'permanent' }, deadCount);
    ctx.state.depthEstimate = Math.max(0, ctx.state.depthEstimate - delivered.length - deadCount);
    if (batchError)
      log.warn('SIEM delivery failed', {
        reason: batchError,
        delivered: delivered.length,
        retried: resched.length,
        deadLettered: deadCount,
      });
    return { claimed: rows.length, delivered: delivered.length, retried: resched.length, dead: deadCount };
  }

  async function flushOnce(): Promise<FlushResult> {
    if (!connector) return { claimed: 0, delivered: 0, retried: 0, dead: 0 };
    const t = clock.now();
    const rows = await withSiemWorker(pool, (c) =>
      repo.claimBatch(c, instanceId, new Date(t), new Date(t + leaseMs), batchSize),
    );
    if (rows.length === 0) return { claimed: 0, delivered: 0, retried: 0, dead: 0 };
    const renewal = renewWhileInFlight(rows.map((r) => r.seq));
    // Renewed while the batch is in flight; stopped before the outcome is written (a renewal
    // after the delete would find nothing left to renew).
    return deliverClaimed(rows, () => renewal.stop()).finally(() => renewal.stop());
  }

  /** Renews the claim on `seqs` every third of the lease until stopped. */
  function renewWhileInFlight(seqs: string[]): { stop(): Promise<void> } {
    let lostLogged = false;
    const renewal = periodic(
      async () => {
        const held = await withSiemWorker(pool, (c) =>
          repo.renewLease(c, seqs, instanceId, new Date(clock.now() + leaseMs)),
        );
        if (held < seqs.length && !lostLogged) {
          lostLogged = true;
          log.warn('SIEM claim expired before renewal; another instance may deliver these events too', {
            claimed: seqs.length,
            held,
          });
        }
      },
      {
        intervalMs: Math.max(10, Math.floor(leaseMs / 3)),
        onError: (err) => log.warn('SIEM claim renewal failed', { err: (err as Error).message }),
      },
    );
    renewal.start();
    return renewal;
  }

  async function deliverClaimed(rows: repo.OutboxRow[], stopRenewal: () => Promise<void>): Promise<FlushResult> {
    if (!connector) return { claimed: 0, delivered: 0, retried: 0, dead: 0 };
    const end = metrics.flushDuration.startTimer();
    let outcomes: Map<string, EventOutcome>;
    let error: string | undefined;
    try {
      const { events, missing } = await resolveEvents(rows);
      const report = events.length > 0 ? await connector.send(events) : { outcomes: new Map<string, EventOutcome>() };
      outcomes = report.outcomes;
      error = report.error;
      // An audit row that cannot be read (purged by retention) cannot be sent.
      for (const m of missing)
        outcomes.set(m.event_id, { kind: 'dead', reason: `audit row ${m.audit_log_id} not found` });
    } catch (err) {
      error = `${provider}: ${(err as Error).message}`.slice(0, 300);
      outcomes = new Map(rows.map((r) => [r.event_id, { kind: 'retry', reason: error as string } as EventOutcome]));
    }
    end();
    await stopRenewal();
    return applyReport(rows, outcomes, error);
  }

  /** The events of claimed rows: stored payloads, or built from the audit rows they mirror (read per tenant). */
  async function resolveEvents(rows: repo.OutboxRow[]): Promise<{ events: SiemEvent[]; missing: repo.OutboxRow[] }> {
    const byTenant = new Map<string, string[]>();
    for (const r of rows)
      if (!r.payload && r.audit_log_id)
        byTenant.set(r.tenant_id, [...(byTenant.get(r.tenant_id) ?? []), r.audit_log_id]);
    const built = new Map<string, SiemEvent>();
    for (const [tenantId, ids] of byTenant) {
      const records = await withTenant(pool, tenantId, (c) => selectAuditRecordsById(c, tenantId, ids));
      for (const a of records) built.set(a.id, eventFromAuditRecord(a));
    }
    const events: SiemEvent[] = [];
    const missing: repo.OutboxRow[] = [];
    for (const r of rows) {
      const e = r.payload ?? (r.audit_log_id ? built.get(r.audit_log_id) : undefined);
      if (e) events.push(e);
      else missing.push(r);
    }
    return { events, missing };
  }

  return { flushOnce };
}
