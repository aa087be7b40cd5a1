/**
 * SIEM forwarding benchmarks (loopback only, about a minute):
 *  1. the cost the outbox adds to an audited high-severity write (the audit_logs trigger queuing
 *     the row while siem_settings.forwarding is on), alternating rounds with forwarding off/on:
 *     a) over HTTP, the measure: a POST /audit/log (bench/servers/audit-log.ts:
 *        the app's middleware chain, requireAuth, validation, recordAs) with SIEM
 *        configured and its worker delivering meanwhile, autocannon, 20 connections
 *        (target <= 10 %);
 *     b) the bare service: AuditService.record() of a high event as composed in production
 *        (alert rules hook registered), 20 concurrent writers; a raw autocommitted INSERT of
 *        the same row is printed for context;
 *  2. forwarding throughput (events/s) from the outbox to a local Splunk HEC receiver for
 *     batch sizes 10/100/1000, against the connector posting the same events directly;
 *  3. enqueue -> receiver latency with the worker running (target: <= flush interval + 250 ms).
 * Database: BENCH_DATABASE_URL or TEST_DATABASE_URL (a throw-away database is created on that
 * server), otherwise an embedded PostgreSQL in a temporary directory.
 * Usage: npx tsx bench/siem.bench.ts [seconds-per-round=3] [rounds=3] [--only=1a,1b,2,3]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { loadConfig, type Config } from '../server/src/config';
import { openBenchDb } from './lib/db';
import { benchServerEnv } from './lib/harness';
import { createPool, poolOptionsFromConfig } from '../server/src/db/pool';
import { systemClock } from '../server/src/lib/clock';
import { createLogger } from '../server/src/lib/logger';
import { createAuditService, type AuditService } from '../server/src/services/audit/service';
import type { AuditEvent } from '../server/src/services/audit/types';
import { buildSecurityMonitoring } from '../server/src/services/siem';
import { createSplunkConnector } from '../server/src/services/siem/connectors/splunk';
import { auditEventId } from '../server/src/services/siem/event-id';
import { normalizeEvent } from '../server/src/services/siem/events';

const TOKEN = randomBytes(16).toString('hex');

/** A minimal Splunk HEC endpoint recording when each event id arrived. */
async function hecReceiver(): Promise<{
  url: string;
  arrivals: Map<string, number>;
  count(): number;
  close(): Promise<void>;
}> {
  const arrivals = new Map<string, number>();
  let count = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const now = performance.now();
      if (req.headers.authorization !== `Splunk ${TOKEN}`) {
        res.writeHead(403).end('{"text":"Invalid token","code":4}');
        return;
      }
      for (const m of Buffer.concat(chunks)
        .toString('utf8')
        .matchAll(/"event":\{"id":"([0-9a-f-]{36})"/g)) {
        arrivals.set(m[1] as string, now);
        count += 1;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"text":"Success","code":0}');
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arrivals,
    count: () => count,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function drive(
  concurrency: number,
  seconds: number,
  op: () => Promise<unknown>,
): Promise<{ ops: number; p50: number; p99: number }> {
  const lat: number[] = [];
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await op();
        lat.push(performance.now() - t0);
      }
    }),
  );
  lat.sort((a, b) => a - b);
  return { ops: lat.length / seconds, p50: pct(lat, 50), p99: pct(lat, 99) };
}

async function startAuditLogServer(
  env: Record<string, string>,
): Promise<{ url: string; token: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(__dirname, 'servers/audit-log.ts')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const { url, token } = await new Promise<{ url: string; token: string }>((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      const u = /LISTENING (http:\/\/\S+)/.exec(buf);
      const t = /TOKEN (\S+)/.exec(buf);
      if (u && t) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve({ url: u[1] as string, token: t[1] as string });
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`audit-log server exited early (${code})`)));
  });
  return { url, token, stop: () => new Promise<void>((r) => (child.once('exit', () => r()), child.kill('SIGTERM'))) };
}

async function hammer(
  url: string,
  token: string,
  seconds: number,
): Promise<{ rps: number; p99: number; non2xx: number }> {
  const r = await autocannon({
    url: `${url}/api/v1/security/audit/log`,
    connections: 20,
    duration: seconds,
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      action: 'fleet.vehicle.immobilized',
      resourceType: 'vehicle',
      resourceId: 'V-42',
      severity: 'high',
      after: { immobilized: true },
    }),
  });
  return { rps: r.requests.average, p99: r.latency.p99, non2xx: r.non2xx };
}

async function main(): Promise<void> {
  const positional = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const onlyArg = process.argv.find((a) => a.startsWith('--only='));
  const only = new Set(onlyArg ? onlyArg.slice(7).split(',') : ['1a', '1b', '2', '3']);
  const seconds = Number(positional[0] ?? 3);
  const rounds = Number(positional[1] ?? 3);
  const db = await openBenchDb();
  const hec = await hecReceiver();
  const logger = createLogger({ level: 'error', console: true });
  let owner: pg.Pool | null = null;
  try {
    owner = new pg.Pool({ connectionString: db.url, max: 2 });
    const cfg = (over: Record<string, string>): Config => {
      const r = loadConfig({
        NODE_ENV: 'test',
        DATABASE_URL: db.url,
        DB_POOL_SIZE: '20',
        JWT_SECRET: randomBytes(48).toString('base64'),
        FLEET_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
        SIEM_PROVIDER: 'splunk',
        SIEM_ENDPOINT_URL: hec.url,
        SIEM_API_KEY: TOKEN,
        FLEET_DATA_DIR: os.tmpdir(),
        ...over,
      });
      if (!r.config) throw new Error(JSON.stringify(r.errors));
      return r.config;
    };
    const config = cfg({});
    const pool = createPool(poolOptionsFromConfig(config, db.url), logger);
    const audit: AuditService = createAuditService({ pool, logger });
    const monitoring = buildSecurityMonitoring({ config, pool, logger, clock: systemClock, audit });
    const event = (): AuditEvent => ({
      tenantId: 'bench',
      action: 'user.deactivated',
      resourceType: 'user',
      resourceId: randomBytes(6).toString('hex'),
      severity: 'high',
      result: 'success',
      ipAddress: '127.0.0.1',
      userAgent: 'bench',
      after: { isActive: false },
    });

    // ---- 1a. over HTTP
    if (only.has('1a')) {
      const serverEnv = benchServerEnv(db.url, {
        NODE_ENV: 'test',
        DB_POOL_SIZE: '20',
        FLEET_DATA_DIR: os.tmpdir(),
        LOG_LEVEL: 'warn',
      });
      const forwarding = (on: boolean) => owner?.query('UPDATE siem_settings SET forwarding = $1', [on]);
      const phase = async (label: string, workerOn: boolean): Promise<void> => {
        const server = await startAuditLogServer({
          ...serverEnv,
          SIEM_PROVIDER: 'splunk',
          SIEM_ENDPOINT_URL: hec.url,
          SIEM_API_KEY: TOKEN,
          BENCH_SIEM_WORKER: workerOn ? 'on' : 'off',
        });
        const h = { off: [] as number[], on: [] as number[], offP99: [] as number[], onP99: [] as number[] };
        try {
          await hammer(server.url, server.token, 2);
          for (let i = 0; i < rounds; i++) {
            await forwarding(false);
            const a = await hammer(server.url, server.token, seconds);
            await forwarding(true);
            const b = await hammer(server.url, server.token, seconds);
            if (a.non2xx + b.non2xx > 0) throw new Error(`non-2xx answers: ${a.non2xx} / ${b.non2xx}`);
            h.off.push(a.rps);
            h.on.push(b.rps);
            h.offP99.push(a.p99);
            h.onP99.push(b.p99);
            console.log(
              `${label} round ${i + 1}: forwarding off ${Math.round(a.rps)} req/s p99 ${a.p99} ms | on ${Math.round(b.rps)} req/s p99 ${b.p99} ms`,
            );
          }
        } finally {
          await server.stop();
          await owner?.query('TRUNCATE siem_outbox');
        }
        const r = median(h.on) / median(h.off);
        console.log(
          `\n1a) POST /audit/log, high severity, 20 connections, ${rounds} x ${seconds} s (medians), ${label}`,
        );
        console.log(`   forwarding off : ${Math.round(median(h.off))} req/s, p99 ${median(h.offP99)} ms`);
        console.log(`   outbox on      : ${Math.round(median(h.on))} req/s, p99 ${median(h.onP99)} ms`);
        console.log(`   ratio on/off = ${r.toFixed(3)} -> cost ${((1 - r) * 100).toFixed(1)} % (target <= 10 %)\n`);
      };
      await phase('queuing only (worker paused)', false);
      await phase('queuing + the worker delivering to the local HEC (SIEM_BATCH_SIZE=10)', true);
      await owner.query('TRUNCATE siem_outbox');
    }

    // ---- 1b. the bare service
    if (only.has('1b')) {
      // One statement with the tenant context row-level security requires (forwarding off meanwhile).
      const rawInsert = () =>
        pool.query(
          `WITH ctx AS MATERIALIZED (SELECT set_config('app.tenant_id', 'bench', true) AS tenant_id)
           INSERT INTO audit_logs (tenant_id, user_id, action, resource_type, resource_id, before, after, ip_address, user_agent, result, error_message, severity, request_id)
           SELECT ctx.tenant_id, NULL, 'user.deactivated', 'user', $1, NULL, '{"isActive":false}', '127.0.0.1', 'bench', 'success', NULL, 'high', NULL FROM ctx`,
          [randomBytes(6).toString('hex')],
        );
      const forwarding = (on: boolean) => owner?.query('UPDATE siem_settings SET forwarding = $1', [on]);
      await drive(20, 1, () => audit.record(event()));
      const res = {
        raw: [] as number[],
        plain: [] as number[],
        hooked: [] as number[],
        plainP99: [] as number[],
        hookedP99: [] as number[],
      };
      for (let i = 0; i < rounds; i++) {
        await forwarding(false);
        const r0 = await drive(20, seconds, rawInsert);
        res.raw.push(r0.ops);
        await forwarding(false);
        const a = await drive(20, seconds, () => audit.record(event()));
        await forwarding(true);
        const b = await drive(20, seconds, () => audit.record(event()));
        res.plain.push(a.ops);
        res.hooked.push(b.ops);
        res.plainP99.push(a.p99);
        res.hookedP99.push(b.p99);
        console.log(
          `round ${i + 1}: raw INSERT ${Math.round(r0.ops)}/s | audited, forwarding off ${Math.round(a.ops)}/s p99 ${a.p99.toFixed(2)} ms | on ${Math.round(b.ops)}/s p99 ${b.p99.toFixed(2)} ms`,
        );
        await owner.query('TRUNCATE siem_outbox');
      }
      const ratio = median(res.hooked) / median(res.plain);
      console.log(
        `\n1b) AuditService.record(), high severity, 20 concurrent writers, ${rounds} x ${seconds} s (medians)`,
      );
      console.log(`   raw INSERT (autocommit)        : ${Math.round(median(res.raw))} rows/s`);
      console.log(
        `   audited, forwarding off        : ${Math.round(median(res.plain))} rows/s, p99 ${median(res.plainP99).toFixed(2)} ms`,
      );
      console.log(
        `   audited, outbox on             : ${Math.round(median(res.hooked))} rows/s, p99 ${median(res.hookedP99).toFixed(2)} ms`,
      );
      console.log(
        `   ratio with/without = ${ratio.toFixed(3)} -> outbox cost ${((1 - ratio) * 100).toFixed(1)} % (target <= 10 %)`,
      );
    }

    // ---- 2. forwarding throughput
    if (only.has('2')) {
      console.log(`\n2) forwarding throughput to a local Splunk HEC receiver (one worker)`);
      const N = 6000;
      for (const batch of [10, 100, 1000]) {
        const c = cfg({ SIEM_BATCH_SIZE: String(batch) });
        const m = buildSecurityMonitoring({
          config: c,
          pool,
          logger,
          clock: systemClock,
          audit: createAuditService({ pool, logger }),
        });
        await owner.query('TRUNCATE siem_outbox');
        const inputs = Array.from({ length: N }, (_, i) => ({
          tenantId: 'bench',
          eventType: 'fleet.bench.event',
          severity: 'high' as const,
          message: `event ${i}`,
          details: { i },
        }));
        for (let i = 0; i < N; i += 1000) await m.siem.sendBatch(inputs.slice(i, i + 1000));
        const before = hec.count();
        const t0 = performance.now();
        for (;;) if ((await m.siem.flushOnce()).claimed === 0) break;
        const outboxRate = (hec.count() - before) / ((performance.now() - t0) / 1000);
        const direct = createSplunkConnector({ endpointUrl: hec.url, apiKey: TOKEN });
        const evs = inputs.map((e) => normalizeEvent(e, Date.now()));
        const t1 = performance.now();
        for (let i = 0; i < N; i += batch) await direct.send(evs.slice(i, i + batch));
        const directRate = N / ((performance.now() - t1) / 1000);
        await direct.close();
        await m.stop();
        console.log(
          `   batch ${String(batch).padStart(4)}: outbox ${Math.round(outboxRate)} events/s | direct POST ${Math.round(directRate)} events/s | ratio ${(outboxRate / directRate).toFixed(3)}`,
        );
      }
    }

    // ---- 3. enqueue -> receiver latency with the worker running
    if (only.has('3')) {
      const interval = 1000;
      const lc = cfg({ SIEM_FLUSH_INTERVAL_MS: String(interval), SIEM_BATCH_SIZE: '10' });
      const la = createAuditService({ pool, logger });
      const lm = buildSecurityMonitoring({ config: lc, pool, logger, clock: systemClock, audit: la });
      await owner.query('TRUNCATE siem_outbox');
      await lm.start(); // also turns forwarding on
      const sent = new Map<string, number>();
      for (let i = 0; i < 20; i++) {
        const rec = await la.record(event());
        sent.set(auditEventId(rec.id), performance.now());
        await new Promise((r) => setTimeout(r, 80 + Math.random() * 300));
      }
      const deadline = performance.now() + interval * 3;
      while ([...sent.keys()].some((id) => !hec.arrivals.has(id)) && performance.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      await lm.stop();
      const lats = [...sent].map(([id, t]) => (hec.arrivals.get(id) ?? Infinity) - t).sort((a, b) => a - b);
      const max = lats[lats.length - 1] as number;
      console.log(`\n3) enqueue -> receiver latency, SIEM_FLUSH_INTERVAL_MS=${interval}, ${lats.length} events`);
      console.log(
        `   p50 ${pct(lats, 50).toFixed(0)} ms, p99 ${pct(lats, 99).toFixed(0)} ms, max ${max.toFixed(0)} ms (target <= interval + 250 = ${interval + 250} ms: ${max <= interval + 250 ? 'met' : 'NOT met'})`,
      );
    }
    await monitoring.stop();
    await pool.end();
  } finally {
    await owner?.end();
    await hec.close();
    await db.close();
  }
}

main().catch((e: Error) => {
  console.error(e);
  process.exit(1);
});
