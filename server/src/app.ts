/**
 * createApp(composition): the Express app from ready services. No I/O at import or build time.
 * Order: request context (id, headers, access log, metrics) → CORS → rate limit → body → routes → 404 → errors.
 * The general rate limit runs before body parsing so a limited client costs no parsing.
 */
import express, { type Express } from 'express';
import type { Composition } from './compose';
import { jsonBody } from './middleware/body';
import { corsPolicy } from './middleware/cors';
import { createCsrf } from './middleware/csrf';
import { errorHandler, notFoundHandler } from './middleware/error-handler';
import { useLeanJson } from './middleware/json-response';
import { createAccessLogWriter } from './lib/logger';
import { createMetrics, type Metrics } from './middleware/metrics';
import { createRateLimiter } from './middleware/rate-limit';
import { requestContext } from './middleware/request-context';
import { securityHeaderList } from './middleware/security-headers';
import { series } from './middleware/series';
import { mountHealth } from './routes/health';
import { securityRouter } from './routes/security';

export interface AppOptions {
  /** Per-request access log line (default true). */
  accessLog?: boolean;
}

export type App = Express & {
  metrics: Metrics;
  /** Writes the access lines still held in memory (graceful shutdown). */
  flushAccessLog(): void;
};

export function createApp(c: Composition, opts: AppOptions = {}): App {
  const { config, logger } = c;
  const app = express() as App;
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.set('etag', false);
  app.set('query parser', 'simple');
  useLeanJson(app);

  const metrics = createMetrics({ pool: c.pool, token: config.metricsToken, registries: c.metricRegistries });
  app.metrics = metrics;
  const accessLog = opts.accessLog === false ? null : createAccessLogWriter(logger);
  app.flushAccessLog = () => accessLog?.flush();
  const csrf = createCsrf({ secret: config.csrfSecret, production: config.isProduction });

  // The layers every request passes through run as one router layer (see series()).
  app.use(
    series(
      requestContext({ logger, accessLog, headers: securityHeaderList(), onFinish: metrics.observe, trustProxy: config.trustProxy }),
      corsPolicy(config.cors.origins),
      createRateLimiter({
        windowMs: config.rateLimit.windowMs,
        max: config.rateLimit.max,
        prefix: 'ip',
        makeStore: c.makeRateLimitStore,
      }),
      jsonBody(config.bodyLimitBytes),
    ),
  );

  mountHealth(app, c.readinessChecks, { startedAt: Date.now() });
  app.get('/metrics', metrics.handler);
  app.use('/api/v1/security', securityRouter({ composition: c, csrf }));

  app.use(notFoundHandler);
  app.use(errorHandler());
  return app;
}
