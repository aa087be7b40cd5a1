/**
 * A stand-in for POST /api/v1/security/audit/log (the audit branch owns the real route): the
 * app's middleware chain in createApp's order (request context + access log, metrics, helmet,
 * CORS, rate limit, JSON body), requireAuth (token + session lookup), a zod-validated body and
 * AuditService.recordFromRequest in its own transaction, answering { success, id }.
 * With SIEM_* set, start() turns on siem_settings.forwarding (the audit_logs trigger queues
 * high/critical rows) and runs the worker. Prints "TOKEN <bearer>" then "LISTENING <url>".
 */
import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import { buildServices } from '../../server/src/compose';
import { loadConfig } from '../../server/src/config';
import { createPool, poolOptionsFromConfig } from '../../server/src/db/pool';
import { systemClock } from '../../server/src/lib/clock';
import { createLogger } from '../../server/src/lib/logger';
import { jsonBody, safeQuery } from '../../server/src/middleware/body';
import { corsPolicy } from '../../server/src/middleware/cors';
import { errorHandler, notFoundHandler } from '../../server/src/middleware/error-handler';
import { validBody, validate } from '../../server/src/middleware/input-validation';
import { createMetrics } from '../../server/src/middleware/metrics';
import { createRateLimiter } from '../../server/src/middleware/rate-limit';
import { requestContext } from '../../server/src/middleware/request-context';
import { securityHeaders } from '../../server/src/middleware/security-headers';

const bodySchema = z.strictObject({
  action: z.string().min(3).max(128),
  resourceType: z.string().min(1).max(128),
  resourceId: z.string().max(256).optional(),
  after: z.record(z.string(), z.unknown()).optional(),
  severity: z.enum(['low', 'medium', 'high', 'critical']).optional(),
});

async function main(): Promise<void> {
  const loaded = loadConfig(process.env);
  if (!loaded.config) throw new Error(JSON.stringify(loaded.errors));
  const config = loaded.config;
  const logger = createLogger({ level: config.log.level, console: true });
  const pool = createPool(poolOptionsFromConfig(config, config.database.url as string), logger);
  const c = await buildServices({ config, logger, pool, clock: systemClock });
  await c.start();
  // BENCH_SIEM_WORKER=off: forwarding stays on (the trigger queues) but nothing delivers, to
  // isolate the cost of queuing from the cost of delivering.
  if (process.env.BENCH_SIEM_WORKER === 'off') await c.services.monitoring.siem.stop();

  const tenantId = `bench-${process.pid}`;
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO users (tenant_id, email, role) VALUES ($1, $2, 'admin') ON CONFLICT (tenant_id, email) DO UPDATE SET role = 'admin' RETURNING id`,
    [tenantId, `bench-${process.pid}@example.com`],
  );
  const userId = (rows[0] as { id: string }).id;
  const { sessionId } = await c.services.sessions.create(pool, { userId, tenantId, ip: '127.0.0.1', userAgent: 'bench' });
  const token = c.services.tokens.issue({ userId, sessionId, tenantId }).token;

  const metrics = createMetrics({ pool, token: null });
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestContext({ logger }));
  app.use(metrics.middleware);
  app.use(securityHeaders());
  app.use(corsPolicy(config.cors.origins));
  app.use(createRateLimiter({ windowMs: config.rateLimit.windowMs, max: config.rateLimit.max, prefix: 'ip' }));
  app.use(jsonBody(config.bodyLimitBytes));
  app.use(safeQuery());
  app.post('/api/v1/security/audit/log', ...c.guards.requireAuth, validate({ body: bodySchema }), async function auditLog(req: Request, res: Response) {
    const b = validBody<z.infer<typeof bodySchema>>(req);
    const r = await c.services.audit.recordFromRequest(req, { action: b.action, resourceType: b.resourceType, resourceId: b.resourceId, after: b.after, severity: b.severity ?? 'low' });
    res.json({ success: true, id: r.id });
  });
  app.use(notFoundHandler);
  app.use(errorHandler());
  const server = app.listen(0, '127.0.0.1', () => {
    const a = server.address() as { port: number };
    process.stdout.write(`TOKEN ${token}\nLISTENING http://127.0.0.1:${a.port}\n`);
  });
  process.on('SIGTERM', () => {
    server.close(() => {
      void c.stop().then(() => pool.end()).then(() => process.exit(0));
    });
  });
}
main().catch((e: Error) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
