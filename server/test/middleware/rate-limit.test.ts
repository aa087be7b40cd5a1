import express from 'express';
import request from 'supertest';
import type { Store } from 'express-rate-limit';
import { createLogger } from '../../src/lib/logger';
import { errorHandler } from '../../src/middleware/error-handler';
import { createRateLimiter } from '../../src/middleware/rate-limit';
import { createRedisStores } from '../../src/middleware/rate-limit-redis';
import { requestContext } from '../../src/middleware/request-context';
import { buildTestApp } from '../helpers/app';

function limitedApp(max: number, makeStore?: (prefix: string) => Store) {
  const app = express();
  app.use(requestContext({ logger: createLogger({ level: 'error', console: false }), accessLog: false }));
  app.use(createRateLimiter({ windowMs: 60_000, max, prefix: `t${Math.random()}`, makeStore }));
  app.get('/x', (_req, res) => {
    res.json({ ok: true });
  });
  app.use(errorHandler());
  return app;
}

describe('general rate limit (memory store)', () => {
  test('when an IP exceeds RATE_LIMIT_MAX, then 429 RATE_LIMITED with Retry-After in the contract shape', async () => {
    const t = await buildTestApp({ env: { RATE_LIMIT_MAX: '3' } });
    try {
      for (let i = 0; i < 3; i++) expect((await request(t.app).get('/api/health')).status).toBe(200);
      const res = await request(t.app).get('/api/health');
      expect(res.status).toBe(429);
      expect(res.body.error.code).toBe('RATE_LIMITED');
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(60);
      expect(res.headers['ratelimit-policy']).toBeDefined();
    } finally {
      await t.close();
    }
  });

  test('when the store fails, then requests fail closed with 503, never pass unlimited', async () => {
    const broken: Store = {
      increment: async () => {
        throw new Error('connection refused');
      },
      decrement: async () => undefined,
      resetKey: async () => undefined,
    };
    const res = await request(limitedApp(100, () => broken)).get('/x');
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('SERVICE_UNAVAILABLE');
    expect(JSON.stringify(res.body)).not.toContain('connection refused');
  });
});

// Registered where a Redis server is configured (REDIS_URL; .ci/run sets it when Redis answers on 6379).
const redisUrl = process.env.REDIS_URL;
if (redisUrl)
  describe('general rate limit (Redis store shared by instances)', () => {
    test('when two app instances share Redis, then the limit counts requests to both', async () => {
      const a = await createRedisStores(redisUrl as string);
      const b = await createRedisStores(redisUrl as string);
      try {
        const prefix = `shared-${Date.now()}-${Math.random()}`;
        const mk = (stores: typeof a) => {
          const app = express();
          app.use(requestContext({ logger: createLogger({ level: 'error', console: false }), accessLog: false }));
          app.use(createRateLimiter({ windowMs: 60_000, max: 4, prefix, makeStore: stores.make }));
          app.get('/x', (_req, res) => {
            res.json({ ok: true });
          });
          app.use(errorHandler());
          return app;
        };
        const appA = mk(a);
        const appB = mk(b);
        expect((await request(appA).get('/x')).status).toBe(200);
        expect((await request(appB).get('/x')).status).toBe(200);
        expect((await request(appA).get('/x')).status).toBe(200);
        expect((await request(appB).get('/x')).status).toBe(200);
        const fifth = await request(appA).get('/x');
        expect(fifth.status).toBe(429);
        expect(fifth.headers['retry-after']).toBeDefined();
        expect((await request(appB).get('/x')).status).toBe(429);
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
