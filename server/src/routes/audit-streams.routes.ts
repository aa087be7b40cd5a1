/**
 * Tenant audit streams (CONTRACT §13), admin of the tenant:
 *   PUT    /audit/streams/{name}       200 { success, stream }   create or replace
 *   GET    /audit/streams              200 { success, streams }
 *   DELETE /audit/streams/{name}       200 { success }
 *   POST   /audit/streams/{name}/test  202 { success, eventId }
 *   GET    /audit/streams/status       200 { success, streams: [{ name, queued, deadLetter, lastDeliveredAt, lastError, healthy }] }
 * Credentials are accepted on PUT and never returned. PUT, DELETE and test need a step-up
 * (requireStepUp, CONTRACT §11/§13).
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { Guards } from '../compose';
import { AppError } from '../lib/errors';
import { actorOf } from '../middleware/actor';
import { rejectQuery, validBody, validParams, validate } from '../middleware/input-validation';
import { ErrorResponse } from '../openapi/common';
import { describeRoute } from '../openapi/registry';
import { SEVERITIES } from '../services/audit/types';
import { EVENT_SCHEMAS } from '../services/siem/schemas';
import { STREAM_PROVIDERS, type AuditStreams, type StreamInput } from '../services/siem/streams/service';

const secretText = z.string().min(1).max(4096);

const streamNameParams = z.strictObject({
  name: z.string().regex(/^[a-z0-9-]{1,64}$/, 'must be 1-64 of a-z, 0-9 and -'),
});

const putStreamSchema = z.strictObject({
  provider: z.enum(STREAM_PROVIDERS),
  endpointUrl: z.string().min(1).max(2048).url('must be an absolute URL'),
  schema: z.enum(EVENT_SCHEMAS).default('native'),
  minSeverity: z.enum(SEVERITIES).default('low'),
  credentials: z.strictObject({ apiKey: secretText.optional(), secret: secretText.optional() }).optional(),
});

// ---- API description (server/src/openapi)
const P = '/api/v1/security';
const StreamView = z
  .strictObject({
    name: z.string(),
    provider: z.enum(STREAM_PROVIDERS),
    endpointUrl: z.string(),
    schema: z.enum(EVENT_SCHEMAS),
    minSeverity: z.enum(SEVERITIES),
    createdAt: z.string().meta({ description: 'ISO 8601.' }),
  })
  .meta({ id: 'AuditStream', description: 'Credentials are never returned.' });
const unavailable503 = {
  description: 'SERVICE_UNAVAILABLE: audit streams are not available (not configured), or the database is unavailable.',
  schema: ErrorResponse,
};
const notFound404 = { description: 'NOT_FOUND: no stream of this name in your tenant.', schema: ErrorResponse };
describeRoute({
  method: 'put',
  path: `${P}/audit/streams/{name}`,
  operationId: 'putAuditStream',
  summary: "Create or replace one of your tenant's audit streams",
  description:
    "The stream receives your tenant's audit rows at or above minSeverity, in its schema. Credentials: apiKey for splunk/datadog/elastic, secret for webhook; stored encrypted, never returned. " +
    'Destinations that are not https:// (production) or that resolve to a private, loopback or link-local address are refused (400). At most 10 streams a tenant (409).',
  tags: ['siem'],
  security: ['bearerAuth'],
  permission: 'siem:write',
  stepUp: true,
  request: {
    params: streamNameParams,
    body: putStreamSchema,
    bodyExample: {
      provider: 'splunk',
      endpointUrl: 'https://splunk.example.com:8088/services/collector/event',
      schema: 'ocsf',
      minSeverity: 'medium',
      credentials: { apiKey: '…' },
    },
  },
  responses: {
    200: { description: 'The stream.', schema: z.strictObject({ success: z.literal(true), stream: StreamView }) },
    409: { description: 'CONFLICT: the tenant already has the maximum number of streams.', schema: ErrorResponse },
    503: unavailable503,
  },
});
describeRoute({
  method: 'get',
  path: `${P}/audit/streams`,
  operationId: 'listAuditStreams',
  summary: "Your tenant's audit streams",
  tags: ['siem'],
  security: ['bearerAuth'],
  permission: 'siem:write',
  responses: {
    200: {
      description: 'The streams.',
      schema: z.strictObject({ success: z.literal(true), streams: z.array(StreamView) }),
    },
    503: unavailable503,
  },
});
describeRoute({
  method: 'delete',
  path: `${P}/audit/streams/{name}`,
  operationId: 'deleteAuditStream',
  summary: 'Delete an audit stream (its queued events are dropped)',
  tags: ['siem'],
  security: ['bearerAuth'],
  permission: 'siem:write',
  stepUp: true,
  request: { params: streamNameParams },
  responses: {
    200: { description: 'Deleted.', schema: z.strictObject({ success: z.literal(true) }) },
    404: notFound404,
    503: unavailable503,
  },
});
describeRoute({
  method: 'post',
  path: `${P}/audit/streams/{name}/test`,
  operationId: 'testAuditStream',
  summary: 'Queue a test event for an audit stream',
  tags: ['siem'],
  security: ['bearerAuth'],
  permission: 'siem:write',
  stepUp: true,
  request: { params: streamNameParams },
  responses: {
    202: { description: 'Queued.', schema: z.strictObject({ success: z.literal(true), eventId: z.uuid() }) },
    404: notFound404,
    503: unavailable503,
  },
});
describeRoute({
  method: 'get',
  path: `${P}/audit/streams/status`,
  operationId: 'getAuditStreamStatus',
  summary: "Delivery state of your tenant's audit streams",
  tags: ['siem'],
  security: ['bearerAuth'],
  permission: 'siem:write',
  responses: {
    200: {
      description: 'One entry a stream.',
      schema: z.strictObject({
        success: z.literal(true),
        streams: z.array(
          z.strictObject({
            name: z.string(),
            queued: z.int().min(0),
            deadLetter: z.int().min(0),
            lastDeliveredAt: z.string().nullable(),
            lastError: z.string().nullable(),
            healthy: z.boolean(),
          }),
        ),
      }),
    },
    503: unavailable503,
  },
});

function unavailable(): AppError {
  return new AppError('SERVICE_UNAVAILABLE', 503, 'Audit streams are not available.');
}

export interface AuditStreamsRouterDeps {
  guards: Pick<Guards, 'requireAuth' | 'requirePermission' | 'requireStepUp'>;
  /** null when audit streams are not available (503). */
  streams: AuditStreams | null;
}

export function auditStreamsRouter(deps: AuditStreamsRouterDeps, router: Router = Router()): Router {
  const { requireAuth, requirePermission } = deps.guards;
  const maybe = deps.streams;
  const streams = (): AuditStreams => {
    if (!maybe) throw unavailable();
    return maybe;
  };
  const admin = [...requireAuth, requirePermission('siem:write')];
  // Changes to a stream (PUT, DELETE, test) need a step-up, after the permission check.
  const streamStepUp = [deps.guards.requireStepUp];

  router.get(
    '/audit/streams/status',
    ...admin,
    rejectQuery,
    async function auditStreamStatus(req: Request, res: Response) {
      res.json({ success: true, streams: await streams().status(actorOf(req).tenantId) });
    },
  );

  router.get('/audit/streams', ...admin, rejectQuery, async function listAuditStreams(req: Request, res: Response) {
    res.json({ success: true, streams: await streams().list(actorOf(req).tenantId) });
  });

  router.put(
    '/audit/streams/:name',
    ...admin,
    ...streamStepUp,
    validate({ params: streamNameParams, body: putStreamSchema }),
    async function putAuditStream(req: Request, res: Response) {
      const { name } = validParams<{ name: string }>(req);
      const { stream } = await streams().put(actorOf(req), name, validBody<StreamInput>(req));
      res.json({ success: true, stream });
    },
  );

  router.delete(
    '/audit/streams/:name',
    ...admin,
    ...streamStepUp,
    validate({ params: streamNameParams }),
    async function deleteAuditStream(req: Request, res: Response) {
      await streams().remove(actorOf(req), validParams<{ name: string }>(req).name);
      res.json({ success: true });
    },
  );

  router.post(
    '/audit/streams/:name/test',
    ...admin,
    ...streamStepUp,
    validate({ params: streamNameParams }),
    async function testAuditStream(req: Request, res: Response) {
      const eventId = await streams().sendTest(actorOf(req), validParams<{ name: string }>(req).name);
      res.status(202).json({ success: true, eventId });
    },
  );

  return router;
}
