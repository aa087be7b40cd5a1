/**
 * Enqueueing SIEM events into the outbox, always in the transaction of the change they report,
 * within the queue bound (SIEM_MAX_QUEUE; see service.ts).
 */
import type { Queryable } from '../../db/pool';
import { afterCommit, asSiemWorker, withTenant, withTransaction } from '../../db/transaction';
import { UnavailableError } from '../../lib/errors';
import type { SiemContext } from './context';
import { auditEventId } from './event-id';
import { EVENT_TYPE_RE, normalizeEvent } from './events';
import * as repo from './repository';
import type { SiemService } from './service';
import type { SiemEvent, SiemEventInput } from './types';
import { SYSTEM_TENANT } from '../audit/catalog';
import { SEVERITIES } from '../audit/types';

export type SiemEnqueue = Pick<SiemService, 'enqueue' | 'sendEvent' | 'sendBatch' | 'sendAlert' | 'submitAs'>;

export function notConfigured(): UnavailableError {
  return new UnavailableError('No SIEM is configured (SIEM_PROVIDER, SIEM_ENDPOINT_URL).');
}

/** `nudge(n)`: n events were enqueued here (the scheduler flushes early once a batch is full). */
export function createSiemEnqueue(ctx: SiemContext, nudge: (n: number) => void): SiemEnqueue {
  const { pool, config, clock, audit, metrics, enabled, maxQueue, state, now } = ctx;

  async function enqueueReject(q: Queryable, events: readonly SiemEvent[]): Promise<void> {
    // The bound counts every tenant's events (row-level security, migration 097): worker scope.
    return asSiemWorker(q, () => enqueueBounded(q, events));
  }

  async function enqueueBounded(q: Queryable, events: readonly SiemEvent[]): Promise<void> {
    // One submitter at a time near the bound: the count and the insert are then exact.
    await repo.lockOutboxBound(q);
    const depth = await repo.countOutboxCapped(q, maxQueue);
    state.depthEstimate = depth;
    if (depth + events.length > maxQueue) {
      throw new UnavailableError('The SIEM queue is full; try again later.', {
        retryAfterSeconds: Math.max(1, Math.ceil(config.siem.flushIntervalMs / 1000)),
        internalReason: `siem outbox holds ${depth} of ${maxQueue} events`,
      });
    }
    await repo.insertOutbox(q, events, now());
    state.depthEstimate += events.length;
    // Counted once the events are really in the outbox: a caller's transaction may still roll back.
    afterCommit(q, () => {
      for (const e of events) metrics.enqueued.inc({ origin: e.origin });
    });
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

  return {
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
        tenantId: opts.tenantId ?? SYSTEM_TENANT,
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
    async submitAs(actor, inputs, q) {
      if (!enabled) throw notConfigured();
      const t = clock.now();
      const events = inputs.map((i) =>
        normalizeEvent(
          {
            tenantId: actor.tenantId,
            eventType: i.eventType,
            severity: i.severity,
            message: i.message,
            details: i.details ?? null,
            time: i.occurredAt ? new Date(i.occurredAt) : undefined,
            outcome: i.outcome ?? null,
            resourceType: i.resourceType ?? null,
            resourceId: i.resourceId ?? null,
            origin: 'api',
            // An API key is named in the user field of the SIEM event (the audit row has api_key_id).
            userId: actor.userId ?? actor.apiKeyId,
            ipAddress: actor.ip,
            userAgent: actor.userAgent,
            requestId: actor.requestId,
          },
          t,
        ),
      );
      // In the caller's tenant transaction when given (Idempotency-Key), else in its own.
      const inTx = (fn: (c: Queryable) => Promise<void>): Promise<void> =>
        q ? fn(q) : withTenant(pool, actor.tenantId, fn);
      await inTx(async (c) => {
        await enqueue(c, events);
        await audit.recordAs(
          actor,
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
  };
}
