import type { Request, Response, Router } from 'express';
import type { Pool } from '../db/pool';

export interface ReadinessCheck {
  name: string;
  /** A failing critical check makes /ready answer 503. */
  critical: boolean;
  check(): Promise<void>;
}

const VERSION = '1.0.0';

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

export function databaseCheck(pool: Pool, timeoutMs = 2000): ReadinessCheck {
  return { name: 'database', critical: true, check: async () => void (await withTimeout(pool.query('SELECT 1'), timeoutMs)) };
}

/**
 * Mounts GET /api/health (liveness: the process answers) and GET /api/health/ready
 * (dependencies) directly on the app: probes are frequent, so no nested router.
 */
export function mountHealth(app: Router, checks: ReadinessCheck[], opts: { startedAt: number; timeoutMs?: number }): void {
  const router = app;
  const timeoutMs = opts.timeoutMs ?? 2000;
  router.get('/api/health', function liveness(_req: Request, res: Response) {
    res.json({ success: true, status: 'ok', version: VERSION, uptimeSeconds: Math.floor((Date.now() - opts.startedAt) / 1000) });
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
    const dependencies = Object.fromEntries(results.map((r) => [r.name, { status: r.status, critical: r.critical, latencyMs: r.latencyMs }]));
    const body = { success: ready, status: ready ? 'ready' : 'unavailable', dependencies, requestId: req.ctx.requestId, timestamp: new Date().toISOString() };
    if (!ready) {
      const failing = results.filter((r) => r.status === 'down' && r.critical).map((r) => r.name);
      res.status(503).json({ ...body, error: { code: 'SERVICE_UNAVAILABLE', message: `Not ready: ${failing.join(', ')} unavailable.` } });
      return;
    }
    res.json(body);
  });
}
