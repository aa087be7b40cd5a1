/**
 * Fault suite (`npm run test:faults`, not part of `npm test`): two real instances on one
 * PostgreSQL (and Redis when REDIS_URL answers) with a local SIEM receiver, under steady
 * audit-write load from 16 clients round-robin, while the suite injects:
 *   kill -9 of instance A (restarted), kill -9 of instance B (restarted),
 *   a PostgreSQL crash-restart (pg_ctl stop -m immediate, start 3 s later),
 *   a 6 s SIEM outage (connection refused).
 * Clients retry every failed or unanswered write with its Idempotency-Key, on the other
 * instance. Asserted (and printed): 0 acknowledged writes lost, 0 duplicate rows, 0 responses
 * 500, 0 unplanned exits, readiness back within 10 s of the database, every row sealed and
 * `audit:verify` intact, every high/critical event delivered within 60 s of the last fault,
 * SIEM duplicates ≤ two batches.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { buildServices, type Composition } from '../../src/compose';
import { loadConfig } from '../../src/config';
import { createPool, poolOptionsFromConfig } from '../../src/db/pool';
import { freePort } from '../../src/db/embedded';
import { systemClock } from '../../src/lib/clock';
import { generateSigningKey } from '../../src/lib/jws-keys';
import { createLogger } from '../../src/lib/logger';
import { auditEventId } from '../../src/services/siem/event-id';
import { startWebhookReceiver, type WebhookReceiver } from '../siem/helpers/receivers';
import { openSession } from '../helpers/session';
import { database, instance, isReady, ROOT, waitReady, type Database, type Instance } from './cluster';
import { withTenant } from '../../src/db/transaction';

const CLIENTS = 16;
/** Steady load before the first fault, between faults and after the last one. */
const STEADY_MS = 4000;
const SIEM_BATCH = 10;
const MAX_WRITES = 200_000;
const WEBHOOK_KEY = randomBytes(24).toString('hex');

async function redisAnswers(url: string | undefined): Promise<boolean> {
  if (!url) return false;
  const u = new URL(url);
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(u.hostname)) return false;
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port || 6379), u.hostname.replace(/^\[|\]$/g, ''), () => {
      s.end();
      resolve(true);
    });
    s.on('error', () => resolve(false));
    s.setTimeout(1000, () => {
      s.destroy();
      resolve(false);
    });
  });
}

interface Ack {
  writeId: string;
  kind: 'log' | 'siem';
  severity: string;
  /** audit row id (log) */
  id?: string;
  /** submitted SIEM event ids (siem) */
  eventIds?: string[];
  at: number;
  attempts: number;
}

const stats = {
  requests: 0,
  status: new Map<number, number>(),
  networkErrors: 0,
  retries: 0,
  replayed: 0,
  gaveUp: 0,
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let baseDir: string;
let db: Database;
let hook: WebhookReceiver & { endpoint: string };
let a: Instance;
let b: Instance;
let owner: pg.Pool;
let composition: Composition | null = null;
const seen = new Map<string, number>();
let seenScanned = 0;
let seenTimer: NodeJS.Timeout | null = null;

beforeAll(async () => {
  baseDir = process.env.FAULTS_BASE_DIR as string;
  db = database(JSON.parse(process.env.FAULTS_DB as string) as { url: string; port: number; dataDir: string });
  db.start();
  owner = new pg.Pool({ connectionString: db.url, max: 3 });
  owner.on('error', () => undefined);
  hook = await startWebhookReceiver(WEBHOOK_KEY);
  // First time each event id reached the receiver.
  seenTimer = setInterval(() => {
    for (; seenScanned < hook.events.length; seenScanned += 1) {
      const id = String(hook.events[seenScanned]?.id);
      if (!seen.has(id)) seen.set(id, Date.now());
    }
  }, 100);
});

afterAll(async () => {
  if (seenTimer) clearInterval(seenTimer);
  for (const i of [a, b]) if (i) await i.kill9().catch(() => undefined);
  await composition?.pool.end().catch(() => undefined);
  await owner?.end().catch(() => undefined);
  await hook?.close().catch(() => undefined);
  try {
    db?.stop();
  } catch {
    /* already stopped */
  }
});

test('two instances under load survive kill -9 of each, a PostgreSQL crash-restart and a SIEM outage: nothing lost, nothing duplicated, no 500, SIEM caught up', async () => {
  const useRedis = await redisAnswers(process.env.REDIS_URL);
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    DATABASE_URL: db.url,
    JWT_SECRET: randomBytes(48).toString('base64'),
    // Access tokens are ES256 since issue 19: the instances and this test's token service must
    // share the signing key (without it each process generated its own and every call was 401).
    JWT_SIGNING_KEY: generateSigningKey('ES256'),
    FLEET_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    FLEET_DATA_DIR: path.join(baseDir, 'data'),
    LOG_LEVEL: 'warn',
    CORS_ORIGINS: 'https://app.example.com',
    RATE_LIMIT_MAX: '1000000',
    RATE_LIMIT_USER_MAX: '1000000',
    SIEM_PROVIDER: 'webhook',
    SIEM_ENDPOINT_URL: hook.endpoint,
    SIEM_API_KEY: WEBHOOK_KEY,
    SIEM_BATCH_SIZE: String(SIEM_BATCH),
    SIEM_FLUSH_INTERVAL_MS: '1000',
    ...(useRedis ? { REDIS_URL: process.env.REDIS_URL as string } : {}),
  };
  fs.mkdirSync(env.FLEET_DATA_DIR as string, { recursive: true });
  a = instance('a', await freePort(), env, baseDir);
  b = instance('b', await freePort(), env, baseDir);
  a.start();
  await waitReady([a], 90_000); // A applies the migrations
  b.start();
  await waitReady([b], 90_000);

  // Sessions and access tokens, made with the instances' own services and secrets.
  const loaded = loadConfig({ ...env, PORT: '0' });
  if (!loaded.config) throw new Error(JSON.stringify(loaded.errors));
  const logger = createLogger({ level: 'error', console: false, transports: [] });
  const pool = createPool(poolOptionsFromConfig(loaded.config, db.url), logger);
  const built = await buildServices({ config: loaded.config, logger, pool, clock: systemClock });
  composition = built;
  const tokens: string[] = [];
  for (let i = 0; i < 4; i += 1) {
    const tenantId = `faults-${i}`;
    const { rows } = await owner.query<{ id: string }>(
      "INSERT INTO users (tenant_id, email, role) VALUES ($1, $2, 'admin') RETURNING id",
      [tenantId, `admin${i}@faults.example.com`],
    );
    const userId = (rows[0] as { id: string }).id;
    const { sessionId } = await withTenant(pool, tenantId, (c) =>
      openSession(built, c, { userId, tenantId, ip: '127.0.0.1', userAgent: 'faults' }),
    );
    tokens.push(`Bearer ${built.services.tokens.issue({ userId, sessionId, tenantId }).token}`);
  }
  await pool.end();
  composition = null;

  // ---- load
  const acks: Ack[] = [];
  const instances = [a, b];
  let stop = false;
  let writes = 0;
  const run = randomBytes(3).toString('hex');

  async function send(
    target: Instance,
    token: string,
    pathName: string,
    body: unknown,
    key: string,
  ): Promise<{ status: number; json: Record<string, unknown>; replayed: boolean } | null> {
    stats.requests += 1;
    try {
      const r = await fetch(`${target.url}/api/v1/security${pathName}`, {
        method: 'POST',
        headers: { Authorization: token, 'Content-Type': 'application/json', 'Idempotency-Key': key },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
      const json = (await r.json().catch(() => ({}))) as Record<string, unknown>;
      stats.status.set(r.status, (stats.status.get(r.status) ?? 0) + 1);
      return { status: r.status, json, replayed: r.headers.get('idempotent-replayed') === 'true' };
    } catch {
      stats.networkErrors += 1;
      return null;
    }
  }

  async function client(c: number): Promise<void> {
    const token = tokens[c % tokens.length] as string;
    let seq = 0;
    let turn = c;
    while (!stop && writes < MAX_WRITES) {
      writes += 1;
      seq += 1;
      const writeId = `${run}-${c}-${seq}`;
      const key = `k-${writeId}`;
      const siem = seq % 10 === 0;
      // Clients may not write 'critical' to POST /audit/log (reserved for the server's own events: 400).
      const severity = siem ? 'high' : seq % 4 === 0 ? 'high' : 'low';
      const pathName = siem ? '/audit/siem' : '/audit/log';
      const body = siem
        ? { events: [{ eventType: 'fleet.faults.submitted', severity, message: writeId }] }
        : {
            action: 'fleet.faults.write',
            resourceType: 'fault',
            resourceId: writeId,
            severity,
            after: { client: c, seq },
          };
      const deadline = Date.now() + 60_000;
      for (let attempt = 1; ; attempt += 1) {
        const target = instances[turn % 2] as Instance;
        turn += 1;
        const r = await send(target, token, pathName, body, key);
        if (r && (r.status === 200 || r.status === 202)) {
          if (r.replayed) stats.replayed += 1;
          acks.push({
            writeId,
            kind: siem ? 'siem' : 'log',
            severity,
            id: r.json.id as string | undefined,
            eventIds: r.json.eventIds as string[] | undefined,
            at: Date.now(),
            attempts: attempt,
          });
          break;
        }
        if (r && ![409, 503, 429].includes(r.status)) {
          // Not retryable (and counted by status): a 500 or an unexpected 4xx fails the suite below.
          break;
        }
        if (Date.now() > deadline) {
          stats.gaveUp += 1;
          break;
        }
        stats.retries += 1;
        await sleep(r === null ? 100 : 250);
      }
    }
  }

  const t0 = Date.now();
  const load = Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
  const timeline: string[] = [];
  const mark = (what: string): void => void timeline.push(`${((Date.now() - t0) / 1000).toFixed(1)} s  ${what}`);

  await sleep(STEADY_MS);
  mark('kill -9 instance a');
  await a.kill9();
  await sleep(1000);
  a.start();
  mark('instance a restarting');
  await waitReady([a], 60_000);
  mark('instance a ready');

  await sleep(STEADY_MS);
  mark('kill -9 instance b');
  await b.kill9();
  await sleep(1000);
  b.start();
  mark('instance b restarting');
  await waitReady([b], 60_000);
  mark('instance b ready');

  await sleep(STEADY_MS);
  mark('PostgreSQL crash (pg_ctl stop -m immediate)');
  db.crash();
  await sleep(3000);
  db.start();
  const dbBackAt = Date.now();
  mark('PostgreSQL started again (crash recovery done)');
  const readyAfterDbMs = await waitReady([a, b], 30_000);
  mark(`both instances ready ${readyAfterDbMs} ms after the database`);

  await sleep(STEADY_MS);
  mark('SIEM outage begins (connection refused)');
  await hook.down();
  await sleep(6000);
  await hook.up();
  const lastFaultAt = Date.now();
  mark('SIEM outage ends (last fault)');

  await sleep(STEADY_MS);
  stop = true;
  await load;
  mark(`load stopped: ${acks.length} acknowledged writes`);

  // ---- every acknowledged high/critical event reaches the SIEM within 60 s of the last fault
  const expected = new Set<string>();
  for (const k of acks) {
    if (k.kind === 'log' && (k.severity === 'high' || k.severity === 'critical'))
      expected.add(auditEventId(k.id as string));
    if (k.kind === 'siem') for (const id of k.eventIds ?? []) expected.add(id);
  }
  const deliveryDeadline = lastFaultAt + 60_000;
  while (Date.now() < deliveryDeadline && [...expected].some((id) => !seen.has(id))) await sleep(250);
  const undelivered = [...expected].filter((id) => !seen.has(id));
  const lateAfterLastFault = [...expected].filter((id) => (seen.get(id) ?? Infinity) > deliveryDeadline).length;
  const slowest = Math.max(0, ...[...expected].map((id) => (seen.get(id) ?? Infinity) - lastFaultAt));
  mark(`SIEM: ${expected.size - undelivered.length}/${expected.size} high/critical events delivered`);
  const receivedTotal = hook.events.length;
  const siemDuplicates = receivedTotal - new Set(hook.events.map((e) => String(e.id))).size;

  // ---- rows: nothing lost, nothing duplicated
  const { rows } = await owner.query<{ resource_id: string; n: number; ids: string[] }>(
    "SELECT resource_id, count(*)::int AS n, array_agg(id::text) AS ids FROM audit_logs WHERE action = 'fleet.faults.write' GROUP BY resource_id",
  );
  const byWrite = new Map(rows.map((r) => [r.resource_id, r]));
  const logAcks = acks.filter((k) => k.kind === 'log');
  const lost = logAcks.filter((k) => !byWrite.get(k.writeId)?.ids.includes(k.id as string)).length;
  const duplicateRows = rows.reduce((n, r) => n + (r.n - 1), 0);
  const siemAcks = acks.filter((k) => k.kind === 'siem');
  const { rows: submitted } = await owner.query<{ message: string; n: number }>(
    "SELECT x.message, count(*)::int AS n FROM (SELECT jsonb_array_elements_text((after::jsonb)->'eventIds') AS message FROM audit_logs WHERE action = 'audit.siem.submitted') x GROUP BY x.message",
  );
  const submittedIds = new Set(submitted.map((r) => r.message));
  const lostSubmissions = siemAcks.filter((k) => !(k.eventIds ?? []).every((id) => submittedIds.has(id))).length;
  const retriedAcks = acks.filter((k) => k.attempts > 1).length;

  // ---- sealed and verified
  const sealDeadline = Date.now() + 60_000;
  let pending = -1;
  while (Date.now() < sealDeadline) {
    pending = (await owner.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_pending')).rows[0]?.n ?? -1;
    if (pending === 0) break;
    await sleep(250);
  }
  const counts = (
    await owner.query<{ logs: number; chain: number }>(
      'SELECT (SELECT count(*)::int FROM audit_logs) AS logs, (SELECT count(*)::int FROM audit_chain) AS chain',
    )
  ).rows[0] as { logs: number; chain: number };
  const verify = spawnSync(process.execPath, ['--import', 'tsx', 'server/src/cli/audit-verify.ts', '--no-record'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      NODE_ENV: 'test',
      DATABASE_URL: db.url,
      LOG_LEVEL: 'error',
      FLEET_DATA_DIR: env.FLEET_DATA_DIR as string,
    },
    encoding: 'utf8',
    timeout: 120_000,
  });

  const unplanned = [...a.unplannedExits, ...b.unplannedExits];
  const crashes = [a, b].filter((i) => /Unhandled 'error' event|uncaughtException|FATAL ERROR/.test(i.output())).length;
  const still = await Promise.all([isReady(a.url), isReady(b.url)]);
  const status500 = [...stats.status.entries()].filter(([s]) => s >= 500 && s !== 503).reduce((n, [, c]) => n + c, 0);
  const unexpected4xx = [...stats.status.entries()]
    .filter(([s]) => s >= 400 && s < 500 && ![409, 429].includes(s))
    .reduce((n, [, c]) => n + c, 0);

  const report = [
    '',
    '==== fault suite ====',
    ...timeline.map((l) => `  ${l}`),
    `  redis: ${useRedis ? 'yes (shared rate-limit store)' : 'no'}`,
    `  requests sent: ${stats.requests}; by status: ${[...stats.status.entries()]
      .sort((x, y) => x[0] - y[0])
      .map(([s, c]) => `${s}×${c}`)
      .join(' ')}; network errors: ${stats.networkErrors}`,
    `  acknowledged writes: ${acks.length} (${logAcks.length} audit rows, ${siemAcks.length} SIEM submissions); retried before acknowledgement: ${retriedAcks}; replayed answers: ${stats.replayed}; given up: ${stats.gaveUp}`,
    `  acknowledged writes lost: ${lost + lostSubmissions}`,
    `  duplicate rows (writes retried with an Idempotency-Key): ${duplicateRows}`,
    `  responses 500: ${status500}; unexpected 4xx: ${unexpected4xx}`,
    `  unplanned exits: ${unplanned.length}; crash traces in logs: ${crashes}; both ready at the end: ${still.every(Boolean)}`,
    `  readiness back after the database: ${readyAfterDbMs} ms (limit 10000)`,
    `  audit rows: ${counts.logs}; sealed: ${counts.chain}; pending: ${pending}; audit:verify exit ${verify.status}: ${(verify.stdout || verify.stderr).trim().split('\n').at(-1)}`,
    `  high/critical events: ${expected.size}; undelivered: ${undelivered.length}; delivered later than 60 s after the last fault: ${lateAfterLastFault}; last one ${(slowest / 1000).toFixed(1)} s after the last fault`,
    `  SIEM events received: ${receivedTotal}; duplicates: ${siemDuplicates} (limit ${2 * SIEM_BATCH}, two batches)`,
    '',
  ].join('\n');
  process.stdout.write(report);
  void dbBackAt;

  if (unplanned.length > 0 || crashes > 0) {
    for (const i of [a, b])
      process.stdout.write(`---- ${i.name} output (tail)\n${i.output().split('\n').slice(-40).join('\n')}\n`);
  }

  expect(acks.length).toBeGreaterThan(100);
  expect(lost + lostSubmissions).toBe(0);
  expect(duplicateRows).toBe(0);
  expect(status500).toBe(0);
  expect(unexpected4xx).toBe(0);
  expect(unplanned).toEqual([]);
  expect(crashes).toBe(0);
  expect(still).toEqual([true, true]);
  expect(readyAfterDbMs).toBeLessThanOrEqual(10_000);
  expect(pending).toBe(0);
  expect(counts.chain).toBe(counts.logs);
  expect(verify.status).toBe(0);
  expect(undelivered).toEqual([]);
  expect(lateAfterLastFault).toBe(0);
  expect(siemDuplicates).toBeLessThanOrEqual(2 * SIEM_BATCH);
}, 300_000);
