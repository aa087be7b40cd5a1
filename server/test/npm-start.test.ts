/**
 * `npm start` as a newcomer runs it: the real npm script (embedded PostgreSQL in a temporary
 * data directory). SIGTERM to the process npm started stops the server and its database;
 * a second start on the same data directory is refused; a busy port is reported before the
 * database starts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'development', LOG_LEVEL: 'info', ...extra };
}

interface Started {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function npmStart(extra: Record<string, string>): Started {
  const child = spawn('npm', ['start'], { cwd: ROOT, env: env(extra), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out: () => out, exited };
}

async function waitFor(s: Started, re: RegExp, ms = 90_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = re.exec(s.out());
    if (m) return m;
    if (s.child.exitCode !== null || Date.now() > deadline) throw new Error(`no ${re} in output: ${s.out()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function gone(pid: number, ms = 20_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

describe('npm start', () => {
  let dataDir: string;
  const pids: number[] = [];
  beforeAll(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-npm-start-'));
    fs.chmodSync(dataDir, 0o755);
  });
  afterAll(() => {
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('when a second npm start uses the running embedded database, then it refuses with what to do; SIGTERM to the first npm then stops the server and PostgreSQL', async () => {
    const first = npmStart({ PORT: '0', FLEET_DATA_DIR: dataDir });
    if (first.child.pid) pids.push(first.child.pid);
    const m = await waitFor(first, /stop: +Ctrl\+C, or kill (\d+)/);
    const serverPid = Number(m[1]);
    pids.push(serverPid);
    expect(first.out()).toMatch(/logs: +JSON lines on this terminal/);
    const pgDir = (/data in ([^;]+);/.exec(first.out()) as RegExpExecArray)[1] as string;
    const postmasterPid = Number(fs.readFileSync(path.join(pgDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    expect(alive(postmasterPid)).toBe(true);

    const second = npmStart({ PORT: '0', FLEET_DATA_DIR: dataDir });
    expect(await second.exited).not.toBe(0);
    expect(second.out()).toMatch(
      /embedded PostgreSQL in .* is already running .*another npm start \(pid \d+, serving http:\/\/127\.0\.0\.1:\d+\).*FLEET_DATA_DIR=/,
    );
    expect(second.out()).not.toMatch(/listening on/);

    first.child.kill('SIGTERM');
    await first.exited;
    expect(await gone(serverPid)).toBe(true);
    expect(await gone(postmasterPid)).toBe(true);
    expect(first.out()).toMatch(/"message":"stopped"/);
    expect(fs.existsSync(path.join(dataDir, 'server.pid'))).toBe(false);
  }, 180_000);

  test('when PORT is busy, then it says so and "set PORT" before starting PostgreSQL', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const s = npmStart({ PORT: String(port), FLEET_DATA_DIR: dataDir });
      expect(await s.exited).toBe(1);
      expect(s.out()).toContain(`port ${port} on 127.0.0.1 is already in use`);
      expect(s.out()).toContain('set PORT');
      expect(s.out()).not.toMatch(/embedded PostgreSQL|migrations/);
    } finally {
      busy.close();
    }
  }, 60_000);
});
