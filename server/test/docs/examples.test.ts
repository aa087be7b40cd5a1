/**
 * The curl examples of docs/SECURITY_API_EXAMPLES.md, run as a newcomer would: every `bash`
 * block in order, in one shell, against a fresh `npm start` (embedded PostgreSQL in a
 * temporary data directory) with `npm run dev:peers` (local SIEM receiver + Azurite) like the
 * file says. Each `# expect: NNN` line asserts the HTTP status of the request just before it.
 * A block preceded by `<!-- docs-test: skip … -->` is not run (starting the servers).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');
const DOC = path.join(ROOT, 'docs/SECURITY_API_EXAMPLES.md');

/** The `bash` blocks of a markdown file, in order, without those marked to skip. */
export function bashBlocks(markdown: string): { line: number; code: string }[] {
  const lines = markdown.split('\n');
  const out: { line: number; code: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```bash') continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end] !== '```') end++;
    const prev = lines.slice(Math.max(0, i - 2), i).join('\n');
    if (!/<!-- docs-test: skip/.test(prev)) out.push({ line: start + 1, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return out;
}

/** One script: `# expect: NNN` lines become checks of the last response's status. */
export function toScript(blocks: { line: number; code: string }[], baseUrl: string): { script: string; expects: number } {
  let expects = 0;
  const body = blocks
    .map((b) =>
      b.code
        .split('\n')
        .map((l, k) => {
          const m = /^\s*# expect: (\d{3})\s*$/.exec(l);
          if (!m) return l.replaceAll('http://127.0.0.1:3000', baseUrl);
          expects++;
          return `__expect ${m[1]} ${b.line + k}`;
        })
        .join('\n'),
    )
    .join('\n');
  const prologue = [
    'set -eo pipefail',
    '__status_file=$(mktemp)',
    // Every curl records the status of its last response (headers to a file; stdout unchanged).
    'curl() { local h rc=0; h=$(mktemp); command curl -D "$h" "$@" || rc=$?; awk \'toupper($1) ~ /^HTTP\\// {s=$2} END {print s}\' "$h" > "$__status_file"; rm -f "$h"; return $rc; }',
    '__expect() { local got; got=$(cat "$__status_file"); if [ "$got" != "$1" ]; then echo "EXPECT FAILED at docs line $2: expected $1, got ${got:-no response}" >&2; exit 1; fi; printf \'\\n__EXPECT_OK %s %s\\n\' "$2" "$1"; : > "$__status_file"; }',
  ].join('\n');
  return { script: `${prologue}\n${body}\n`, expects };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

interface Proc {
  child: ChildProcess;
  out: () => string;
}

function start(args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn('npm', args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return { child, out: () => out };
}

async function waitFor(p: Proc, re: RegExp, ms = 120_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = re.exec(p.out());
    if (m) return m;
    if (p.child.exitCode !== null || Date.now() > deadline) throw new Error(`no ${re}: ${p.out().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stop(p: Proc | undefined): Promise<void> {
  if (!p || p.child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => p.child.once('exit', () => resolve()));
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(t);
}

/** KEY=VALUE lines of the dev-peers env file (values may be single-quoted). */
function readEnvFile(file: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) env[m[1] as string] = (m[2] as string).replace(/^'(.*)'$/, '$1');
  }
  return env;
}

describe('docs/SECURITY_API_EXAMPLES.md', () => {
  let dataDir: string;
  let peers: Proc | undefined;
  let server: Proc | undefined;
  let baseUrl: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-docs-'));
    fs.chmodSync(dataDir, 0o755);
    const base = { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'development', FLEET_DATA_DIR: dataDir };
    peers = start(['run', '-s', 'dev:peers', '--', '--azurite-port', String(await freePort()), '--siem-port', String(await freePort()), '--data-dir', dataDir], base);
    await waitFor(peers, /stop: Ctrl\+C/, 60_000);
    env = { ...base, ...readEnvFile(path.join(dataDir, 'dev-peers.env')) };
    // As the doc says: the tenant audit stream example targets the dev receiver on loopback.
    server = start(['start'], { ...env, SIEM_ALLOW_PRIVATE_DESTINATIONS: 'true', PORT: String(await freePort()) });
    baseUrl = (await waitFor(server, /listening on (http:\/\/127\.0\.0\.1:\d+)/))[1] as string;
  }, 180_000);

  afterAll(async () => {
    await stop(server);
    await stop(peers);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  test('when every bash example runs in order against a fresh npm start, then each request answers its documented status', async () => {
    const { script, expects } = toScript(bashBlocks(fs.readFileSync(DOC, 'utf8')), baseUrl);
    expect(expects).toBeGreaterThan(30);
    const sh = spawn('/bin/bash', ['-c', script], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    sh.stdout.on('data', (d: Buffer) => (out += d.toString()));
    sh.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => sh.once('exit', (c) => resolve(c)));
    const ok = out.split('\n').filter((l) => l.startsWith('__EXPECT_OK')).length;
    if (code !== 0 || ok !== expects) throw new Error(`exit ${code}, ${ok}/${expects} checks passed\n--- stderr ---\n${err.slice(-3000)}\n--- stdout ---\n${out.slice(-3000)}\n--- server ---\n${server?.out().slice(-3000) ?? ''}`);
    // The cookie jar lives in a temporary directory, never in the repository.
    expect(fs.existsSync(path.join(ROOT, 'cookies.txt'))).toBe(false);
  }, 360_000);
});
