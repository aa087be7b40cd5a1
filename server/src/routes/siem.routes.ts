/**
 * SIEM forwarding and the audit archive:
 *   POST /audit/siem          admin (siem:write)    202 { success, queued, eventIds }
 *   GET  /siem/status         admin (siem:read)     200 { success, queuedEvents, deadLetter, lastFlushAt, lastError, healthy }
 *   POST /audit/blob-storage  admin (audit:export)  200 { success, created, blob: { name, sha256, count, firstId, lastId, … } }
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { Guards } from '../compose';
import { storableTimestamp } from '../lib/timestamps';
import { actorOf } from '../middleware/actor';
import { idempotentRoutes } from '../middleware/idempotency';
import { rejectQuery, validBody, validate } from '../middleware/input-validation';
import { ErrorResponse } from '../openapi/common';
import { describeRoute } from '../openapi/registry';
import { EVENT_TYPE_RE, MAX_DETAILS_BYTES, MAX_MESSAGE_CHARS, hasReservedPrefix } from '../services/siem/events';
import { RESERVED_PREFIXES } from '../services/audit/catalog';
import { SEVERITIES } from '../services/audit/types';
import type { ArchiveService } from '../services/archive/service';
import type { IdempotencyService } from '../services/idempotency/service';
import type { ApiEventInput, SiemService } from '../services/siem/service';

const MAX_EVENTS_PER_REQUEST = 100;

// NUL characters and lone surrogates are refused for every body by middleware/body.ts.
const text = (max: number) => z.string().min(1).max(max);

const siemEventSchema = z.strictObject({
  eventType: z
    .string()
    .min(3)
    .max(128)
    .regex(EVENT_TYPE_RE, 'must be dotted lower-case words, e.g. vehicle.geofence.breach')
    .refine((v) => !hasReservedPrefix(v), `must not start with a reserved prefix (${RESERVED_PREFIXES.join(' ')})`),
  severity: z.enum(SEVERITIES),
  message: text(MAX_MESSAGE_CHARS),
  details: z
    .record(z.string().max(128), z.unknown())
    .refine(
      (v) => Buffer.byteLength(JSON.stringify(v)) <= MAX_DETAILS_BYTES,
      `must serialize to at most ${MAX_DETAILS_BYTES} bytes`,
    )
    .optional(),
  occurredAt: storableTimestamp.optional(),
  outcome: z.enum(['success', 'failure', 'denied']).optional(),
  resourceType: text(128).optional(),
  resourceId: text(256).optional(),
});

const submitSchema = z.strictObject({
  events: z.array(siemEventSchema).min(1).max(MAX_EVENTS_PER_REQUEST),
});

const exportSchema = z
  .strictObject({
    from: storableTimestamp.optional(),
    to: storableTimestamp.optional(),
  })
  .refine((v) => !v.from || !v.to || Date.parse(v.from) < Date.parse(v.to), {
    message: '`from` must be before `to`',
    path: ['from'],
  });

// ---- API description (server/src/openapi)
const P = '/api/v1/security';
describeRoute({
  method: 'post',
  path: `${P}/audit/siem`,
  operationId: 'submitSiemEvents',
  summary: 'Queue events for the SIEM',
  description:
    'The events are in the durable outbox (with an audit.siem.submitted audit row) and reach the SIEM at the next flush. 503 when no SIEM is configured or the queue is full (Retry-After). Also callable with an API key holding siem:write; send an Idempotency-Key to make retries safe.',
  tags: ['siem'],
  security: ['bearerAuth', 'apiKey'],
  permission: 'siem:write',
  idempotent: true,
  request: {
    body: submitSchema,
    bodyExample: {
      events: [
        {
          eventType: 'vehicle.geofence.breach',
          severity: 'high',
          message: 'V-42 left the depot',
          details: { vehicle: 'V-42' },
        },
      ],
    },
  },
  responses: {
    202: {
      description: 'Queued.',
      schema: z.strictObject({ success: z.literal(true), queued: z.int().min(1), eventIds: z.array(z.uuid()) }),
    },
  },
});
describeRoute({
  method: 'get',
  path: `${P}/siem/status`,
  operationId: 'getSiemStatus',
  summary: "The forwarder's state for your tenant",
  tags: ['siem'],
  security: ['bearerAuth'],
  permission: 'siem:read',
  responses: {
    200: {
      description: 'Counts are for your tenant.',
      schema: z.strictObject({
        success: z.literal(true),
        queuedEvents: z.int().min(0),
        deadLetter: z.int().min(0),
        lastFlushAt: z.string().nullable(),
        lastError: z.string().nullable(),
        healthy: z.boolean(),
      }),
    },
  },
});
describeRoute({
  method: 'post',
  path: `${P}/audit/blob-storage`,
  operationId: 'exportAuditArchive',
  summary: 'Archive audit rows to immutable blob storage',
  description:
    'Idempotent: a range already exported answers the same blob with created: false. 409 when the tenant has no audit rows yet or `from` would leave older rows unarchived; 503 when no archive is configured or the storage fails.',
  tags: ['siem'],
  security: ['bearerAuth'],
  permission: 'audit:export',
  request: { body: exportSchema, bodyOptional: true },
  responses: {
    200: {
      description: 'The export.',
      schema: z.strictObject({
        success: z.literal(true),
        created: z.boolean(),
        blob: z.strictObject({
          name: z.string(),
          container: z.string(),
          sha256: z.string(),
          digest: z.string(),
          previousDigest: z.string(),
          count: z.int().min(0),
          firstId: z.string(),
          lastId: z.string(),
          seq: z.int().min(1),
          immutableUntil: z.string().nullable(),
        }),
      }),
    },
    409: { description: 'CONFLICT: nothing to archive yet, or the range would leave a gap.', schema: ErrorResponse },
  },
});

export interface SiemRouterDeps {
  guards: Pick<Guards, 'requireAuth' | 'requireAuthOrApiKey' | 'requirePermission'>;
  siem: SiemService;
  archive: ArchiveService;
  idempotency: IdempotencyService;
}

export function siemRouter(deps: SiemRouterDeps, router: Router = Router()): Router {
  const { requireAuth, requireAuthOrApiKey, requirePermission } = deps.guards;
  const { siem, archive } = deps;
  const idempotency = idempotentRoutes(deps.idempotency);

  router.post(
    '/audit/siem',
    ...requireAuthOrApiKey,
    requirePermission('siem:write'),
    idempotency.checkKey,
    validate({ body: submitSchema }),
    async function submitSiemEvents(req: Request, res: Response) {
      const body = validBody<{ events: ApiEventInput[] }>(req);
      const actor = actorOf(req);
      await idempotency.respond(req, res, 'POST /audit/siem', async (q) => {
        const eventIds = await siem.submitAs(actor, body.events, q);
        return { status: 202, body: { success: true, queued: eventIds.length, eventIds } };
      });
    },
  );

  router.get(
    '/siem/status',
    ...requireAuth,
    requirePermission('siem:read'),
    rejectQuery,
    async function siemStatus(req: Request, res: Response) {
      const status = await siem.getQueueStatus(actorOf(req).tenantId);
      res.json({ success: true, ...status });
    },
  );

  router.post(
    '/audit/blob-storage',
    ...requireAuth,
    requirePermission('audit:export'),
    validate({ body: exportSchema }),
    async function exportAuditArchive(req: Request, res: Response) {
      const body = validBody<{ from?: string; to?: string }>(req);
      const actor = actorOf(req);
      const result = await archive.exportTenant(actor.tenantId, {
        from: body.from ? new Date(body.from) : null,
        to: body.to ? new Date(body.to) : null,
        actor,
      });
      res.json({ success: true, created: result.created, blob: result.blob });
    },
  );

  return router;
}
