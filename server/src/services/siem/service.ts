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
import type { Actor } from '../../domain/actor';
import type { Config } from '../../config';
import type { Pool, Queryable } from '../../db/pool';
import type { Clock } from '../../lib/clock';
import type { Logger } from '../../lib/logger';
import type { AuditService } from '../audit/service';
import type { Severity } from '../audit/types';
import { createConnector } from './connectors';
import type { SiemContext } from './context';
import { createSiemDelivery } from './delivery';
import { createSiemEnqueue } from './enqueue';
import type { SiemMetrics } from './metrics';
import { createSiemScheduler } from './scheduler';
import { createSiemStatus } from './status';
import type { QueueStatus, SiemConnector, SiemEvent, SiemEventInput } from './types';

/**
 * How long a claim lasts without renewal. The delivering worker renews it every third of this
 * while the batch is in flight (a slow SIEM keeps its batch); a claim of a dead or hung
 * instance runs out within one lease and another instance's worker takes the events over
 * (its fill check looks for expired claims every second).
 */
export const DEFAULT_LEASE_MS = 30_000;

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
  /** POST /audit/siem: events `actor` submitted + an audit.siem.submitted row, one transaction. */
  submitAs(actor: Actor, events: readonly ApiEventInput[], q?: Queryable): Promise<string[]>;
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

/** Audit rows the audit_logs trigger queues (migration 040 mirrors this rule in SQL). */
export function isForwarded(action: string, severity: Severity): boolean {
  if (action.startsWith('audit.siem.')) return false;
  return severity === 'high' || severity === 'critical' || action.startsWith('security.alert.');
}

/** Composes the forwarder from its parts: enqueue, delivery, worker scheduling and status. */
export function createSiemService(deps: SiemServiceDeps): SiemService {
  const { config, clock } = deps;
  const connector =
    deps.connector !== undefined ? deps.connector : createConnector(config, { timeoutMs: deps.connectorTimeoutMs });
  const provider = connector?.provider ?? null;
  const ctx: SiemContext = {
    pool: deps.pool,
    config,
    clock,
    audit: deps.audit,
    metrics: deps.metrics,
    connector,
    enabled: connector !== null,
    provider,
    batchSize: config.siem.batchSize,
    maxQueue: config.siem.maxQueue,
    leaseMs: deps.leaseMs ?? DEFAULT_LEASE_MS,
    random: deps.random ?? Math.random,
    instanceId: deps.instanceId ?? `${os.hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`,
    log: deps.logger.child({ component: 'siem', provider }),
    now: () => new Date(clock.now()),
    state: { depthEstimate: 0 },
  };
  const delivery = createSiemDelivery(ctx);
  const scheduler = createSiemScheduler(ctx, delivery);
  return {
    enabled: ctx.enabled,
    provider,
    instanceId: ctx.instanceId,
    ...createSiemEnqueue(ctx, scheduler.nudge),
    ...createSiemStatus(ctx),
    flushOnce: delivery.flushOnce,
    syncSettings: scheduler.syncSettings,
    trimQueue: scheduler.trimQueue,
    start: scheduler.start,
    stop: scheduler.stop,
  };
}
