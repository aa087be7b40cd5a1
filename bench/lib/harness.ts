/**
 * Benchmark harness: runs a server in a child process (so the load generator does not share
 * its event loop), drives it with autocannon over loopback, and reports req/s and latency.
 * Rounds alternate between the baseline and the candidate to even out machine noise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import autocannon from 'autocannon';
import { generateSigningKey } from '../../server/src/lib/jws-keys';

export interface LoadResult {
  /** Server CPU time per request (µs), when measured with cpuOf(). */
  cpuPerReq?: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

/**
 * What every bench server's environment starts from: its database, fresh strong secrets, and
 * rate limits set out of the way of the load (the limiter still runs on every request).
 */
export function benchServerEnv(databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    JWT_SECRET: randomBytes(48).toString('base64'),
    FLEET_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    // Access tokens are ES256 since issue 19; production refuses to start without the key.
    JWT_SIGNING_KEY: generateSigningKey('ES256'),
    RATE_LIMIT_MAX: '1000000',
    RATE_LIMIT_USER_MAX: '1000000',
    ...extra,
  };
}

/**
 * Starts a bench server in a child process. Its stdout (the access log, LISTENING line) goes
 * to a file, as it would to a log collector: the load generator in this process must not
 * also be the one draining the server's log pipe (that slowed the server it measures).
 */
export async function startServer(
  script: string,
  env: Record<string, string> = {},
): Promise<{ url: string; child: ChildProcess; stop: () => Promise<void> }> {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-bench-log-'));
  const logFile = path.join(logDir, 'stdout.log');
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(__dirname, '..', script)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', fd, 'inherit'],
  });
  fs.closeSync(fd);
  const cleanup = (): void => fs.rmSync(logDir, { recursive: true, force: true });
  const url = await new Promise<string>((resolve, reject) => {
    const started = Date.now();
    const onExit = (code: number | null): void => {
      clearInterval(poll);
      cleanup();
      reject(new Error(`${script} exited early (${code})`));
    };
    const poll = setInterval(() => {
      const m = /LISTENING (http:\/\/\S+)/.exec(fs.readFileSync(logFile, 'utf8').slice(0, 65536));
      if (m) {
        clearInterval(poll);
        child.off('exit', onExit);
        resolve(m[1] as string);
      } else if (Date.now() - started > 60_000) {
        clearInterval(poll);
        reject(new Error(`${script} did not start in 60 s`));
      }
    }, 100);
    child.once('exit', onExit);
  });
  return {
    url,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => {
          cleanup();
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

/**
 * One autocannon run: the connections send back to back (a closed loop), which measures
 * capacity; latency there is mostly queueing (connections ÷ throughput). For latency at a
 * given load use paced().
 */
export async function load(opts: {
  url: string;
  connections?: number;
  duration?: number;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}): Promise<LoadResult> {
  const r = await autocannon({
    url: opts.url,
    connections: opts.connections ?? 20,
    duration: opts.duration ?? 5,
    method: (opts.method ?? 'GET') as 'GET',
    headers: opts.headers,
    body: opts.body,
  });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx };
}

export function fmt(r: LoadResult): string {
  const cpu = r.cpuPerReq !== undefined ? `  server CPU ${r.cpuPerReq.toFixed(0).padStart(4)} µs/req` : '';
  return `${Math.round(r.rps).toString().padStart(7)} req/s  p50 ${r.p50.toFixed(1).padStart(5)} ms  p99 ${r.p99.toFixed(1).padStart(5)} ms  errors ${r.errors} non2xx ${r.non2xx}${cpu}`;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** CPU time (user + system, µs) a process has used so far, from /proc (Linux). */
export function cpuMicros(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks / 100) * 1e6;
}

/** Runs a load and adds the server's CPU time per request: robust to a busy machine, unlike req/s. */
export async function loadWithCpu(pid: number, opts: Parameters<typeof load>[0]): Promise<LoadResult> {
  const before = cpuMicros(pid);
  const r = await load(opts);
  const used = cpuMicros(pid) - before;
  const total = r.rps * (opts.duration ?? 5);
  return { ...r, cpuPerReq: total > 0 ? used / total : 0 };
}

/**
 * Open-loop load at a fixed rate: `rate` requests/s over `connections` keep-alive
 * connections, evenly spaced (connection w sends its k-th request at
 * start + (w/connections + k) × connections/rate). A request that cannot go at its time
 * (the previous one on its connection is still out) goes as soon as it can, and every latency
 * counts from the scheduled time, so a stall is not hidden (no coordinated omission).
 * autocannon's own rate option sends each connection's per-second quota in a burst at the
 * start of every second, which measures bursts, not a steady load.
 */
export async function paced(opts: {
  url: string;
  rate: number;
  connections: number;
  duration: number;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}): Promise<LoadResult> {
  const u = new URL(opts.url);
  const body = opts.body === undefined ? Buffer.alloc(0) : Buffer.from(opts.body);
  const head = [
    `${opts.method ?? 'GET'} ${u.pathname}${u.search} HTTP/1.1`,
    `host: ${u.host}`,
    'connection: keep-alive',
    ...Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
  ];
  if (body.length > 0) head.push(`content-length: ${body.length}`);
  // The request as bytes, built once (as autocannon does); responses are read with a minimal
  // parser (status line, Content-Length), so the client costs little next to the server.
  const request = Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`), body]);
  const intervalNs = BigInt(Math.round((opts.connections / opts.rate) * 1e9));
  const start = process.hrtime.bigint() + 50_000_000n;
  const end = start + BigInt(Math.round(opts.duration * 1e9));
  const lat: number[] = [];
  let errors = 0;
  let non2xx = 0;
  await Promise.all(
    Array.from(
      { length: opts.connections },
      (_, w) =>
        new Promise<void>((resolve) => {
          const sock = net.connect(Number(u.port), u.hostname);
          sock.setNoDelay(true);
          let next = start + (intervalNs * BigInt(w)) / BigInt(opts.connections);
          let buf: Buffer = Buffer.alloc(0);
          let timer: NodeJS.Timeout | null = null;
          const finish = (): void => {
            if (timer) clearTimeout(timer);
            sock.destroy();
            resolve();
          };
          const fire = (): void => {
            timer = null;
            if (next >= end) {
              finish();
              return;
            }
            const now = process.hrtime.bigint();
            if (next > now) {
              timer = setTimeout(fire, Number(next - now) / 1e6);
              return;
            }
            sock.write(request);
          };
          sock.on('data', (chunk: Buffer) => {
            buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
            for (;;) {
              const headerEnd = buf.indexOf('\r\n\r\n');
              if (headerEnd === -1) return;
              const headerText = buf.subarray(0, headerEnd).toString('latin1');
              const len = Number(/\r\ncontent-length: *(\d+)/i.exec(headerText)?.[1] ?? 0);
              if (buf.length < headerEnd + 4 + len) return;
              buf = buf.subarray(headerEnd + 4 + len);
              const status = Number(headerText.slice(9, 12));
              if (status >= 200 && status < 300) lat.push(Number(process.hrtime.bigint() - next) / 1e6);
              else non2xx += 1;
              next += intervalNs;
              fire();
            }
          });
          sock.on('error', () => {
            errors += 1;
            finish();
          });
          sock.on('connect', fire);
        }),
    ),
  );
  lat.sort((a, b) => a - b);
  const at = (p: number): number =>
    lat.length ? (lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] as number) : 0;
  return { rps: lat.length / opts.duration, p50: at(0.5), p99: at(0.99), errors, non2xx };
}
