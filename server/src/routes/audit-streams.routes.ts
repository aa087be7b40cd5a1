/**
 * Tenant audit streams (CONTRACT §13), admin of the tenant:
 *   PUT    /audit/streams/{name}       200 { success, stream }   create or replace
 *   GET    /audit/streams              200 { success, streams }
 *   DELETE /audit/streams/{name}       200 { success }
 *   POST   /audit/streams/{name}/test  202 { success, eventId }
 *   GET    /audit/streams/status       200 { success, streams: [{ name, queued, deadLetter, lastDeliveredAt, lastError, healthy }] }
 * Credentials are accepted on PUT and never returned.
 */
import { Router, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import type { Composition } from '../compose';
import { AppError } from '../lib/errors';
import { rejectQuery, validBody, validParams, validate } from '../middleware/input-validation';
import { EVENT_SCHEMAS } from '../services/siem/schemas';
import { STREAM_PROVIDERS, type AuditStreams, type StreamActor, type StreamInput } from '../services/siem/streams/service';

const secretText = z.string().min(1).max(4096);

export const streamNameParams = z.strictObject({
  name: z.string().regex(/^[a-z0-9-]{1,64}$/, 'must be 1-64 of a-z, 0-9 and -'),
});

export const putStreamSchema = z.strictObject({
  provider: z.enum(STREAM_PROVIDERS),
  endpointUrl: z.string().min(1).max(2048).url('must be an absolute URL'),
  schema: z.enum(EVENT_SCHEMAS).default('native'),
  minSeverity: z.enum(['low', 'medium', 'high', 'critical']).default('low'),
  credentials: z.strictObject({ apiKey: secretText.optional(), secret: secretText.optional() }).optional(),
});

/**
 * The hook for step-up authentication of stream changes: when step-up exists, its guard goes
 * here and every route that changes a stream (PUT, DELETE, test) runs it after the permission check.
 */
export const streamStepUp: RequestHandler[] = [];

function actorOf(req: Request): StreamActor {
  const auth = req.auth;
  if (!auth) throw new Error('audit stream route without authentication');
  return { tenantId: auth.tenantId, userId: auth.userId, ipAddress: req.ctx.ip ?? null, userAgent: req.ctx.userAgent ?? null, requestId: req.ctx.requestId };
}

function unavailable(): AppError {
  return new AppError('SERVICE_UNAVAILABLE', 503, 'Audit streams are not available.');
}

export function auditStreamsRouter(c: Composition, router: Router = Router()): Router {
  const { requireAuth, requirePermission } = c.guards;
  const maybe: AuditStreams | null = c.services.monitoring.streams;
  const streams = (): AuditStreams => {
    if (!maybe) throw unavailable();
    return maybe;
  };
  const admin = [...requireAuth, requirePermission('siem:write')];

  router.get('/audit/streams/status', ...admin, rejectQuery, async function auditStreamStatus(req: Request, res: Response) {
    res.json({ success: true, streams: await streams().status(actorOf(req).tenantId) });
  });

  router.get('/audit/streams', ...admin, rejectQuery, async function listAuditStreams(req: Request, res: Response) {
    res.json({ success: true, streams: await streams().list(actorOf(req).tenantId) });
  });

  router.put('/audit/streams/:name', ...admin, ...streamStepUp, validate({ params: streamNameParams, body: putStreamSchema }), async function putAuditStream(req: Request, res: Response) {
    const { name } = validParams<{ name: string }>(req);
    const { stream } = await streams().put(actorOf(req), name, validBody<StreamInput>(req));
    res.json({ success: true, stream });
  });

  router.delete('/audit/streams/:name', ...admin, ...streamStepUp, validate({ params: streamNameParams }), async function deleteAuditStream(req: Request, res: Response) {
    await streams().remove(actorOf(req), validParams<{ name: string }>(req).name);
    res.json({ success: true });
  });

  router.post('/audit/streams/:name/test', ...admin, ...streamStepUp, validate({ params: streamNameParams }), async function testAuditStream(req: Request, res: Response) {
    const eventId = await streams().sendTest(actorOf(req), validParams<{ name: string }>(req).name);
    res.status(202).json({ success: true, eventId });
  });

  return router;
}
