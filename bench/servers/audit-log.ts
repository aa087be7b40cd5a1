/**
 * The real app (createApp) for the SIEM bench: POST /api/v1/security/audit/log with a token of
 * a provisioned admin.
 * With SIEM_* set, start() turns on siem_settings.forwarding (the audit_logs trigger queues
 * high/critical rows) and runs the worker. Prints "TOKEN <bearer>" then "LISTENING <url>".
 */
import { createApp, createHttpServer } from '../../server/src/app';
import { buildServices } from '../../server/src/compose';
import { loadConfig } from '../../server/src/config';
import { withTenant } from '../../server/src/db/transaction';
import { createPool, poolOptionsFromConfig } from '../../server/src/db/pool';
import { systemClock } from '../../server/src/lib/clock';
import { createLogger } from '../../server/src/lib/logger';
import { openSession } from '../../server/test/helpers/session';

async function main(): Promise<void> {
  const loaded = loadConfig(process.env);
  if (!loaded.config) throw new Error(JSON.stringify(loaded.errors));
  const config = loaded.config;
  const logger = createLogger({ level: config.log.level, console: true });
  const pool = createPool(poolOptionsFromConfig(config, config.database.url as string), logger);
  const c = await buildServices({ config, logger, pool, clock: systemClock });
  await c.start();
  // BENCH_SIEM_WORKER=off: forwarding stays on (the trigger queues) but nothing delivers, to
  // isolate the cost of queuing from the cost of delivering.
  if (process.env.BENCH_SIEM_WORKER === 'off') await c.services.monitoring.siem.stop();

  const tenantId = `bench-${process.pid}`;
  // In the tenant's context: users and sessions have forced row-level security (migration 096).
  const { userId, sessionId } = await withTenant(pool, tenantId, async (q) => {
    const { rows } = await q.query<{ id: string }>(
      `INSERT INTO users (tenant_id, email, role) VALUES ($1, $2, 'admin') ON CONFLICT (tenant_id, email) DO UPDATE SET role = 'admin' RETURNING id`,
      [tenantId, `bench-${process.pid}@example.com`],
    );
    const id = (rows[0] as { id: string }).id;
    const s = await openSession(c, q, { userId: id, tenantId, ip: '127.0.0.1', userAgent: 'bench' });
    return { userId: id, sessionId: s.sessionId };
  });
  const token = c.services.tokens.issue({ userId, sessionId, tenantId }).token;

  // The real app and its real POST /api/v1/security/audit/log route.
  const app = createApp(c);
  const server = createHttpServer(app).listen(0, '127.0.0.1', () => {
    const a = server.address() as { port: number };
    process.stdout.write(`TOKEN ${token}\nLISTENING http://127.0.0.1:${a.port}\n`);
  });
  process.on('SIGTERM', () => {
    server.close(() => {
      void c
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
