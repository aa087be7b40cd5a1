/**
 * The SIEM forwarder: a durable outbox in PostgreSQL and a worker in every instance.
 *
 * Enqueue, always in the transaction of the change it reports:
 *  - every high/critical audit row and every security.alert.* row is queued by the
 *    audit_logs AFTER INSERT trigger of migration 040 (by reference: audit_log_id), whoever
 *    inserts the row (application, scripts, database functions), at no extra round trip on
 *    the audit write path. The trigger is active while siem_settings.forwarding is on, which
 *    start() sets from SIEM_PROVIDER. The worker reads those rows, per tenant, when it sends;
 *  - POST /audit/siem and sendEvent/sendBatch insert events with their payload.
 * Worker: claims up to SIEM_BATCH_SIZE due events with FOR UPDATE SKIP LOCKED and a lease,
 * hands them to the connector, deletes delivered ones, reschedules retryable ones with
 * capped exponential backoff and full jitter, and moves permanent failures to the dead
 * letter (with an audit.siem.dead_letter row). Runs every SIEM_FLUSH_INTERVAL_MS, and sooner
 * when this instance enqueued a full batch. A crash loses nothing: claimed rows become due
 * again when their lease ends; receivers see the same event id again (idempotency key).
 *
 * Queue bound (SIEM_MAX_QUEUE):
 *  - POST /audit/siem and sendEvent/sendBatch: refused with 503 + Retry-After when the batch
 *    would exceed the bound (nothing is enqueued; the caller can retry);
 *  - audit rows are always queued (the audit write never waits or fails for the SIEM); every
 *    worker tick trims the outbox back to the bound, fairly per tenant: only a tenant over its
 *    share (bound / tenants queued) loses events, and only its own oldest unclaimed low/medium
 *    (then high) events, to the dead letter (reason queue_full; repository.trimQueue). Critical
 *    events and alerts are never evicted. The audit rows themselves always stay.
 */
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Request } from 'express';
import type { Config } from '../../config';
import { isDatabaseUnavailable, type Pool, type Queryable } from '../../db/pool';
import { asSiemWorker, withSiemWorker, withTenant, withTransaction } from '../../db/transaction';
import { AppError } from '../../lib/errors';
import type { Clock } from '../../lib/clock';
import type { Logger } from '../../lib/logger';
import { selectAuditRecordsById } from '../audit/repository';
import type { AuditService } from '../audit/service';
import type { Severity } from '../audit/types';
import { backoffDelayMs } from './backoff';
import { createConnector } from './connectors';
import { auditEventId } from './event-id';
import { EVENT_TYPE_RE, eventFromAuditRecord, normalizeEvent } from './events';
import type { SiemMetrics } from './metrics';
import * as repo from './repository';
import type { EventOutcome, QueueStatus, SiemConnector, SiemEvent, SiemEventInput } from './types';
import { SEVERITIES } from './types';

/**
 * How long a claim lasts without renewal. The delivering worker renews it every third of this
 * while the batch is in flight (a slow SIEM keeps its batch); a claim of a dead or hung
 * instance runs out within one lease and another instance's worker takes the events over
 * (its fill check looks for expired claims every second).
 */
export const DEFAULT_LEASE_MS = 30_000;
/**
 * Audit rows are queued by a database trigger, so this instance does not see them arrive: it
 * checks this often whether a full batch waits (and flushes at once), between intervals.
 */
const FILL_CHECK_MS = 1000;
/** Batches one tick may deliver back to back before yielding to the next interval. */
const MAX_BATCHES_PER_TICK = 50;

export interface FlushResult {
  claimed: number;
  delivered: number;
  retried: number;
  dead: number;
}

export interface ApiEventInput {
  eventType: string;
  severity: Severity;
  message: string;
  details?: Record<string, unknown>;
  occurredAt?: string;
  outcome?: 'success' | 'failure' | 'denied';
  resourceType?: string;
  resourceId?: string;
}

export interface SendAlertOptions {
  tenantId?: string;
  q?: Queryable;
  userId?: string | null;
  ipAddress?: string | null;
  userAgent?: string | null;
  requestId?: string | null;
  resourceType?: string;
  resourceId?: string | null;
  details?: Record<string, unknown>;
}

export interface SiemHealth {
  provider: string | null;
  reachable: boolean;
  healthy: boolean;
  error: string | null;
}

export interface SiemService {
  readonly enabled: boolean;
  readonly provider: string | null;
  readonly instanceId: string;
  /** Enqueues inside the caller's transaction; refused with 503 when the events do not fit the bound. */
  enqueue(q: Queryable, events: readonly SiemEvent[]): Promise<void>;
  /** Writes siem_settings.forwarding (the audit_logs trigger queues high/critical rows while on). start() calls it. */
  syncSettings(): Promise<void>;
  /** Moves events beyond SIEM_MAX_QUEUE to the dead letter (every worker tick does it). Returns their ids. */
  trimQueue(): Promise<string[]>;
  /** The seed API: enqueue one event (own transaction unless `q`). Returns its id. */
  sendEvent(event: SiemEventInput, q?: Queryable): Promise<string>;
  sendBatch(events: readonly SiemEventInput[], q?: Queryable): Promise<string[]>;
  /** Records `security.alert.<alertType>` in the audit trail; the audit hook forwards it. */
  sendAlert(
    alertType: string,
    severity: Severity,
    message: string,
    opts?: SendAlertOptions,
  ): Promise<{ eventId: string; auditLogId: string }>;
  /** POST /audit/siem: admin-submitted events + an audit.siem.submitted row, one transaction. */
  submitFromRequest(req: Request, events: readonly ApiEventInput[], q?: Queryable): Promise<string[]>;
  healthCheck(): Promise<SiemHealth>;
  /** Counts for one tenant (or all when omitted) and the forwarder's state. */
  getQueueStatus(tenantId?: string | null): Promise<QueueStatus>;
  /** Claims and delivers one batch now. */
  flushOnce(): Promise<FlushResult>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface SiemServiceDeps {
  pool: Pool;
  config: Config;
  logger: Logger;
  clock: Clock;
  audit: AuditService;
  metrics: SiemMetrics;
  /** Defaults to the connector SIEM_PROVIDER names (null: forwarding disabled). */
  connector?: SiemConnector | null;
  connectorTimeoutMs?: number;
  leaseMs?: number;
  random?: () => number;
  instanceId?: string;
}

function notConfigured(): AppError {
  return new AppError('SERVICE_UNAVAILABLE', 503, 'No SIEM is configured (SIEM_PROVIDER, SIEM_ENDPOINT_URL).');
}

/** Audit rows the audit_logs trigger queues (migration 040 mirrors this rule in SQL). */
export function isForwarded(action: string, severity: Severity): boolean {
  if (action.startsWith('audit.siem.')) return false;
  return severity === 'high' || severity === 'critical' || action.startsWith('security.alert.');
}

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

export function createSiemService(deps: SiemServiceDeps): SiemService {
  const { pool, config, logger, clock, audit, metrics } = deps;
  const connector =
    deps.connector !== undefined ? deps.connector : createConnector(config, { timeoutMs: deps.connectorTimeoutMs });
  const enabled = connector !== null;
  const provider = connector?.provider ?? null;
  const batchSize = config.siem.batchSize;
  const maxQueue = config.siem.maxQueue;
  const leaseMs = deps.leaseMs ?? DEFAULT_LEASE_MS;
  const random = deps.random ?? Math.random;
  const instanceId = deps.instanceId ?? `${os.hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const log = logger.child({ component: 'siem', provider });

  let depthEstimate = 0;
  let enqueuedSinceTick = 0;
  let timer: NodeJS.Timeout | null = null;
  let fillTimer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let started = false;
  let stopping = false;
  /** A wake-up arrived while a tick was running: run again right after it. */
  let again = false;

  const now = (): Date => new Date(clock.now());

  function nudge(n: number): void {
    enqueuedSinceTick += n;
    if (started && !stopping && enqueuedSinceTick >= batchSize) schedule(5);
  }

  async function enqueueReject(q: Queryable, events: readonly SiemEvent[]): Promise<void> {
    // The bound counts every tenant's events (row-level security, migration 097): worker scope.
    return asSiemWorker(q, () => enqueueBounded(q, events));
  }

  async function enqueueBounded(q: Queryable, events: readonly SiemEvent[]): Promise<void> {
    // One submitter at a time near the bound: the count and the insert are then exact.
    await repo.lockOutboxBound(q);
    const depth = await repo.countOutboxCapped(q, maxQueue);
    depthEstimate = depth;
    if (depth + events.length > maxQueue) {
      throw new AppError('SERVICE_UNAVAILABLE', 503, 'The SIEM queue is full; try again later.', {
        headers: { 'Retry-After': String(Math.max(1, Math.ceil(config.siem.flushIntervalMs / 1000))) },
        internalReason: `siem outbox holds ${depth} of ${maxQueue} events`,
      });
    }
    await repo.insertOutbox(q, events, now());
    depthEstimate += events.length;
    for (const e of events) metrics.enqueued.inc({ origin: e.origin });
    nudge(events.length);
  }

  async function enqueue(q: Queryable, events: readonly SiemEvent[]): Promise<void> {
    if (!enabled) throw notConfigured();
    if (events.length === 0) return;
    return enqueueReject(q, events);
  }

  function validateInput(e: SiemEventInput): void {
    if (!EVENT_TYPE_RE.test(e.eventType) || e.eventType.length > 128)
      throw new Error(`invalid SIEM event type ${JSON.stringify(e.eventType.slice(0, 64))}`);
    if (!SEVERITIES.includes(e.severity)) throw new Error('invalid SIEM severity');
  }

  async function sendBatch(inputs: readonly SiemEventInput[], q?: Queryable): Promise<string[]> {
    if (!enabled) throw notConfigured();
    inputs.forEach(validateInput);
    const t = clock.now();
    const events = inputs.map((i) => normalizeEvent(i, t));
    if (q) await enqueue(q, events);
    else await withTransaction(pool, (c) => enqueue(c, events));
    return events.map((e) => e.id);
  }

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
    depthEstimate = Math.max(0, depthEstimate - delivered.length - deadCount);
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
    let pending: Promise<void> | null = null;
    let lostLogged = false;
    let stopped = false;
    const timer = setInterval(
      () => {
        if (pending || stopped) return;
        pending = withSiemWorker(pool, (c) => repo.renewLease(c, seqs, instanceId, new Date(clock.now() + leaseMs)))
          .then((held) => {
            if (held < seqs.length && !lostLogged) {
              lostLogged = true;
              log.warn('SIEM claim expired before renewal; another instance may deliver these events too', {
                claimed: seqs.length,
                held,
              });
            }
          })
          .catch((err: Error) => void log.warn('SIEM claim renewal failed', { err: err.message }))
          .finally(() => {
            pending = null;
          });
      },
      Math.max(10, Math.floor(leaseMs / 3)),
    );
    timer.unref();
    return {
      async stop() {
        stopped = true;
        clearInterval(timer);
        if (pending) await pending;
      },
    };
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

  async function trimQueue(): Promise<string[]> {
    const moved = await withSiemWorker(pool, (c) => repo.trimQueue(c, maxQueue, now()));
    if (moved.length > 0) {
      metrics.deadLettered.inc({ reason: 'queue_full' }, moved.length);
      log.warn('SIEM queue over its bound: oldest non-critical events moved to the dead letter', {
        count: moved.length,
        maxQueue,
      });
    }
    return moved;
  }

  async function tick(): Promise<void> {
    if (stopping) return;
    if (running) {
      again = true;
      return;
    }
    again = false;
    enqueuedSinceTick = 0;
    running = (async () => {
      try {
        await trimQueue();
        for (let i = 0; i < MAX_BATCHES_PER_TICK && !stopping; i++) {
          const r = await flushOnce();
          if (r.claimed < batchSize || r.delivered === 0) break;
        }
        depthEstimate = await withSiemWorker(pool, (c) => repo.countOutboxCapped(c, maxQueue));
        metrics.queueDepth.set(depthEstimate);
      } catch (err) {
        log.warn('SIEM worker tick failed', { err: (err as Error).message });
      }
    })();
    try {
      await running;
    } finally {
      running = null;
    }
    schedule(again ? 0 : config.siem.flushIntervalMs);
  }

  function schedule(ms: number): void {
    if (!started || stopping) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      void tick();
    }, ms);
    timer.unref();
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

  const service: SiemService = {
    enabled,
    provider,
    instanceId,
    enqueue,
    async sendEvent(event, q) {
      const [id] = await sendBatch([event], q);
      return id as string;
    },
    sendBatch,
    async sendAlert(alertType, severity, message, opts = {}) {
      if (!/^[a-z][a-z0-9_]{0,63}$/.test(alertType))
        throw new Error('alert type must be lower-case letters, digits and underscores');
      if (!SEVERITIES.includes(severity)) throw new Error('invalid alert severity');
      const event = {
        tenantId: opts.tenantId ?? '_system',
        userId: opts.userId ?? null,
        action: `security.alert.${alertType}`,
        resourceType: opts.resourceType ?? 'security_alert',
        resourceId: opts.resourceId ?? alertType,
        after: { alertType, message, ...(opts.details ?? {}) },
        result: 'success' as const,
        severity,
        ipAddress: opts.ipAddress ?? null,
        userAgent: opts.userAgent ?? null,
        requestId: opts.requestId ?? null,
      };
      const recorded = await audit.record(event, opts.q);
      return { eventId: auditEventId(recorded.id), auditLogId: recorded.id };
    },
    async submitFromRequest(req, inputs, q) {
      if (!enabled) throw notConfigured();
      const auth = req.auth;
      if (!auth) throw new Error('submitFromRequest without authentication');
      const t = clock.now();
      const events = inputs.map((i) =>
        normalizeEvent(
          {
            tenantId: auth.tenantId,
            eventType: i.eventType,
            severity: i.severity,
            message: i.message,
            details: i.details ?? null,
            time: i.occurredAt ? new Date(i.occurredAt) : undefined,
            outcome: i.outcome ?? null,
            resourceType: i.resourceType ?? null,
            resourceId: i.resourceId ?? null,
            origin: 'api',
            userId: auth.userId,
            ipAddress: req.ctx.ip ?? null,
            userAgent: req.ctx.userAgent ?? null,
            requestId: req.ctx.requestId,
          },
          t,
        ),
      );
      // In the caller's tenant transaction when given (Idempotency-Key), else in its own.
      const inTx = (fn: (c: Queryable) => Promise<void>): Promise<void> =>
        q ? fn(q) : withTenant(pool, auth.tenantId, fn);
      await inTx(async (c) => {
        await enqueue(c, events);
        await audit.recordFromRequest(
          req,
          {
            action: 'audit.siem.submitted',
            resourceType: 'siem_event',
            resourceId: events.length === 1 ? (events[0] as SiemEvent).id : `${events.length} events`,
            after: {
              count: events.length,
              eventIds: events.map((e) => e.id),
              eventTypes: [...new Set(events.map((e) => e.eventType))].slice(0, 20),
            },
            severity: 'low',
          },
          c,
        );
      });
      return events.map((e) => e.id);
    },
    async healthCheck() {
      if (!connector)
        return { provider: null, reachable: false, healthy: false, error: 'SIEM_PROVIDER is not configured' };
      let reachable = true;
      let error: string | null = null;
      try {
        await connector.healthCheck();
      } catch (err) {
        reachable = false;
        error = (err as Error).message;
      }
      const status = await service.getQueueStatus(null);
      return { provider, reachable, healthy: reachable && status.healthy, error: error ?? status.lastError };
    },
    async getQueueStatus(tenantId) {
      // The worker rows and the global bound span tenants (the tenant's own counts filter by tenant).
      const { row, total } = await withSiemWorker(pool, async (c) => {
        const r = await repo.queueStatus(c, tenantId ?? null);
        return { row: r, total: tenantId ? await repo.countOutboxCapped(c, maxQueue) : r.queued };
      });
      depthEstimate = Math.min(total, maxQueue);
      const errorIsCurrent =
        row.last_error !== null &&
        row.last_error_at !== null &&
        (row.last_flush_at === null || row.last_error_at >= row.last_flush_at);
      const lastError = !enabled
        ? 'SIEM_PROVIDER is not configured'
        : errorIsCurrent
          ? row.last_error
          : total >= maxQueue
            ? 'queue full'
            : null;
      return {
        queuedEvents: row.queued,
        deadLetter: row.dead,
        lastFlushAt: row.last_flush_at ? row.last_flush_at.toISOString() : null,
        lastError,
        healthy: enabled && lastError === null,
      };
    },
    flushOnce,
    async syncSettings() {
      await repo.setForwarding(pool, enabled);
    },
    trimQueue,
    async start() {
      await service.syncSettings();
      if (!enabled || started) return;
      started = true;
      stopping = false;
      depthEstimate = await withSiemWorker(pool, (c) => repo.countOutboxCapped(c, maxQueue)).catch(() => 0);
      await repo.deleteStaleWorkers(pool, new Date(clock.now() - 7 * 86_400_000)).catch(() => undefined);
      schedule(0);
      if (config.siem.flushIntervalMs > FILL_CHECK_MS) {
        fillTimer = setInterval(() => {
          if (running || stopping) return;
          withSiemWorker(pool, (c) => repo.countFreshCapped(c, batchSize))
            .then(async (n) => {
              // A full batch waits, or a claim of a dead instance ran out: flush now.
              if (n >= batchSize || (await withSiemWorker(pool, (c) => repo.hasExpiredClaims(c, now())))) schedule(0);
            })
            .catch((err: Error) => log.debug('SIEM fill check failed', { err: err.message }));
        }, FILL_CHECK_MS);
        fillTimer.unref();
      }
      log.info('SIEM forwarder started', {
        batchSize,
        flushIntervalMs: config.siem.flushIntervalMs,
        maxQueue,
        instanceId,
      });
    },
    async stop() {
      stopping = true;
      if (timer) clearTimeout(timer);
      timer = null;
      if (fillTimer) clearInterval(fillTimer);
      fillTimer = null;
      if (running) await running.catch(() => undefined);
      if (started) {
        await withSiemWorker(pool, (c) => repo.releaseClaims(c, instanceId))
          .then((n) => {
            if (n > 0) log.info('SIEM claims released for other instances', { count: n });
          })
          .catch((err: Error) => log.warn('could not release SIEM claims', { err: err.message }));
      }
      started = false;
      await connector?.close().catch(() => undefined);
    },
  };
  return service;
}
