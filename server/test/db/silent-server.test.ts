/**
 * A database that accepts the TCP connection and never answers (a half-open connection, a
 * firewall that black-holes the reply) must not hang the service or an operator command: the
 * dedicated connections (migrations, start-up checks, db:app-login, the embedded logins) give up
 * after DB_POOL_TIMEOUT with a message saying what happened.
 */
import { spawn } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { runMigrations } from '../../src/db/migrate';

const ROOT = path.resolve(__dirname, '../..', '..');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');

let silent: net.Server;
let url: string;
const sockets = new Set<net.Socket>();
beforeAll(async () => {
  silent = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  url = `postgres://postgres@127.0.0.1:${(silent.address() as AddressInfo).port}/x`;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => silent.close(() => r()));
});

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(TSX, args, {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(kill);
      resolve({ code, out, ms: Date.now() - started });
    });
  });
}

describe('a database that never answers', () => {
  test('when migrations connect to it, then they fail after the connect timeout saying so', async () => {
    const t0 = Date.now();
    await expect(runMigrations(url, { connectTimeoutMs: 500 })).rejects.toThrow(/did not become ready in time/);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  test.each([
    ['npm run migrate', ['server/src/cli/migrate.ts']],
    ['npm start', ['server/src/index.ts']],
  ])(
    'when %s runs against it, then it exits 1 within DB_POOL_TIMEOUT and a few seconds, naming the cause',
    async (_name, args) => {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-silent-'));
      fs.chmodSync(dataDir, 0o755);
      try {
        const r = await run(args, { DATABASE_URL: url, DB_POOL_TIMEOUT: '2', FLEET_DATA_DIR: dataDir, PORT: '0' });
        expect(r.code).toBe(1);
        expect(r.out).toMatch(/did not become ready in time \(DB_POOL_TIMEOUT\)/);
        expect(r.out).not.toMatch(/\n\s+at /); // no stack trace
        expect(r.ms).toBeLessThan(30_000);
      } finally {
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    },
    90_000,
  );
});
