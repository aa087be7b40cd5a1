/** Who may read GET /metrics: loopback is trusted only outside production with no TRUST_PROXY, unless METRICS_ALLOW_LOOPBACK=true. */
import request from 'supertest';
import { loadConfig } from '../../src/config';
import { buildTestApp } from '../helpers/app';
import { testEnv } from '../helpers/env';

const TOKEN = 'metrics-' + 'Q7w2Z9x4R1t8Y5u3I6o0P2a4';

describe('GET /metrics access', () => {
  test('when TRUST_PROXY is set, then a loopback caller without the token is refused (403) and METRICS_TOKEN is required', async () => {
    const t = await buildTestApp({ env: { TRUST_PROXY: 'loopback', METRICS_TOKEN: TOKEN } });
    try {
      const res = await request(t.app).get('/metrics');
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('FORBIDDEN');
      const ok = await request(t.app).get('/metrics').set('Authorization', `Bearer ${TOKEN}`);
      expect(ok.status).toBe(200);
    } finally {
      await t.close();
    }
  });

  test('when TRUST_PROXY is set and METRICS_ALLOW_LOOPBACK=true, then a loopback caller is served without the token', async () => {
    const t = await buildTestApp({ env: { TRUST_PROXY: '1', METRICS_ALLOW_LOOPBACK: 'true' } });
    try {
      expect((await request(t.app).get('/metrics')).status).toBe(200);
      expect((await request(t.app).get('/metrics').set('X-Forwarded-For', '203.0.113.9')).status).toBe(403);
    } finally {
      await t.close();
    }
  });

  test('when neither TRUST_PROXY nor production applies, then loopback is served as before', async () => {
    const t = await buildTestApp();
    try {
      expect((await request(t.app).get('/metrics')).status).toBe(200);
    } finally {
      await t.close();
    }
  });

  test('when production or TRUST_PROXY has no METRICS_TOKEN and no METRICS_ALLOW_LOOPBACK, then the configuration warns that /metrics refuses everyone; a bad METRICS_ALLOW_LOOPBACK is an error', () => {
    const proxied = loadConfig(testEnv({ TRUST_PROXY: '1' }));
    expect(proxied.config!.metricsAllowLoopback).toBe(false);
    expect(proxied.warnings.map((w) => w.variable)).toContain('METRICS_TOKEN');
    expect(loadConfig(testEnv({ TRUST_PROXY: '1', METRICS_ALLOW_LOOPBACK: 'yes' })).config!.metricsAllowLoopback).toBe(
      true,
    );
    expect(loadConfig(testEnv()).config!.metricsAllowLoopback).toBe(true);
    expect(loadConfig(testEnv({ METRICS_ALLOW_LOOPBACK: 'maybe' })).errors.map((e) => e.variable)).toEqual([
      'METRICS_ALLOW_LOOPBACK',
    ]);
  });
});
