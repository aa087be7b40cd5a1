/**
 * The real app (createApp with the whole middleware chain and every route) on the
 * configuration in the environment, in its own process so the load generator does not share
 * its event loop. Prints `LISTENING <url>` once ready; stops on SIGTERM.
 */
import { createApp, createHttpServer } from '../../server/src/app';
import { buildServices } from '../../server/src/compose';
import { loadConfig } from '../../server/src/config';
import { createPool, poolOptionsFromConfig } from '../../server/src/db/pool';
import { systemClock } from '../../server/src/lib/clock';
import { createLogger } from '../../server/src/lib/logger';

async function main(): Promise<void> {
  const loaded = loadConfig(process.env);
  if (!loaded.config) throw new Error(JSON.stringify(loaded.errors));
  const config = loaded.config;
  const logger = createLogger({ level: config.log.level, console: true });
  const pool = createPool(poolOptionsFromConfig(config, config.database.url as string), logger);
  const composition = await buildServices({ config, logger, pool, clock: systemClock });
  await composition.start();
  const app = createApp(composition);
  const server = createHttpServer(app).listen(0, '127.0.0.1', () => {
    const a = server.address() as { port: number };
    process.stdout.write(`LISTENING http://127.0.0.1:${a.port}\n`);
  });
  process.on('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => {
      void composition
        .stop()
        .then(() => pool.end())
        .then(() => process.exit(0));
    });
  });
}

main().catch((e: Error) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
