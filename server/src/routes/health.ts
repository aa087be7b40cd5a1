import type { Request, Response, Router } from 'express';
import { z } from 'zod';
import { errorEnvelope } from '../lib/errors';
import { withTimeout, type ReadinessCheck } from '../lib/readiness';
import { ErrorCode } from '../openapi/common';
import { describeRoute } from '../openapi/registry';

const VERSION = '1.0.0';

const Dependencies = z.record(
  z.string(),
  z.strictObject({ status: z.enum(['up', 'down']), critical: z.boolean(), latencyMs: z.int() }),
);
describeRoute({
  method: 'get',
  path: '/api/health',
  operationId: 'liveness',
  summary: 'Liveness: the process answers',
  description: 'No dependencies, no secrets; for liveness probes.',
  tags: ['health'],
  security: [],
  responses: {
    200: {
      description: 'Alive.',
      schema: z.strictObject({
        success: z.literal(true),
        status: z.literal('ok'),
        version: z.string(),
        uptimeSeconds: z.int().min(0),
      }),
    },
  },
});
describeRoute({
  method: 'get',
  path: '/api/health/ready',
  operationId: 'readiness',
  summary: 'Readiness: every critical dependency answers',
  tags: ['health'],
  security: [],
  responses: {
    200: {
      description: 'Ready.',
      schema: z.strictObject({
        success: z.literal(true),
        status: z.literal('ready'),
        dependencies: Dependencies,
        requestId: z.string(),
        timestamp: z.iso.datetime(),
      }),
    },
    503: {
      description: 'A critical dependency is down (named in error.message).',
      schema: z.strictObject({
        success: z.literal(false),
        status: z.literal('unavailable'),
        dependencies: Dependencies,
        requestId: z.string(),
        timestamp: z.iso.datetime(),
        error: z.strictObject({ code: ErrorCode, message: z.string() }),
      }),
    },
  },
});

/**
 * Mounts GET /api/health (liveness: the process answers) and GET /api/health/ready
 * (dependencies) directly on the app: probes are frequent, so no nested router.
 */
export function mountHealth(
  app: Router,
  checks: ReadinessCheck[],
  opts: { startedAt: number; timeoutMs?: number },
): void {
  const router = app;
  const timeoutMs = opts.timeoutMs ?? 2000;
  router.get('/api/health', function liveness(_req: Request, res: Response) {
    res.json({
      success: true,
      status: 'ok',
      version: VERSION,
      uptimeSeconds: Math.floor((Date.now() - opts.startedAt) / 1000),
    });
  });
  router.get('/api/health/ready', async function readiness(req: Request, res: Response) {
    const results = await Promise.all(
      checks.map(async (c) => {
        const t0 = Date.now();
        try {
          await withTimeout(c.check(), timeoutMs);
          return { name: c.name, status: 'up' as const, critical: c.critical, latencyMs: Date.now() - t0 };
        } catch (err) {
          req.ctx.log.warn('readiness check failed', { dependency: c.name, reason: (err as Error).message });
          return { name: c.name, status: 'down' as const, critical: c.critical, latencyMs: Date.now() - t0 };
        }
      }),
    );
    const ready = results.every((r) => r.status === 'up' || !r.critical);
    const dependencies = Object.fromEntries(
      results.map((r) => [r.name, { status: r.status, critical: r.critical, latencyMs: r.latencyMs }]),
    );
    if (!ready) {
      const failing = results.filter((r) => r.status === 'down' && r.critical).map((r) => r.name);
      const envelope = errorEnvelope(req.ctx.requestId, {
        code: 'SERVICE_UNAVAILABLE',
        message: `Not ready: ${failing.join(', ')} unavailable.`,
      });
      res.status(503).json({ ...envelope, status: 'unavailable', dependencies });
      return;
    }
    res.json({
      success: true,
      status: 'ready',
      dependencies,
      requestId: req.ctx.requestId,
      timestamp: new Date().toISOString(),
    });
  });
}
