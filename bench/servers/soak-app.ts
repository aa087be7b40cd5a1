/**
 * The real app for the soak benchmark (bench/soak.bench.ts): like real-app.ts, plus an IPC
 * channel on which the benchmark asks for a sample: RSS, heap used after a full GC (needs
 * --expose-gc), open file descriptors and the pool's size. Prints `LISTENING <url>`.
 */
import fs from 'node:fs';
import { createApp, createHttpServer } from '../../server/src/app';
import { buildServices } from '../../server/src/compose';
import { loadConfig } from '../../server/src/config';
import { createPool, poolOptionsFromConfig } from '../../server/src/db/pool';
import { systemClock } from '../../server/src/lib/clock';
import { createLogger } from '../../server/src/lib/logger';

function openFds(): number {
  try {
    return fs.readdirSync('/proc/self/fd').length;
  } catch {
    return -1;
  }
}

async function main(): Promise<void> {
  const loaded = loadConfig(process.env);
  if (!loaded.config) throw new Error(JSON.stringify(loaded.errors));
  const config = loaded.config;
  const logger = createLogger({ level: config.log.level, console: true });
  const pool = createPool(poolOptionsFromConfig(config, config.database.url as string), logger);
  const composition = await buildServices({ config, logger, pool, clock: systemClock });
  await composition.start();
  const app = createApp(composition, { accessLog: false });
  const server = createHttpServer(app).listen(0, '127.0.0.1', () => {
    const a = server.address() as { port: number };
    process.stdout.write(`LISTENING http://127.0.0.1:${a.port}\n`);
  });
  const gc = (globalThis as { gc?: () => void }).gc;
  process.on('message', (m: { type?: string }) => {
    if (m?.type !== 'sample') return;
    gc?.();
    const mem = process.memoryUsage();
    process.send?.({
      type: 'sample',
      rss: mem.rss,
      heapUsed: mem.heapUsed,
      external: mem.external,
      fds: openFds(),
      pool: { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount },
      gc: Boolean(gc),
    });
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
