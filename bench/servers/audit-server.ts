/**
 * The real app (every middleware, the background sealer on) for bench/audit.bench.ts, plus
 * the baseline: on an IPC request it runs raw INSERTs of the same audit row through the
 * same pool, with N concurrent writers for S seconds, and reports throughput and latency.
 */
import { createApp, createHttpServer } from '../../server/src/app';
import { buildServices } from '../../server/src/compose';
import { loadConfig } from '../../server/src/config';
import { withTenant } from '../../server/src/db/transaction';
import { createPool, poolOptionsFromConfig } from '../../server/src/db/pool';
import { systemClock } from '../../server/src/lib/clock';
import { createLogger } from '../../server/src/lib/logger';
import { INSERT_AUDIT_LOG_IN_TENANT } from '../../server/src/services/audit/repository';
import { openSession } from '../../server/test/helpers/session';

const BENCH_TENANT = 'bench-tenant';
const BENCH_EVENT = {
  action: 'bench.event',
  resourceType: 'vehicle',
  resourceId: 'V-1',
  after: { mileage: 150, driver: 'd-42' },
};
const BENCH_USER_AGENT = 'bench/1.0';

interface RawRequest {
  cmd: 'raw';
  /**
   * audit: audit_logs itself (RLS, append-only and chain triggers); plain: a copy of the table
   * without them; service: AuditService.record() (validation, scrubbing, the same insert) without HTTP.
   */
  target: 'audit' | 'plain' | 'service';
  connections: number;
  seconds: number;
  /**
   * Offered load (operations/s over all writers). Each writer then issues its k-th operation
   * at start + k × (connections ÷ rate) and its latency counts from that scheduled time, so an
   * operation delayed by a slow one before it is not under-reported (coordinated omission).
   */
  rate?: number;
}

/** The same columns into bench_plain_audit (created by the bench as a LIKE copy of audit_logs). */
const INSERT_PLAIN = `INSERT INTO bench_plain_audit (tenant_id, user_id, action, resource_type, resource_id, before, after, ip_address, user_agent, result, error_message, severity, request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function main(): Promise<void> {
  const loaded = loadConfig(process.env);
  if (!loaded.config) throw new Error(JSON.stringify(loaded.errors));
  const config = loaded.config;
  const logger = createLogger({ level: config.log.level, console: true });
  const pool = createPool(poolOptionsFromConfig(config, config.database.url as string), logger);
  const composition = await buildServices({ config, logger, pool, clock: systemClock });
  await composition.start();
  // BENCH_SEALER=off: the chain is not sealed during the run (to see what sealing costs).
  if (process.env.BENCH_SEALER === 'off') await composition.services.auditSealer.stop();

  // A user and a session, as loginAs() does in the tests.
  // In the tenant's context: users and sessions have forced row-level security (migration 096).
  const { userId, sessionId } = await withTenant(pool, BENCH_TENANT, async (c) => {
    const { rows } = await c.query<{ id: string }>(
      `INSERT INTO users (tenant_id, email, role) VALUES ($1, 'bench@example.com', 'user')
       ON CONFLICT (tenant_id, email) DO UPDATE SET role = EXCLUDED.role RETURNING id`,
      [BENCH_TENANT],
    );
    const id = (rows[0] as { id: string }).id;
    const s = await openSession(composition, c, {
      userId: id,
      tenantId: BENCH_TENANT,
      ip: '127.0.0.1',
      userAgent: BENCH_USER_AGENT,
    });
    return { userId: id, sessionId: s.sessionId };
  });
  const { token } = composition.services.tokens.issue({ userId, sessionId, tenantId: BENCH_TENANT });

  // The same row POST /audit/log writes (identity as the request would give it).
  const rawParams = [
    BENCH_TENANT,
    userId,
    BENCH_EVENT.action,
    BENCH_EVENT.resourceType,
    BENCH_EVENT.resourceId,
    null,
    JSON.stringify(BENCH_EVENT.after),
    '127.0.0.1',
    BENCH_USER_AGENT,
    'success',
    null,
    'low',
    'bench-request-id',
  ];

  const serviceEvent = {
    tenantId: BENCH_TENANT,
    userId,
    ...BENCH_EVENT,
    ipAddress: '127.0.0.1',
    userAgent: BENCH_USER_AGENT,
    requestId: 'bench-request-id',
  };

  async function rawRun(req: RawRequest): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
    const sql = req.target === 'plain' ? INSERT_PLAIN : INSERT_AUDIT_LOG_IN_TENANT;
    const deadline = Date.now() + req.seconds * 1000;
    const lat: number[] = [];
    let errors = 0;
    const started = process.hrtime.bigint();
    const intervalNs = req.rate ? BigInt(Math.round((req.connections / req.rate) * 1e9)) : 0n;
    await Promise.all(
      Array.from({ length: req.connections }, async (_, w) => {
        // Writers start spread over one interval so the offered load is even.
        let next = started + (intervalNs * BigInt(w)) / BigInt(req.connections);
        while (Date.now() < deadline) {
          let t0 = process.hrtime.bigint();
          if (intervalNs > 0n) {
            if (next > t0) await new Promise((r) => setTimeout(r, Number(next - t0) / 1e6));
            t0 = next;
            next += intervalNs;
          }
          try {
            if (req.target === 'service') await composition.services.audit.record(serviceEvent);
            else await pool.query(sql, rawParams);
            lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
          } catch {
            errors += 1;
          }
        }
      }),
    );
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    lat.sort((a, b) => a - b);
    return { rps: lat.length / elapsed, p50: percentile(lat, 50), p99: percentile(lat, 99), errors };
  }

  process.on('message', (m: RawRequest | { cmd: 'cpu' }) => {
    if (m?.cmd === 'raw') {
      void rawRun(m).then((r) => process.send?.({ cmd: 'raw-result', ...r }));
    } else if (m?.cmd === 'cpu') {
      // CPU time this process has used (µs): per-request cost independent of machine load.
      const u = process.cpuUsage();
      process.send?.({ cmd: 'cpu-result', micros: u.user + u.system });
    }
  });

  const app = createApp(composition);
  const server = createHttpServer(app).listen(0, '127.0.0.1', () => {
    const a = server.address() as { port: number };
    process.send?.({ cmd: 'listening', url: `http://127.0.0.1:${a.port}`, token });
  });
  process.on('SIGTERM', () => {
    server.close(() => {
      void composition
        .stop()
        .then(() => pool.end())
        .then(() => process.exit(0));
    });
    server.closeAllConnections();
  });
}

main().catch((e: Error) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
