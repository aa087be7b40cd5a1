/**
 * Soak benchmark: `npm run bench:soak [minutes]` (default 10). Steady mixed load against one
 * instance (the real app in its own process) on loopback:
 *   logins (a fresh ID token from a local OIDC issuer each, then logout), GET /user,
 *   POST /audit/log, GET /audit/logs
 * at a fixed pace (BENCH_SOAK_RPS, default 200 requests/s in all). Every 30 s it samples the
 * server: RSS, heap used after a full GC, open file descriptors, pool size; at the end it
 * prints the slopes (least squares over the samples after the first 2 minutes of warm-up).
 * Targets (issue 14): heap slope < 1 MB/min after warm-up, RSS < 250 MB.
 * Database: BENCH_DATABASE_URL or TEST_DATABASE_URL, else an embedded PostgreSQL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openBenchDb } from './lib/db';
import { benchServerEnv } from './lib/harness';
import { systemClock } from '../server/src/lib/clock';
import { startIssuer } from '../server/test/auth/oidc-issuer';

interface Sample {
  t: number;
  rss: number;
  heapUsed: number;
  fds: number;
  pool: { total: number; idle: number; waiting: number };
  requests: number;
  failures: number;
  p99: number;
}

const SAMPLE_MS = 30_000;
const WARMUP_MS = 120_000;
const minutes = Number(process.argv[2] ?? process.env.BENCH_SOAK_MINUTES ?? 10);
const targetRps = Number(process.env.BENCH_SOAK_RPS ?? 200);
if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 24 * 60)
  throw new Error('usage: npm run bench:soak [minutes]');

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
function call(
  url: string,
  method: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method, agent, headers: body ? { 'content-type': 'application/json', ...headers } : headers },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

function startApp(env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', path.resolve(__dirname, 'servers/soak-app.ts')],
    {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    },
  );
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString();
      const m = /LISTENING (http:\/\/\S+)/.exec(buf);
      if (m) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve({ url: m[1] as string, child });
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`soak-app exited early (${code})`)));
  });
}

function sample(child: ChildProcess): Promise<Omit<Sample, 't' | 'requests' | 'failures' | 'p99'>> {
  return new Promise((resolve) => {
    const onMsg = (m: { type?: string } & Omit<Sample, 't' | 'requests' | 'failures' | 'p99'>): void => {
      if (m.type !== 'sample') return;
      child.off('message', onMsg);
      resolve(m);
    };
    child.on('message', onMsg);
    child.send({ type: 'sample' });
  });
}

/** Least-squares slope of y over x (x in minutes). */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += ((xs[i] as number) - mx) * ((ys[i] as number) - my);
    den += ((xs[i] as number) - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

const MB = 1024 * 1024;

async function main(): Promise<void> {
  const db = await openBenchDb();
  const issuer = await startIssuer();
  const owner = new pg.Pool({ connectionString: db.url, max: 2 });
  let child: ChildProcess | null = null;
  try {
    const tenant = 'soak';
    const users = Array.from({ length: 20 }, (_, i) => `soak.user${i}@example.com`);
    for (const email of users)
      await owner.query(`INSERT INTO users (tenant_id, email, role) VALUES ($1, $2, 'user')`, [tenant, email]);
    const app = await startApp({
      ...benchServerEnv(db.url),
      NODE_ENV: 'test',
      FLEET_DATA_DIR: os.tmpdir(),
      LOG_LEVEL: 'warn',
      DB_POOL_SIZE: '10',
      ...issuer.env(),
    });
    child = app.child;
    const base = `${app.url}/api/v1/security`;
    const login = async (email: string): Promise<string> => {
      const r = await call(
        `${base}/login`,
        'POST',
        JSON.stringify({ email, idToken: issuer.idToken(systemClock, email) }),
      );
      if (r.status !== 200) throw new Error(`login ${r.status} ${r.body.slice(0, 200)}`);
      return `Bearer ${(JSON.parse(r.body) as { token: string }).token}`;
    };
    // Long-lived sessions used by the /user and audit operations (one per user).
    const tokens: string[] = [];
    for (const u of users) tokens.push(await login(u));

    let requests = 0;
    let failures = 0;
    let latencies: number[] = [];
    const statuses = new Map<number, number>();
    const errorsByCause = new Map<string, number>();
    let seq = 0;
    async function op(): Promise<void> {
      seq += 1;
      const token = tokens[seq % tokens.length] as string;
      const roll = seq % 20;
      const t0 = process.hrtime.bigint();
      let status: number;
      try {
        if (roll === 0) {
          // login + logout (2 requests)
          const email = users[seq % users.length] as string;
          const t = await login(email);
          status = (await call(`${base}/logout`, 'POST', undefined, { authorization: t })).status;
          requests += 1;
        } else if (roll < 9) {
          status = (await call(`${base}/user`, 'GET', undefined, { authorization: token })).status;
        } else if (roll < 16) {
          status = (
            await call(
              `${base}/audit/log`,
              'POST',
              JSON.stringify({
                action: 'vehicle.unlock',
                resourceType: 'vehicle',
                resourceId: `v-${seq % 5000}`,
                after: { seq },
              }),
              { authorization: token },
            )
          ).status;
        } else {
          status = (await call(`${base}/audit/logs?limit=20`, 'GET', undefined, { authorization: token })).status;
        }
      } catch (err) {
        // No HTTP answer: counted by cause (timeout, ECONNRESET on a reused keep-alive socket, …).
        status = -1;
        const cause = (err as { code?: string; message?: string }).code ?? (err as Error).message ?? 'error';
        errorsByCause.set(cause, (errorsByCause.get(cause) ?? 0) + 1);
      }
      requests += 1;
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (status !== 200) failures += 1;
    }

    const started = Date.now();
    const end = started + minutes * 60_000;
    const samples: Sample[] = [];
    let inFlight = 0;
    const MAX_IN_FLIGHT = 64;
    // Fixed pace: every 10 ms, start targetRps/100 operations (each ~1 request; logins 2).
    const pacer = setInterval(() => {
      const n = targetRps / 100;
      for (let i = 0; i < n; i++) {
        if (inFlight >= MAX_IN_FLIGHT) break;
        inFlight += 1;
        void op().finally(() => (inFlight -= 1));
      }
    }, 10);

    process.stdout.write(
      `soak: ${minutes} min at ~${targetRps} req/s (5% login+logout, 40% GET /user, 35% POST /audit/log, 20% GET /audit/logs); sample every 30 s\n`,
    );
    process.stdout.write(
      '   min     RSS MB  heap MB (after GC)  fds  pool total/idle/waiting   req/s  failures  p99 ms\n',
    );
    let lastReq = 0;
    let lastT = started;
    for (;;) {
      const wait = Math.min(SAMPLE_MS, end - Date.now());
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const s = await sample(child);
      const now = Date.now();
      const sorted = latencies.sort((a, b) => a - b);
      const p99 = sorted.length ? (sorted[Math.floor(sorted.length * 0.99)] as number) : 0;
      latencies = [];
      const row: Sample = { t: now - started, ...s, requests: requests - lastReq, failures, p99 };
      samples.push(row);
      const rps = (requests - lastReq) / ((now - lastT) / 1000);
      lastReq = requests;
      lastT = now;
      process.stdout.write(
        `${(row.t / 60_000).toFixed(1).padStart(6)}  ${(row.rss / MB).toFixed(1).padStart(9)}  ${(row.heapUsed / MB).toFixed(1).padStart(18)}  ${String(row.fds).padStart(3)}  ${`${row.pool.total}/${row.pool.idle}/${row.pool.waiting}`.padStart(23)}  ${rps.toFixed(0).padStart(6)}  ${String(failures).padStart(8)}  ${p99.toFixed(1).padStart(6)}\n`,
      );
      if (now >= end) break;
    }
    clearInterval(pacer);
    while (inFlight > 0) await new Promise((r) => setTimeout(r, 50));

    const after = samples.filter((s) => s.t >= Math.min(WARMUP_MS, (minutes * 60_000) / 3));
    const xs = after.map((s) => s.t / 60_000);
    const heapSlope = slope(
      xs,
      after.map((s) => s.heapUsed / MB),
    );
    const rssSlope = slope(
      xs,
      after.map((s) => s.rss / MB),
    );
    const fdSlope = slope(
      xs,
      after.map((s) => s.fds),
    );
    const maxRss = Math.max(...samples.map((s) => s.rss)) / MB;
    process.stdout.write(
      [
        '',
        `requests: ${requests} in ${((Date.now() - started) / 60_000).toFixed(1)} min; by status (-1: no answer): ${[
          ...statuses.entries(),
        ]
          .sort((a, b) => a[0] - b[0])
          .map(([k, v]) => `${k}×${v}`)
          .join(
            ' ',
          )}${errorsByCause.size ? `; no answer by cause: ${[...errorsByCause.entries()].map(([k, v]) => `${k}×${v}`).join(' ')}` : ''}`,
        `slopes after warm-up (${after.length} samples from ${(after[0]?.t ?? 0) / 60_000} min): heap ${heapSlope.toFixed(3)} MB/min, RSS ${rssSlope.toFixed(3)} MB/min, fds ${fdSlope.toFixed(3)}/min`,
        `max RSS ${maxRss.toFixed(1)} MB (target < 250); heap slope target < 1 MB/min: ${Math.abs(heapSlope) < 1 ? 'met' : 'NOT met'}`,
        '',
      ].join('\n'),
    );
  } finally {
    if (child) {
      const c = child;
      await new Promise<void>((r) => {
        c.once('exit', () => r());
        c.kill('SIGTERM');
        setTimeout(() => {
          c.kill('SIGKILL');
          r();
        }, 10_000).unref();
      });
    }
    await owner.end();
    await issuer.stop();
    await db.close();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`soak failed: ${e.message}\n`);
  process.exit(1);
});
