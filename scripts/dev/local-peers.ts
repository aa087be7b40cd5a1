/**
 * npm run dev:peers [-- --azurite-port N] [--siem-port N] [--data-dir DIR (default FLEET_DATA_DIR, else .data)]
 *
 * Development only (refuses NODE_ENV=production, exit 2): the outside services the SIEM and archive routes talk to, on loopback,
 * so every documented route can be tried locally.
 *   - Azurite's blob service (npm `azurite`, a dev dependency) for the audit archive, data in
 *     <data-dir>/azurite;
 *   - a SIEM receiver speaking the `webhook` connector's protocol (HMAC-signed JSON batches),
 *     which checks each signature and prints every event it receives, one line each, and
 *     answers GET /events with the last 100.
 * Writes <data-dir>/dev-peers.env with the settings that point the API at them; start the API
 * with:  set -a; . .data/dev-peers.env; set +a; npm start
 * Stops on Ctrl+C / SIGTERM (Azurite too).
 */
import { spawn } from 'node:child_process';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { processEnv } from '../../server/src/config';

const USAGE = 'usage: npm run dev:peers [-- --azurite-port N] [--siem-port N] [--data-dir DIR]';
// Azurite's well-known development account (public, documented by Microsoft).
const ACCOUNT = 'devstoreaccount1';
const ACCOUNT_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const HOOK_PATH = '/hooks/siem';

function fail(msg: string): never {
  process.stderr.write(`dev:peers: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function port(v: string | undefined, def: number, name: string): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) fail(`--${name} must be a port (1-65535)`);
  return n;
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      'azurite-port': { type: 'string' },
      'siem-port': { type: 'string' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }));
} catch (err) {
  fail((err as Error).message);
}
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const env = processEnv();
if (env.NODE_ENV === 'production')
  fail(
    'development only (NODE_ENV=production): Azurite with its public account key and a local SIEM receiver are no production peers',
  );
const azuritePort = port(values['azurite-port'], 10000, 'azurite-port');
const siemPort = port(values['siem-port'], 9880, 'siem-port');
// Where the API keeps its development data: --data-dir, else FLEET_DATA_DIR, else .data.
const dataDir = path.resolve(values['data-dir'] ?? (env.FLEET_DATA_DIR || '.data'));
fs.mkdirSync(path.join(dataDir, 'azurite'), { recursive: true });

// The webhook key persists with the env file, so a restart of either side keeps working.
const envFile = path.join(dataDir, 'dev-peers.env');
let key = randomBytes(32).toString('base64url');
try {
  const m = /^SIEM_API_KEY=(\S+)$/m.exec(fs.readFileSync(envFile, 'utf8'));
  if (m) key = m[1] as string;
} catch {
  // first run
}

function verify(headers: http.IncomingHttpHeaders, body: Buffer): boolean {
  const ts = String(headers['x-fleet-timestamp'] ?? '');
  const sig = String(headers['x-fleet-signature'] ?? '');
  if (!/^\d+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;
  const expected = Buffer.from(`sha256=${createHmac('sha256', key).update(`${ts}.`).update(body).digest('hex')}`);
  const got = Buffer.from(sig);
  return got.length === expected.length && timingSafeEqual(got, expected);
}

const recent: unknown[] = [];
const receiver = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size <= 8 * 1024 * 1024) chunks.push(c);
  });
  req.on('end', () => {
    const reply = (status: number, body?: unknown) => {
      res.writeHead(status, body === undefined ? {} : { 'Content-Type': 'application/json' });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === '/events') return reply(200, recent);
    if (req.url !== HOOK_PATH) return reply(404, { error: 'not found' });
    if (req.method !== 'POST') return reply(405, { error: 'method not allowed' });
    const body = Buffer.concat(chunks);
    if (!verify(req.headers, body)) {
      process.stdout.write('siem: refused a batch with a bad signature or stale timestamp\n');
      return reply(401, { error: 'invalid signature' });
    }
    let events: Array<Record<string, unknown>>;
    try {
      events = JSON.parse(body.toString('utf8')) as Array<Record<string, unknown>>;
      if (!Array.isArray(events)) throw new Error('not an array');
    } catch {
      return reply(400, { error: 'body must be a JSON array of events' });
    }
    for (const e of events) {
      process.stdout.write(
        `siem: ${String(e.severity ?? '?')} ${String(e.eventType ?? '?')} tenant=${String(e.tenantId ?? '?')} ${JSON.stringify(e.message ?? '')}\n`,
      );
      recent.push(e);
    }
    recent.splice(0, Math.max(0, recent.length - 100));
    return reply(204);
  });
});
receiver.on('clientError', (_err, socket) => socket.destroy());

const azuriteMain = require.resolve('azurite/dist/src/blob/main.js');
const azurite = spawn(
  process.execPath,
  [
    azuriteMain,
    '--blobHost',
    '127.0.0.1',
    '--blobPort',
    String(azuritePort),
    '--location',
    path.join(dataDir, 'azurite'),
    '--skipApiVersionCheck',
    '--disableProductStyleUrl',
    '--loose',
  ],
  { stdio: ['ignore', 'pipe', 'pipe'] },
);
let azuriteOut = '';
azurite.stdout?.on('data', (d: Buffer) => (azuriteOut += d.toString()));
azurite.stderr?.on('data', (d: Buffer) => (azuriteOut += d.toString()));
let stopping = false;
azurite.on('exit', (code) => {
  if (stopping) return;
  process.stderr.write(
    `dev:peers: Azurite exited (${code}); is port ${azuritePort} free? (--azurite-port N)\n${azuriteOut.slice(-800)}\n`,
  );
  process.exit(1);
});

receiver.once('error', (err: NodeJS.ErrnoException) => {
  process.stderr.write(
    `dev:peers: the SIEM receiver cannot listen on 127.0.0.1:${siemPort} (${err.code}): choose another with --siem-port N\n`,
  );
  azurite.kill('SIGKILL');
  process.exit(1);
});

receiver.listen(siemPort, '127.0.0.1', () => {
  const rel = path.relative(process.cwd(), envFile);
  const shown = rel && !rel.startsWith('..') ? rel : envFile;
  const waitAzurite = setInterval(() => {
    if (!/successfully listens on/.test(azuriteOut)) return;
    clearInterval(waitAzurite);
    const env = [
      '# Written by npm run dev:peers: local SIEM receiver and Azurite for development.',
      `# Use:  set -a; . ${shown}; set +a; npm start`,
      'SIEM_PROVIDER=webhook',
      `SIEM_ENDPOINT_URL=http://127.0.0.1:${siemPort}${HOOK_PATH}`,
      `SIEM_API_KEY=${key}`,
      'SIEM_FLUSH_INTERVAL_MS=1000',
      // Quoted: the file is sourced by a shell, and the value holds semicolons.
      `AZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:${azuritePort}/${ACCOUNT};'`,
      '',
    ].join('\n');
    fs.writeFileSync(envFile, env, { mode: 0o600 });
    process.stdout.write(
      [
        '',
        'Local peers for development (loopback only):',
        `  SIEM receiver (webhook protocol): http://127.0.0.1:${siemPort}${HOOK_PATH}; received events: curl -s http://127.0.0.1:${siemPort}/events`,
        `  Azurite blob service:             http://127.0.0.1:${azuritePort}/${ACCOUNT} (data in ${path.join(dataDir, 'azurite')})`,
        `  settings written to ${envFile}; start the API in another terminal with:`,
        `    set -a; . ${shown}; set +a; npm start`,
        '  stop: Ctrl+C',
        '',
      ].join('\n') + '\n',
    );
  }, 50);
});

function stop(): void {
  if (stopping) return;
  stopping = true;
  receiver.close();
  azurite.once('exit', () => process.exit(0));
  azurite.kill('SIGTERM');
  setTimeout(() => {
    azurite.kill('SIGKILL');
    process.exit(0);
  }, 3000).unref();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
