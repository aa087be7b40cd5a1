/**
 * Graceful drain of the real server process (`tsx server/src/index.ts`, as `npm start`): on
 * SIGTERM readiness answers 503 at once, responses carry Connection: close, the listener stops
 * accepting after SHUTDOWN_DRAIN_DELAY_MS, a request in flight still completes (its audit row
 * committed), then the pools close and the process exits 0.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { buildTestApp, ownerPool, type TestApp } from '../helpers/app';
import { loginAs } from '../helpers/auth';
import { testEnv } from '../helpers/env';

const ROOT = path.resolve(__dirname, '../../..');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');

let t: TestApp;
let owner: pg.Pool;
let dataDir: string;
let env: Record<string, string | undefined>;

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-drain-'));
  env = testEnv({
    JWT_SECRET: randomBytes(48).toString('base64'),
    FLEET_DATA_DIR: dataDir,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    SHUTDOWN_DRAIN_DELAY_MS: '1500',
  });
  // Same secrets as the child: tokens issued here verify there.
  t = await buildTestApp({ env });
  owner = ownerPool();
});

afterAll(async () => {
  await t.close();
  await owner.end();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function startServer(): Promise<{ child: ChildProcessWithoutNullStreams; port: number; out: () => string }> {
  const child = spawn(TSX, ['server/src/index.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } as NodeJS.ProcessEnv,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /listening on http:\/\/[\d.]+:(\d+)/.exec(out);
      if (m) {
        clearInterval(timer);
        resolve(Number(m[1]));
      }
    }, 50);
    child.once('exit', (code) => {
      clearInterval(timer);
      reject(new Error(`exited ${code}: ${out}`));
    });
  });
  return { child, port, out: () => out };
}

/** Local ports of the TCP sockets a process holds (Linux /proc): its database connections among them. */
function childTcpPorts(root: number): number[] {
  // tsx runs the server in a child process of its own: take the whole process tree.
  const parentOf = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      parentOf.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  const tree = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, ppid] of parentOf) {
      if (tree.has(ppid) && !tree.has(pid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  const inodes = new Set<string>();
  for (const pid of tree) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1] as string);
      } catch {
        /* closed meanwhile */
      }
    }
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(table)) continue;
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && inodes.has(cols[9] as string))
        ports.push(parseInt((cols[1] as string).split(':')[1] as string, 16));
    }
  }
  return ports;
}

/** One HTTP/1.1 exchange on a fresh connection; resolves with the raw response text. */
function exchange(port: number, head: string, body = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(head + body));
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    s.on('error', reject);
  });
}

function until(cond: () => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const timer = setInterval(() => {
      if (cond()) {
        clearInterval(timer);
        resolve();
      } else if (Date.now() - started > 20_000) {
        clearInterval(timer);
        reject(new Error(`gave up waiting for ${what}`));
      }
    }, 20);
  });
}

test('when sent SIGTERM with a request in flight, then readiness is 503 at once, the request completes, new connections are refused after the drain delay, pools close and it exits 0', async () => {
  const login = await loginAs(t, { role: 'user' });
  const { child, port, out } = await startServer();
  try {
    const ready = await exchange(port, 'GET /api/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(ready).toMatch(/^HTTP\/1\.1 200 /);
    // The database backends serving the child's own connections (other test files run servers too).
    const ports = childTcpPorts(child.pid as number);
    const childPids = (
      await owner.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[])', [ports])
    ).rows.map((r) => r.pid);
    expect(childPids.length).toBeGreaterThan(0);

    // A write in flight: headers and half of its body sent, the rest after SIGTERM.
    const resourceId = `drain-${randomBytes(6).toString('hex')}`;
    const body = Buffer.from(JSON.stringify({ action: 'vehicle.unlock', resourceType: 'vehicle', resourceId }));
    const half = Math.floor(body.length / 2);
    const inflight = net.connect(port, '127.0.0.1');
    const answer = new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      inflight.on('data', (c: Buffer) => chunks.push(c));
      inflight.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      inflight.on('error', reject);
    });
    await new Promise<void>((r) => inflight.once('connect', () => r()));
    inflight.write(
      `POST /api/v1/security/audit/log HTTP/1.1\r\nHost: x\r\nAuthorization: ${login.authorization}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    inflight.write(body.subarray(0, half));

    child.kill('SIGTERM');
    await until(() => out().includes('"message":"shutting down"'), 'the shutdown to begin');
    const draining = await exchange(port, 'GET /api/health/ready HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(draining).toMatch(/^HTTP\/1\.1 503 /);
    expect(draining.toLowerCase()).toContain('connection: close');
    expect(draining).toContain('"instance":{"status":"down"');
    // Liveness still answers during the delay (the process is alive), and asks the client to go elsewhere.
    const live = await exchange(port, 'GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(live).toMatch(/^HTTP\/1\.1 200 /);
    expect(live.toLowerCase()).toContain('connection: close');

    // After the drain delay the listener is closed: new connections are refused.
    await expect(
      (async () => {
        for (let i = 0; i < 200; i += 1) {
          await exchange(port, 'GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
    ).rejects.toThrow(/ECONNREFUSED/);

    // The request in flight still completes, and its row is committed.
    inflight.write(body.subarray(half));
    const res = await answer;
    expect(res).toMatch(/^HTTP\/1\.1 200 /);
    expect(res.toLowerCase()).toContain('connection: close');
    const exited = await new Promise<number | null>((resolve) =>
      child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code)),
    );
    expect(exited).toBe(0);
    expect(out()).toContain('"message":"stopped"');
    expect(
      (await owner.query('SELECT count(*)::int AS n FROM audit_logs WHERE resource_id = $1', [resourceId])).rows[0].n,
    ).toBe(1);
    // Its pool is closed: none of the connections it held is left on the server.
    const still = await owner.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1::int[])', [
      childPids,
    ]);
    expect(still.rows[0].n).toBe(0);
  } finally {
    child.kill('SIGKILL');
  }
}, 90_000);
