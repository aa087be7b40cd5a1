import request from 'supertest';
import { buildTestApp } from '../helpers/app';
import { freePort } from '../../src/db/embedded';

describe('health', () => {
  test('when the database answers, then /api/health/ready is 200 and lists the database as up', async () => {
    const t = await buildTestApp();
    try {
      const res = await request(t.app).get('/api/health/ready');
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        success: true,
        status: 'ready',
        dependencies: { database: { status: 'up', critical: true } },
      });
    } finally {
      await t.close();
    }
  });

  test('when the database is unreachable, then /ready is 503 naming it and /api/health still answers 200', async () => {
    const port = await freePort();
    const t = await buildTestApp({
      env: { DATABASE_URL: `postgres://nobody:pw@127.0.0.1:${port}/none`, DB_POOL_TIMEOUT: '1' },
    });
    try {
      const res = await request(t.app).get('/api/health/ready');
      expect(res.status).toBe(503);
      expect(res.body.success).toBe(false);
      expect(res.body.error).toMatchObject({
        code: 'SERVICE_UNAVAILABLE',
        message: expect.stringContaining('database'),
      });
      expect(res.body.dependencies.database.status).toBe('down');
      expect(JSON.stringify(res.body)).not.toMatch(/ECONNREFUSED|nobody|pw@/);
      const live = await request(t.app).get('/api/health');
      expect(live.status).toBe(200);
    } finally {
      await t.close();
    }
  });

  test('when /api/health is called, then it reveals no configuration or secrets', async () => {
    const t = await buildTestApp();
    try {
      const res = await request(t.app).get('/api/health');
      const text = JSON.stringify(res.body);
      expect(text).not.toContain(t.config.jwt.secret);
      expect(text).not.toMatch(/postgres:\/\//);
      expect(Object.keys(res.body).sort()).toEqual(['status', 'success', 'uptimeSeconds', 'version']);
    } finally {
      await t.close();
    }
  });
});
