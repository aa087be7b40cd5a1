/**
 * createApp(composition): the Express app from ready services. No I/O at import or build time.
 * Order: request context (id, headers, access log, metrics) → CORS → rate limit → body → routes → 404 → errors.
 * The general rate limit runs before body parsing so a limited client costs no parsing.
 */
import http from 'node:http';
import express, { type Express } from 'express';
import type { Composition } from './compose';
import { jsonBody } from './middleware/body';
import { hostRequired } from './middleware/client-error';
import { corsPolicy } from './middleware/cors';
import { createCsrf } from './middleware/csrf';
import { errorHandler, notFoundHandler } from './middleware/error-handler';
import { useLeanJson } from './middleware/json-response';
import { createAccessLogWriter } from './lib/logger';
import { API_MOUNT, createMetrics, type Metrics } from './middleware/metrics';
import { createRateLimiter } from './middleware/rate-limit';
import { requestContext } from './middleware/request-context';
import { securityHeaderList } from './middleware/security-headers';
import { series } from './middleware/series';
import { mountHealth } from './routes/health';
import { mountOpenApi } from './routes/openapi.routes';
import { mountJwks } from './routes/jwks.routes';
import { mountOAuth, unlessOAuth } from './routes/oauth.routes';
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

  const metrics = createMetrics({
    pool: c.pool,
    token: config.metricsToken,
    registries: c.metricRegistries,
    allowLoopback: config.metricsAllowLoopback,
  });
  app.metrics = metrics;
  const accessLog = opts.accessLog === false ? null : createAccessLogWriter(logger);
  app.flushAccessLog = () => accessLog?.flush();
  const csrf = createCsrf({ secret: config.csrfSecret, production: config.isProduction });

  // The layers every request passes through run as one router layer (see series()).
  app.use(
    series(
      requestContext({
        logger,
        accessLog,
        headers: securityHeaderList(),
        onFinish: metrics.observe,
        trustProxy: config.trustProxy,
      }),
      hostRequired,
      corsPolicy(config.cors.origins),
      createRateLimiter({
        windowMs: config.rateLimit.windowMs,
        max: config.rateLimit.max,
        prefix: 'ip',
        makeStore: c.makeRateLimitStore,
      }),
      unlessOAuth(jsonBody(config.bodyLimitBytes)),
    ),
  );

  mountHealth(app, c.readinessChecks, { startedAt: Date.now() });
  mountJwks(app, c.services.tokens);
  mountOAuth(app, { guards: c.guards, oauth: c.services.oauth });
  app.get('/metrics', metrics.handler);
  mountOpenApi(app);
  app.use(
    API_MOUNT,
    securityRouter({ services: c.services, guards: c.guards, config: c.config, clock: c.clock, csrf }),
  );

  app.use(notFoundHandler);
  app.use(errorHandler());
  return app;
}

/**
 * The HTTP server for an app, its requests and responses born with the app's prototypes so Express's
 * per-request setPrototypeOf is a no-op: the measurement and the reasons are in docs/SECURITY_API.md §15.
 */
export function createHttpServer(app: Express): http.Server {
  function AppRequest(this: http.IncomingMessage, socket: import('node:net').Socket): void {
    http.IncomingMessage.call(this, socket);
  }
  AppRequest.prototype = app.request;
  function AppResponse(this: http.ServerResponse, req: http.IncomingMessage, options?: unknown): void {
    (
      http.ServerResponse as unknown as (
        this: http.ServerResponse,
        req: http.IncomingMessage,
        options?: unknown,
      ) => void
    ).call(this, req, options);
  }
  AppResponse.prototype = app.response;
  return http.createServer(
    {
      IncomingMessage: AppRequest as unknown as typeof http.IncomingMessage,
      ServerResponse: AppResponse as unknown as typeof http.ServerResponse,
      // requestTimeout / headersTimeout are enforced by a periodic sweep (default every 30 s,
      // so a stalled request could live for up to twice its limit): sweep every second.
      connectionsCheckingInterval: 1000,
      // Node would answer a request without Host with a bare 400; hostRequired (in createApp)
      // answers it in the contract's shape.
      requireHostHeader: false,
    },
    app,
  );
}
