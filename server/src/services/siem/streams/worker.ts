/**
 * Delivery of tenant audit streams. Every stream is its own queue (audit_stream_outbox rows of
 * its id, in seq order) with its own backoff, lease, dead letter and status, and is delivered
 * by its own task: a tick claims due streams (FOR UPDATE SKIP LOCKED, with a lease, so
 * instances share the work) and starts one task per stream without waiting for any of them.
 * A blackholed or slow destination therefore holds only its own task (bounded by the HTTP
 * timeout), never another tenant's stream, and never the platform SOC's forwarder, which
 * is a separate worker on a separate queue. At most `concurrency` streams are in flight per
 * instance; a stream that fails waits out capped exponential backoff with full jitter
 * (honouring Retry-After) before its next claim.
 */
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Config } from '../../../config';
import type { Pool } from '../../../db/pool';
import { withSiemWorker, withTenant } from '../../../db/transaction';
import { periodic } from '../../../lib/periodic';
import type { Clock } from '../../../lib/clock';
import type { Logger } from '../../../lib/logger';
import type { AuditService } from '../../audit/service';
import { backoffDelayMs } from '../backoff';
import { createDatadogConnector } from '../connectors/datadog';
import { createElasticConnector } from '../connectors/elastic';
import type { HttpConnectorOptions } from '../connectors/http';
import { createSplunkConnector } from '../connectors/splunk';
import { createWebhookConnector } from '../connectors/webhook';
import { auditEventId } from '../event-id';
import { selectAuditRecordsById } from '../../audit/repository';
import { eventFromAuditRecord } from '../events';
import type { SiemConnector, SiemEvent } from '../types';
import * as repo from './repository';
import type { AuditStreams, StreamCredentials } from './service';

const STREAM_BATCH_SIZE = 100;
const MAX_BATCHES_PER_TASK = 20;
const DEFAULT_STREAM_CONCURRENCY = 16;
/** Events one stream may hold while its SIEM is unreachable; beyond it the oldest go to its dead letter. */
const STREAM_MAX_QUEUE = 100_000;

export interface StreamWorkerDeps {
  pool: Pool;
  config: Config;
  logger: Logger;
  clock: Clock;
  audit: AuditService;
  streams: AuditStreams;
  connectorTimeoutMs?: number;
  leaseMs?: number;
  concurrency?: number;
  /** Per-stream queue bound (default STREAM_MAX_QUEUE). */
  maxQueue?: number;
  intervalMs?: number;
  random?: () => number;
  instanceId?: string;
  /** Builds a connector for a stream (tests); default by provider. */
  connectorFactory?: (row: repo.StreamRow, credentials: StreamCredentials, opts: HttpConnectorOptions) => SiemConnector;
}

export interface StreamWorker {
  /** Claims due streams and starts their delivery tasks (does not wait for them). */
  tick(): Promise<number>;
  /** Waits until every delivery task of this instance has finished. */
  drain(): Promise<void>;
  start(): void;
  stop(): Promise<void>;
}

function defaultStreamConnector(
  row: repo.StreamRow,
  credentials: StreamCredentials,
  opts: HttpConnectorOptions,
): SiemConnector {
  switch (row.provider) {
    case 'splunk':
      return createSplunkConnector(opts);
    case 'datadog':
      return createDatadogConnector(opts);
    case 'elastic':
      return createElasticConnector(opts);
    case 'webhook':
      return createWebhookConnector({ ...opts, apiKey: credentials.secret ?? null });
    default:
      throw new Error(`unsupported stream provider ${row.provider}`);
  }
}

export function createStreamWorker(deps: StreamWorkerDeps): StreamWorker {
  const { pool, config, clock, audit, streams } = deps;
  const log = deps.logger.child({ component: 'audit-streams' });
  const timeoutMs = deps.connectorTimeoutMs ?? 10_000;
  const leaseMs = deps.leaseMs ?? Math.max(60_000, timeoutMs * 4);
  // Each task holds at most one pool client at a time: streams use at most a quarter of the
  // pool, so a crowd of slow tenant destinations cannot starve requests or the platform forwarder.
  const concurrency =
    deps.concurrency ?? Math.max(2, Math.min(DEFAULT_STREAM_CONCURRENCY, Math.floor(config.database.poolSize / 4)));
  const maxQueue = deps.maxQueue ?? STREAM_MAX_QUEUE;
  const intervalMs = deps.intervalMs ?? Math.min(config.siem.flushIntervalMs, 5_000);
  const random = deps.random ?? Math.random;
  const instanceId = deps.instanceId ?? `${os.hostname()}:${process.pid}:streams:${randomBytes(4).toString('hex')}`;
  const factory = deps.connectorFactory ?? defaultStreamConnector;
  const inflight = new Map<string, Promise<void>>();
  const connectors = new Map<string, { version: string; connector: SiemConnector }>();
  let stopping = false;
  let ticking: Promise<number> | null = null;
  let saturated = false;

  async function connectorFor(row: repo.StreamRow): Promise<SiemConnector> {
    const version = row.updated_at.toISOString();
    const cached = connectors.get(row.id);
    if (cached && cached.version === version) return cached.connector;
    if (cached) await cached.connector.close().catch(() => undefined);
    const credentials = await streams.credentialsOf(row);
    const connector = factory(row, credentials, {
      endpointUrl: row.endpoint_url,
      apiKey: credentials.apiKey ?? null,
      timeoutMs,
      schema: row.schema,
      environment: config.env,
      guardAddresses: !config.siem.allowPrivateDestinations,
    });
    connectors.set(row.id, { version, connector });
    return connector;
  }

  async function resolve(tenantId: string, rows: repo.StreamOutboxRow[]): Promise<Map<string, SiemEvent>> {
    const ids = rows.filter((r) => !r.payload && r.audit_log_id).map((r) => r.audit_log_id as string);
    const audits =
      ids.length > 0 ? await withTenant(pool, tenantId, (c) => selectAuditRecordsById(c, tenantId, ids)) : [];
    const byAudit = new Map(audits.map((a) => [a.id, eventFromAuditRecord(a)]));
    const out = new Map<string, SiemEvent>();
    for (const r of rows) {
      const e = r.payload ? (r.payload as SiemEvent) : byAudit.get(r.audit_log_id as string);
      if (e) out.set(r.seq, e);
    }
    return out;
  }

  /** Delivers one batch; returns 'more' when the batch was full and fully handled, 'done' or 'retry'. */
  async function deliverBatch(row: repo.StreamRow, claim: repo.ClaimedStream): Promise<'more' | 'done' | 'retry'> {
    const batch = await withTenant(pool, row.tenant_id, (c) => repo.selectStreamBatch(c, row.id, STREAM_BATCH_SIZE));
    if (batch.length === 0) return 'done';
    const events = await resolve(row.tenant_id, batch);
    const connector = await connectorFor(row);
    const list = batch.map((b) => events.get(b.seq)).filter((e): e is SiemEvent => e !== undefined);
    const report = list.length > 0 ? await connector.send(list) : { outcomes: new Map() };
    const at = new Date(clock.now());
    const done: string[] = [];
    const dead: repo.StreamDead[] = [];
    let retry: { reason: string; retryAfterMs?: number } | null = null;
    for (const b of batch) {
      const e = events.get(b.seq);
      if (!e) {
        dead.push({
          eventId: auditEventId(b.audit_log_id as string),
          auditLogId: b.audit_log_id,
          payload: null,
          reason: `audit row ${b.audit_log_id} not found`,
        });
        done.push(b.seq);
        continue;
      }
      const o = report.outcomes.get(e.id) ?? { kind: 'retry' as const, reason: `${row.provider}: no outcome reported` };
      if (o.kind === 'delivered') done.push(b.seq);
      else if (o.kind === 'dead') {
        dead.push({ eventId: e.id, auditLogId: b.audit_log_id, payload: b.payload ?? null, reason: o.reason });
        done.push(b.seq);
      } else
        retry = retry ?? {
          reason: o.reason,
          ...(o.retryAfterMs !== undefined ? { retryAfterMs: o.retryAfterMs } : {}),
        };
    }
    await withTenant(pool, row.tenant_id, async (c) => {
      await repo.deleteStreamRows(c, row.id, done);
      if (dead.length > 0) {
        await repo.insertStreamDead(c, row.id, row.tenant_id, at, dead);
        await audit.record(
          {
            tenantId: row.tenant_id,
            action: 'audit.stream.dead_letter',
            resourceType: 'audit_stream',
            resourceId: row.name,
            result: 'failure',
            severity: 'high',
            errorMessage: (dead[0] as repo.StreamDead).reason.slice(0, 2000),
            after: {
              stream: row.name,
              provider: row.provider,
              count: dead.length,
              eventIds: dead.map((d) => d.eventId).slice(0, 100),
            },
          },
          c,
        );
      }
      if (retry) {
        const nextAt = new Date(at.getTime() + backoffDelayMs(claim.attempts + 1, random, retry.retryAfterMs));
        await repo.recordStreamFailure(c, row.id, nextAt, retry.reason, at, instanceId);
        // A destination down for long must not grow the database without bound.
        const dropped = await repo.trimStream(c, row.id, maxQueue, row.tenant_id, at);
        if (dropped.length > 0) {
          await audit.record(
            {
              tenantId: row.tenant_id,
              action: 'audit.stream.dead_letter',
              resourceType: 'audit_stream',
              resourceId: row.name,
              result: 'failure',
              severity: 'high',
              errorMessage: `queue_full: ${dropped.length} oldest events dropped (bound ${maxQueue})`,
              after: {
                stream: row.name,
                provider: row.provider,
                count: dropped.length,
                eventIds: dropped.slice(0, 100),
              },
            },
            c,
          );
        }
      }
    });
    if (retry) {
      log.warn('audit stream delivery failed', {
        tenantId: row.tenant_id,
        stream: row.name,
        reason: retry.reason,
        delivered: done.length - dead.length,
      });
      return 'retry';
    }
    return batch.length >= STREAM_BATCH_SIZE ? 'more' : 'done';
  }

  /**
   * The lease is not renewed: a task takes another batch only while one more (its send bounded
   * by the HTTP timeout) still fits well inside it, so no other instance can claim the stream
   * and send the same rows while this one still delivers. The rest waits for the next claim.
   */
  async function runStream(claim: repo.ClaimedStream, leaseEnd: number): Promise<void> {
    try {
      const row = await withTenant(pool, claim.tenant_id, (c) =>
        repo.selectStreamById(c, claim.tenant_id, claim.stream_id),
      );
      if (!row) {
        // Deleted meanwhile (its state and queue went with it): drop its connector too.
        await connectors
          .get(claim.stream_id)
          ?.connector.close()
          .catch(() => undefined);
        connectors.delete(claim.stream_id);
        return;
      }
      for (let i = 0; i < MAX_BATCHES_PER_TASK && !stopping; i++) {
        if (i > 0 && clock.now() + 2 * timeoutMs > leaseEnd) break;
        const r = await deliverBatch(row, claim);
        if (r === 'retry') return;
        if (r === 'done') break;
      }
      await withTenant(pool, claim.tenant_id, (c) =>
        repo.recordStreamSuccess(c, claim.stream_id, new Date(clock.now()), instanceId),
      );
    } catch (err) {
      const reason = `stream: ${(err as Error).message}`.slice(0, 300);
      log.warn('audit stream task failed', { tenantId: claim.tenant_id, streamId: claim.stream_id, reason });
      const at = new Date(clock.now());
      await withTenant(pool, claim.tenant_id, (c) =>
        repo.recordStreamFailure(
          c,
          claim.stream_id,
          new Date(at.getTime() + backoffDelayMs(claim.attempts + 1, random)),
          reason,
          at,
          instanceId,
        ),
      ).catch((e: Error) => log.warn('could not record audit stream failure', { err: e.message }));
    }
  }

  async function tick(): Promise<number> {
    if (stopping) return 0;
    if (ticking) return ticking;
    ticking = (async () => {
      const free = concurrency - inflight.size;
      if (free <= 0) return 0;
      const t = clock.now();
      // Claiming spans tenants (row-level security, migration 098): the SIEM worker scope.
      const claims = await withSiemWorker(pool, (c) =>
        repo.claimStreams(c, instanceId, new Date(t + leaseMs), new Date(t), free, [...inflight.keys()]),
      );
      // Every slot taken: more streams may be due; claim again as soon as a slot frees up.
      saturated = claims.length === free;
      for (const claim of claims) {
        const task = runStream(claim, t + leaseMs).finally(() => {
          inflight.delete(claim.stream_id);
          if (saturated && !stopping)
            void tick().catch((err: Error) => log.warn('audit stream tick failed', { err: err.message }));
        });
        inflight.set(claim.stream_id, task);
      }
      return claims.length;
    })();
    try {
      return await ticking;
    } finally {
      ticking = null;
    }
  }

  const loop = periodic(tick, {
    intervalMs,
    onError: (err) => log.warn('audit stream tick failed', { err: (err as Error).message }),
  });

  return {
    tick,
    async drain() {
      while (inflight.size > 0) await Promise.allSettled([...inflight.values()]);
    },
    start() {
      stopping = false;
      loop.start();
    },
    async stop() {
      stopping = true;
      await loop.stop();
      // Closing the connectors first aborts requests to destinations that never answer.
      for (const { connector } of connectors.values()) await connector.close().catch(() => undefined);
      connectors.clear();
      await Promise.allSettled([...inflight.values()]);
      await withSiemWorker(pool, (c) => repo.releaseAllStreams(c, instanceId)).catch(() => undefined);
    },
  };
}
