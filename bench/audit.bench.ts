/**
 * POST /api/v1/security/audit/log (full stack: auth + session lookup, RBAC, validation,
 * scrubbing, insert, hash chain sealed in the background) against raw INSERTs of the same
 * audit row through the same pool, in the same run, at 20 and 50 concurrent clients: back
 * to back (capacity), then both paced at 15%, 30% and 50% of the raw INSERTs' capacity
 * (latency under a steady load, measured from each request's scheduled time). GET /api/health
 * back to back at the same concurrency shows the stack's own latency floor on this machine.
 * Targets: audited throughput >= 0.5 x raw insert with the chain on; p99 < 25 ms.
 *
 * Usage: npx tsx bench/audit.bench.ts [seconds-per-round=2.5] [rounds=3]
 * Every phase runs `rounds` times, interleaved; the summary gives medians, so one round hit by a
 * stall outside the process (a WAL fsync behind a checkpoint's writes) shows in its own line but
 * does not decide the figure alone.
 * Database: BENCH_DATABASE_URL (a throw-away database is created on that server and dropped),
 * else an embedded PostgreSQL in a temporary directory.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { openBenchDb } from './lib/db';
import { benchServerEnv, fmt, load, median, paced, type LoadResult } from './lib/harness';

const BODY = JSON.stringify({
  action: 'bench.event',
  resourceType: 'vehicle',
  resourceId: 'V-1',
  after: { mileage: 150, driver: 'd-42' },
});

interface Server {
  url: string;
  token: string;
  child: ChildProcess;
  raw(target: 'audit' | 'plain' | 'service', connections: number, seconds: number, rate?: number): Promise<LoadResult>;
  /** CPU time used by the server process so far, in µs. */
  cpu(): Promise<number>;
  stop(): Promise<void>;
}

async function startServer(env: Record<string, string>): Promise<Server> {
  const child = fork(path.resolve(__dirname, 'servers/audit-server.ts'), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const ready = await new Promise<{ url: string; token: string }>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`audit server exited early (${code})`)));
    child.on('message', (m: { cmd: string; url: string; token: string }) => {
      if (m.cmd === 'listening') resolve(m);
    });
    setTimeout(() => reject(new Error('audit server did not start in 60 s')), 60_000).unref();
  });
  return {
    ...ready,
    child,
    raw(target, connections, seconds, rate) {
      return new Promise((resolve) => {
        const onMsg = (m: { cmd: string; rps: number; p50: number; p99: number; errors: number }) => {
          if (m.cmd !== 'raw-result') return;
          child.off('message', onMsg);
          resolve({ rps: m.rps, p50: m.p50, p99: m.p99, errors: m.errors, non2xx: 0 });
        };
        child.on('message', onMsg);
        child.send({ cmd: 'raw', target, connections, seconds, rate });
      });
    },
    cpu() {
      return new Promise((resolve) => {
        const onMsg = (m: { cmd: string; micros: number }) => {
          if (m.cmd !== 'cpu-result') return;
          child.off('message', onMsg);
          resolve(m.micros);
        };
        child.on('message', onMsg);
        child.send({ cmd: 'cpu' });
      });
    },
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** Runs one phase and adds the server's CPU time per operation (µs) to the result. */
async function measured(
  s: Server,
  run: () => Promise<LoadResult>,
  seconds: number,
): Promise<LoadResult & { cpuPerOp: number }> {
  const before = await s.cpu();
  const r = await run();
  const after = await s.cpu();
  return { ...r, cpuPerOp: (after - before) / Math.max(1, r.rps * seconds) };
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 2.5);
  const rounds = Number(process.argv[3] ?? 3);
  const db = await openBenchDb();
  let server: Server | null = null;
  try {
    const setup = new pg.Client({ connectionString: db.url });
    await setup.connect();
    await setup.query(
      'CREATE TABLE bench_plain_audit (LIKE audit_logs INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING INDEXES)',
    );
    await setup.query('GRANT SELECT, INSERT ON bench_plain_audit TO fleet_app');
    await setup.end();
    server = await startServer(
      benchServerEnv(db.url, {
        NODE_ENV: 'production',
        DATABASE_SSL: 'disable',
        AUTH0_DOMAIN: 'bench.example.com',
        AUTH0_CLIENT_ID: 'bench',
        CORS_ORIGINS: 'https://app.example.com',
        LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
      }),
    );
    const s = server;
    const post = (connections: number, duration: number) => ({
      url: `${s.url}/api/v1/security/audit/log`,
      method: 'POST',
      connections,
      duration,
      headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json', 'user-agent': 'bench/1.0' },
      body: BODY,
    });
    /** Back to back (capacity), or paced at `rate` requests/s (latency under that load). */
    const http = (connections: number, duration: number, rate?: number) =>
      rate ? paced({ ...post(connections, duration), rate }) : load(post(connections, duration));

    const summary: string[] = [];
    for (const connections of [20, 50]) {
      // Warm-up (JIT, pool connections, caches) for each.
      await s.raw('plain', connections, 0.5);
      await s.raw('audit', connections, 0.5);
      await s.raw('service', connections, 0.5);
      await http(connections, 1);
      type Measured = LoadResult & { cpuPerOp: number };
      const plain: Measured[] = [];
      const raw: Measured[] = [];
      const api: Measured[] = [];
      const svc: Measured[] = [];
      // Rounds alternate the three so machine noise spreads over all of them.
      for (let i = 0; i < rounds; i++) {
        raw.push(await measured(s, () => s.raw('audit', connections, seconds), seconds));
        api.push(await measured(s, () => http(connections, seconds), seconds));
        plain.push(await measured(s, () => s.raw('plain', connections, seconds), seconds));
        svc.push(await measured(s, () => s.raw('service', connections, seconds), seconds));
      }
      const line = (name: string, r: Measured) =>
        console.log(`c=${connections} ${name} ${fmt(r)}  server CPU ${Math.round(r.cpuPerOp)} µs/op`);
      for (const r of raw) line('raw INSERT audit_logs  ', r);
      for (const r of plain) line('raw INSERT plain copy  ', r);
      for (const r of svc) line('AuditService.record()  ', r);
      for (const r of api) line('POST /audit/log        ', r);
      // The stack's own floor at this concurrency: GET /api/health (no database, no body, no
      // auth) back to back, on the same server in the same run.
      const health: Measured[] = [];
      for (let i = 0; i < rounds; i++)
        health.push(
          await measured(s, () => load({ url: `${s.url}/api/health`, connections, duration: seconds }), seconds),
        );
      for (const r of health) line('GET /api/health        ', r);
      // Latency at fixed offered loads: fractions of what raw INSERTs reached above, the same
      // rate for both, latencies counted from each request's scheduled send time.
      const rr = median(raw.map((r) => r.rps));
      const pacedLines: string[] = [];
      for (const fraction of [0.15, 0.3, 0.5]) {
        const rate = Math.round(rr * fraction);
        const fixedRaw: Measured[] = [];
        const fixedApi: Measured[] = [];
        for (let i = 0; i < rounds; i++) {
          fixedRaw.push(await measured(s, () => s.raw('audit', connections, seconds, rate), seconds));
          fixedApi.push(await measured(s, () => http(connections, seconds, rate), seconds));
        }
        for (const r of fixedRaw) line(`raw INSERT @ ${rate}/s`.padEnd(23), r);
        for (const r of fixedApi) line(`POST @ ${rate}/s`.padEnd(23), r);
        pacedLines.push(
          `      paced at ${rate}/s (${Math.round(fraction * 100)}% of the raw-INSERT capacity), ${connections} clients: POST /audit/log p50 ${median(fixedApi.map((r) => r.p50)).toFixed(1)} ms p99 ${median(fixedApi.map((r) => r.p99)).toFixed(1)} ms | raw INSERT p50 ${median(fixedRaw.map((r) => r.p50)).toFixed(1)} ms p99 ${median(fixedRaw.map((r) => r.p99)).toFixed(1)} ms`,
        );
      }
      const pr = median(plain.map((r) => r.rps));
      const ar = median(api.map((r) => r.rps));
      const sr = median(svc.map((r) => r.rps));
      const p99 = (xs: LoadResult[]) => median(xs.map((r) => r.p99)).toFixed(1);
      const cpu = (xs: Measured[]) => Math.round(median(xs.map((r) => r.cpuPerOp)));
      summary.push(
        `c=${connections}: POST /audit/log ${Math.round(ar)}/s p99 ${p99(api)} ms (server CPU ${cpu(api)} µs/req) | raw INSERT into audit_logs ${Math.round(rr)}/s p99 ${p99(raw)} ms (${cpu(raw)} µs/op) | ` +
          `raw INSERT into a trigger-less copy ${Math.round(pr)}/s p99 ${p99(plain)} ms | ratio POST/raw ${(ar / rr).toFixed(3)} (vs copy ${(ar / pr).toFixed(3)})\n` +
          `      audit layer alone (AuditService.record(), no HTTP/auth): ${Math.round(sr)}/s p99 ${p99(svc)} ms (${cpu(svc)} µs/op) | ratio record()/raw ${(sr / rr).toFixed(3)}\n` +
          `      the stack's floor, GET /api/health (no database) back to back: ${Math.round(median(health.map((r) => r.rps)))}/s p99 ${p99(health)} ms\n` +
          pacedLines.join('\n'),
      );
    }

    // The chain kept up: wait for the sealer to drain, then report how fast rows were sealed.
    const owner = new pg.Client({ connectionString: db.url });
    await owner.connect();
    let pending = -1;
    const loadEnd = Date.now();
    const pendingAtEnd =
      (await owner.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_pending')).rows[0]?.n ?? -1;
    while (Date.now() - loadEnd < 60_000) {
      const { rows } = await owner.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_pending');
      pending = rows[0]?.n ?? -1;
      if (pending === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const drainSeconds = (Date.now() - loadEnd) / 1000;
    const { rows: lag } = await owner.query<{ rows: string; p50: number; p99: number; max: number }>(
      `SELECT count(*)::text AS rows,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM c.sealed_at - l.created_at)) * 1000 AS p50,
              percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM c.sealed_at - l.created_at)) * 1000 AS p99,
              max(extract(epoch FROM c.sealed_at - l.created_at)) * 1000 AS max
         FROM audit_chain c JOIN audit_logs l ON l.id = c.audit_id`,
    );
    const { rows: tenants } = await owner.query<{ n: number }>(
      'SELECT count(DISTINCT tenant_id)::int AS n FROM audit_chain',
    );
    await owner.end();

    console.log(
      `\nPOST /audit/log vs raw INSERT of the same row, same pool, ${rounds} rounds x ${seconds} s (medians):`,
    );
    for (const line of summary) console.log(line);
    console.log('targets: ratio >= 0.5 with the chain on; POST /audit/log p99 < 25 ms');
    console.log(
      '  back to back: every client always has a request out, so mean latency = clients ÷ throughput; the p99 of GET /api/health',
    );
    console.log(
      '  (no database) at the same concurrency is the floor this machine puts under any route of the stack. "paced at N/s" lines:',
    );
    console.log(
      "  N req/s offered evenly (open loop, latency from each request's scheduled send time), where the p99 target applies to a",
    );
    console.log('  server that is not saturated.');
    const l = lag[0];
    console.log(
      `chain: ${l?.rows} rows sealed across ${tenants[0]?.n} tenant(s); ${pendingAtEnd} unsealed when the load stopped, ${pending} left ${drainSeconds.toFixed(1)} s later; created->sealed p50 ${Number(l?.p50).toFixed(0)} ms, p99 ${Number(l?.p99).toFixed(0)} ms, max ${Number(l?.max).toFixed(0)} ms`,
    );
  } finally {
    await server?.stop();
    await db.close();
  }
}

main().catch((e: Error) => {
  console.error(e);
  process.exit(1);
});
