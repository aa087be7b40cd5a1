/**
 * Graceful drain on SIGTERM/SIGINT. From the first moment of shutdown:
 *  - GET /api/health/ready answers 503 (the check "instance": draining), so a load balancer
 *    stops routing to this instance;
 *  - every response carries `Connection: close`, so keep-alive clients move to another
 *    instance after their current request instead of sending more here.
 * index.ts then stops accepting connections, lets requests in flight finish (bounded), stops
 * the background workers (the SIEM worker releases its outbox claims) and closes the pools.
 */
import type http from 'node:http';
import type { ReadinessCheck } from './lib/readiness';

export interface Drain {
  readonly draining: boolean;
  /** Starts draining (idempotent). */
  begin(): void;
}

export function installDrain(server: http.Server, readinessChecks: ReadinessCheck[]): Drain {
  let draining = false;
  // First in the list: a draining instance is not ready whatever its dependencies say.
  readinessChecks.unshift({
    name: 'instance',
    critical: true,
    check: async () => {
      if (draining) throw new Error('shutting down: draining requests in flight');
    },
  });
  // Responses not yet started: when draining begins, those still get Connection: close.
  const open = new Set<http.ServerResponse>();
  const done = function (this: http.ServerResponse): void {
    open.delete(this);
  };
  // Before the app's own listener, so the header is set before any response starts.
  server.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    if (draining) {
      res.setHeader('Connection', 'close');
      return;
    }
    open.add(res);
    res.once('finish', done);
    res.once('close', done);
  });
  return {
    get draining() {
      return draining;
    },
    begin() {
      draining = true;
      for (const res of open) if (!res.headersSent) res.setHeader('Connection', 'close');
      open.clear();
    },
  };
}
