import { timingSafeEqual, createHash } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import client from 'prom-client';
import type { Pool } from '../db/pool';
import { z } from 'zod';
import { bearerCredential } from '../lib/bearer';
import { forbidden } from '../lib/errors';
import { describeRoute } from '../openapi/registry';

describeRoute({
  method: 'get',
  path: '/metrics',
  operationId: 'metrics',
  summary: 'Prometheus metrics',
  description:
    'Answered to loopback callers that did not come through a proxy, or with Authorization: Bearer $METRICS_TOKEN; others get 403.',
  tags: ['health'],
  security: ['none', 'metricsToken'],
  responses: {
    200: { description: 'Prometheus text exposition format.', contentType: 'text/plain', schema: z.string() },
  },
});

export interface Metrics {
  registry: client.Registry;
  /** Records one finished request (requestContext calls it from its single 'finish' listener). */
  observe(req: Request, res: Response, seconds: number): void;
  handler: RequestHandler;
}

/** Where the API's router is mounted (app.ts). */
export const API_MOUNT = '/api/v1/security';

function routeLabel(req: Request): string {
  const r = (req as Request & { route?: { path?: unknown } }).route;
  if (!r || typeof r.path !== 'string') return 'unmatched';
  // After an error leaves the router, Express has already reset req.baseUrl to the app's:
  // the label must not depend on whether the route answered or an error did.
  const base = req.baseUrl || (req.originalUrl.startsWith(`${API_MOUNT}/`) ? API_MOUNT : '');
  return `${base}${r.path}`;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

function sha(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * Prometheus metrics on a registry of this app's own (tests can build many apps):
 * request count and latency by route and status, pool usage, process metrics.
 * GET /metrics answers a caller presenting METRICS_TOKEN as a Bearer token, and loopback callers
 * that did not come through a proxy only when `allowLoopback` (config.metricsAllowLoopback:
 * outside production without TRUST_PROXY, or METRICS_ALLOW_LOOPBACK=true) — a reverse proxy on
 * the same host that drops X-Forwarded-For would otherwise make every Internet caller loopback.
 */
export function createMetrics(opts: {
  pool?: Pool;
  token: string | null;
  registries?: client.Registry[];
  allowLoopback?: boolean;
}): Metrics {
  const own = new client.Registry();
  client.collectDefaultMetrics({ register: own, prefix: 'fleet_' });
  const duration = new client.Histogram({
    name: 'fleet_http_request_duration_seconds',
    help: 'HTTP request latency by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [own],
  });
  const pool = opts.pool;
  if (pool) {
    new client.Gauge({
      name: 'fleet_db_pool_connections',
      help: 'Database pool connections by state',
      labelNames: ['state'] as const,
      registers: [own],
      collect() {
        this.set({ state: 'total' }, pool.totalCount);
        this.set({ state: 'idle' }, pool.idleCount);
        this.set({ state: 'waiting' }, pool.waitingCount);
      },
    });
  }
  const tokenDigest = opts.token ? sha(opts.token) : null;
  const allowLoopback = opts.allowLoopback ?? true;
  // Services' registries (SIEM, archive) are served from the same endpoint.
  const registry =
    opts.registries && opts.registries.length > 0 ? client.Registry.merge([own, ...opts.registries]) : own;

  // One labelled child per (method, route, status): no label hashing per request.
  const children = new Map<string, client.Histogram.Internal<'method' | 'route' | 'status'>>();
  function observe(req: Request, res: Response, seconds: number): void {
    const route = routeLabel(req);
    const key = `${req.method} ${route} ${res.statusCode}`;
    let child = children.get(key);
    if (!child) {
      // Unknown methods are folded so a client cannot grow the label set without bound.
      const method = /^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)$/.test(req.method) ? req.method : 'OTHER';
      child = duration.labels(method, route, String(res.statusCode));
      if (children.size < 2000) children.set(key, child);
    }
    child.observe(seconds);
  }
  return {
    registry,
    observe,
    handler: function metricsHandler(req: Request, res: Response, next: NextFunction): void {
      const presented = bearerCredential(req.headers.authorization);
      const viaProxy = req.headers['x-forwarded-for'] !== undefined || req.headers.forwarded !== undefined;
      const loopback = allowLoopback && LOOPBACK.has(req.socket.remoteAddress ?? '') && !viaProxy;
      const tokenOk = tokenDigest !== null && presented !== null && timingSafeEqual(sha(presented), tokenDigest);
      if (!loopback && !tokenOk) {
        next(
          forbidden(
            allowLoopback
              ? 'metrics requested from a non-loopback address without METRICS_TOKEN'
              : 'metrics requested without METRICS_TOKEN (loopback is not trusted here)',
          ),
        );
        return;
      }
      registry
        .metrics()
        .then((text) => {
          res.setHeader('Content-Type', registry.contentType);
          res.send(text);
        })
        .catch(next);
    },
  };
}
