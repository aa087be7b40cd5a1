/**
 * The verifiable audit log's costs (CONTRACT.md §8, docs/AUDIT.md "Performance"):
 *
 * 1. Write throughput: POST /api/v1/security/audit/log at 20 and 50 clients, back to back,
 *    against two servers in the same run on the same PostgreSQL server, rounds interleaved:
 *      - "without": a database whose audit_seal() is migration 043's (no Merkle bookkeeping)
 *        and no checkpoint key (no checkpoints);
 *      - "with": every migration (audit_seal() stores the subtree hashes) and checkpoints
 *        signed every second (AUDIT_CHECKPOINT_INTERVAL=1s: 60x the default rate).
 *    Target: with/without >= 0.95.
 *    And the sealer alone: database time per sealed row with and without the bookkeeping.
 * 2. Proofs in a 1,000,000-leaf tenant: the Merkle storage is populated directly with
 *    generated leaves (and the chain positions the lookup by audit id reads), which is what
 *    the sealer would have written; then server-side time (tenant transaction, tree size,
 *    proof) for inclusion proofs of random rows and consistency proofs of random size pairs.
 *    Target: p99 < 5 ms.
 * 3. Offline verification of 1,000,000 archived rows (NDJSON in the archive's format, one
 *    tenant, 10 signed checkpoints): verifyOffline() wall time (with its row reader threads, as
 *    the CLI runs it), CPU time and the load average around it. Target < 10 s.
 *    BENCH_ONLY=offline runs this part alone.
 *
 * Usage: npx tsx bench/checkpoint.bench.ts [seconds-per-round=3] [rounds=3] [leaves=1000000]
 * Database: BENCH_DATABASE_URL / TEST_DATABASE_URL (throw-away databases), else embedded.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openBenchDb, type BenchDb } from './lib/db';
import { benchServerEnv, fmt, load, median, type LoadResult } from './lib/harness';
import { computeRowHash, GENESIS_HASH, type CanonicalFields } from '../server/src/services/audit/chain';
import {
  consistencyPlan,
  inclusionProofForAuditId,
  leafHash,
  nodeHash,
  rangeHashes,
  storedNodeReader,
  storedTreeSize,
} from '../server/src/services/audit/merkle';
import { TreeBuilder } from '../server/src/services/audit/merkle-verify';
import { parseVerifierKey } from '../server/src/services/audit/note-verify';
import { verifyOffline } from '../server/src/services/audit/offline-verify';
import {
  checkpointBody,
  checkpointOrigin,
  createCheckpointSigner,
  parseEd25519PrivateKey,
} from '../server/src/services/audit/signed-note';
import { renderRow } from '../server/src/services/archive/format';

const BODY = JSON.stringify({
  action: 'bench.event',
  resourceType: 'vehicle',
  resourceId: 'V-1',
  after: { mileage: 150, driver: 'd-42' },
});
const KEY = generateKeyPairSync('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');

interface Server {
  url: string;
  token: string;
  child: ChildProcess;
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
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;

async function throughput(seconds: number, rounds: number): Promise<string[]> {
  const without = await openBenchDb();
  const withDb = await openBenchDb();
  const servers: Server[] = [];
  try {
    // "without": back to migration 043's sealer (no subtree hashes).
    const c = new pg.Client({ connectionString: without.url });
    await c.connect();
    await c.query(fs.readFileSync(path.resolve(__dirname, '../migrations/043_audit_seal_replan.sql'), 'utf8'));
    await c.end();
    const base = {
      NODE_ENV: 'production',
      DATABASE_SSL: 'disable',
      AUTH0_DOMAIN: 'bench.example.com',
      AUTH0_CLIENT_ID: 'bench',
      CORS_ORIGINS: 'https://app.example.com',
      LOG_LEVEL: 'warn',
    };
    const a = await startServer(benchServerEnv(without.url, base));
    servers.push(a);
    const b = await startServer(
      benchServerEnv(withDb.url, { ...base, AUDIT_CHECKPOINT_SIGNING_KEY: KEY, AUDIT_CHECKPOINT_INTERVAL: '1s' }),
    );
    servers.push(b);
    const post = (s: Server, connections: number, duration: number) =>
      load({
        url: `${s.url}/api/v1/security/audit/log`,
        method: 'POST',
        connections,
        duration,
        headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json', 'user-agent': 'bench/1.0' },
        body: BODY,
      });
    const out: string[] = [];
    for (const connections of [20, 50]) {
      await post(a, connections, 1);
      await post(b, connections, 1);
      const ra: LoadResult[] = [];
      const rb: LoadResult[] = [];
      for (let i = 0; i < rounds; i += 1) {
        // alternate which goes first
        if (i % 2 === 0) {
          ra.push(await post(a, connections, seconds));
          rb.push(await post(b, connections, seconds));
        } else {
          rb.push(await post(b, connections, seconds));
          ra.push(await post(a, connections, seconds));
        }
      }
      for (const r of ra) console.log(`c=${connections} without Merkle/checkpoints ${fmt(r)}`);
      for (const r of rb) console.log(`c=${connections} with Merkle+checkpoints    ${fmt(r)}`);
      const ma = median(ra.map((r) => r.rps));
      const mb = median(rb.map((r) => r.rps));
      out.push(
        `c=${connections}: without ${Math.round(ma)}/s p99 ${median(ra.map((r) => r.p99)).toFixed(1)} ms | with ${Math.round(mb)}/s p99 ${median(rb.map((r) => r.p99)).toFixed(1)} ms | ratio with/without ${(mb / ma).toFixed(3)}`,
      );
    }
    // Checkpoints really were made, and the tree kept up with the chain.
    const o = new pg.Client({ connectionString: withDb.url });
    await o.connect();
    await new Promise((r) => setTimeout(r, 2500));
    const { rows } = await o.query<{ n: number; chain: string; tree: string }>(
      `SELECT (SELECT count(*)::int FROM audit_checkpoints) AS n, (SELECT count(*)::text FROM audit_chain) AS chain, (SELECT count(*)::text FROM audit_merkle) AS tree`,
    );
    await o.end();
    out.push(
      `with: ${rows[0]?.n} checkpoints signed during the run; ${rows[0]?.chain} chain entries, ${rows[0]?.tree} tree leaves stored`,
    );
    return out;
  } finally {
    for (const s of servers) await s.stop();
    await without.close();
    await withDb.close();
  }
}

/**
 * The sealer's own cost, less exposed to machine noise than HTTP throughput: the same 20,000
 * pending rows (10 tenants) sealed by migration 043's audit_seal() and by 065's, alternately,
 * in two databases on the same server; database time per sealed row.
 */
async function sealerCost(rounds: number): Promise<string[]> {
  const without = await openBenchDb();
  const withDb = await openBenchDb();
  try {
    const a = new pg.Client({ connectionString: without.url });
    const b = new pg.Client({ connectionString: withDb.url });
    a.on('error', () => undefined);
    b.on('error', () => undefined);
    await a.connect();
    await b.connect();
    await a.query(fs.readFileSync(path.resolve(__dirname, '../migrations/043_audit_seal_replan.sql'), 'utf8'));
    const N = 20_000;
    const fill = (c: pg.Client) =>
      c.query(
        `INSERT INTO audit_logs (tenant_id, action, resource_type, resource_id, after, ip_address, result, severity)
         SELECT 'seal-' || (g % 10), 'bench.event', 'vehicle', 'V-' || g, '{"mileage": 150, "driver": "d-42"}', '127.0.0.1', 'success', 'low' FROM generate_series(1, $1) g`,
        [N],
      );
    const drain = async (c: pg.Client): Promise<number> => {
      const t = performance.now();
      for (;;) {
        const { rows } = await c.query<{ n: number }>('SELECT audit_seal(2000) AS n');
        if ((rows[0]?.n ?? 0) < 2000) break;
      }
      return ((performance.now() - t) * 1000) / N;
    };
    const ua: number[] = [];
    const ub: number[] = [];
    for (let i = 0; i < rounds + 1; i += 1) {
      await fill(a);
      await fill(b);
      const x = await drain(a);
      const y = await drain(b);
      if (i > 0) {
        ua.push(x);
        ub.push(y);
      }
    }
    await a.end();
    await b.end();
    const ma = median(ua);
    const mb = median(ub);
    console.log(
      `sealer µs/row without: ${ua.map((v) => v.toFixed(1)).join(' ')} | with: ${ub.map((v) => v.toFixed(1)).join(' ')}`,
    );
    return [
      `sealer (audit_seal, 20,000 rows over 10 tenants, batches of 2,000): without Merkle ${ma.toFixed(1)} µs/row, with ${mb.toFixed(1)} µs/row: +${(mb - ma).toFixed(1)} µs per audited write`,
    ];
  } finally {
    await without.close();
    await withDb.close();
  }
}

async function proofs(leaves: number): Promise<string[]> {
  const db: BenchDb = await openBenchDb();
  const tenant = 'bench-million';
  try {
    const owner = new pg.Pool({ connectionString: db.url, max: 2 });
    owner.on('error', () => undefined); // an idle connection ended from outside is replaced on the next query
    const t0 = Date.now();
    // Generated leaves, stored exactly as audit_seal() stores them (see migration 065).
    const frontier: Array<Buffer | undefined> = [];
    let batchLeaf: string[] = [];
    let batchHashes: Buffer[] = [];
    let batchSeq: string[] = [];
    let batchRowHash: Buffer[] = [];
    const flush = async () => {
      if (batchLeaf.length === 0) return;
      await owner.query(
        'INSERT INTO audit_merkle (tenant_id, leaf, hashes) SELECT $1, * FROM unnest($2::bigint[], $3::bytea[])',
        [tenant, batchLeaf, batchHashes],
      );
      await owner.query(
        `INSERT INTO audit_chain (audit_id, tenant_id, seq, prev_hash, row_hash) SELECT s + 1000000000, $1, s, $3, r FROM unnest($2::bigint[], $4::bytea[]) AS u(s, r)`,
        [tenant, batchSeq, GENESIS_HASH, batchRowHash],
      );
      batchLeaf = [];
      batchHashes = [];
      batchSeq = [];
      batchRowHash = [];
    };
    for (let i = 0; i < leaves; i += 1) {
      const rowHash = createHash('sha256').update(`row-${i}`).digest();
      let node = leafHash(rowHash);
      const parts = [node];
      let level = 0;
      while (Math.floor(i / 2 ** level) % 2 === 1) {
        node = nodeHash(frontier[level] as Buffer, node);
        parts.push(node);
        frontier[level] = undefined;
        level += 1;
      }
      frontier[level] = node;
      batchLeaf.push(String(i));
      batchHashes.push(Buffer.concat(parts));
      batchSeq.push(String(i + 1));
      batchRowHash.push(rowHash);
      if (batchLeaf.length === 20_000) await flush();
    }
    await flush();
    await owner.query('ANALYZE audit_merkle; ANALYZE audit_chain');
    const populate = (Date.now() - t0) / 1000;

    const app = new pg.Pool({ connectionString: db.url, max: 2, options: '-c role=fleet_app' });
    app.on('error', () => undefined);
    const inTenant = async <T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> => {
      const c = await app.connect();
      try {
        await c.query('BEGIN');
        await c.query("SELECT set_config('app.tenant_id', $1, true)", [tenant]);
        const r = await fn(c);
        await c.query('COMMIT');
        return r;
      } finally {
        c.release();
      }
    };
    const N = 2000;
    const inc: number[] = [];
    const cons: number[] = [];
    let size = 0;
    for (let k = 0; k < N + 200; k += 1) {
      const id = String(1_000_000_000 + 1 + Math.floor(Math.random() * leaves));
      const t = performance.now();
      await inTenant(async (c) => {
        size = await storedTreeSize(c, tenant);
        const p = await inclusionProofForAuditId(c, tenant, id, size);
        if (typeof p === 'string') throw new Error(p);
      });
      if (k >= 200) inc.push(performance.now() - t);
    }
    for (let k = 0; k < N + 200; k += 1) {
      const to = 2 + Math.floor(Math.random() * (leaves - 1));
      const from = 1 + Math.floor(Math.random() * (to - 1));
      const t = performance.now();
      await inTenant(async (c) => {
        await storedTreeSize(c, tenant);
        await rangeHashes(consistencyPlan(from, to), storedNodeReader(c, tenant));
      });
      if (k >= 200) cons.push(performance.now() - t);
    }
    inc.sort((x, y) => x - y);
    cons.sort((x, y) => x - y);
    await app.end();
    await owner.end();
    return [
      `tree of ${size} leaves populated directly (generated leaves, as the sealer stores them) in ${populate.toFixed(1)} s`,
      `inclusion proof (tenant transaction + tree size + id lookup + proof), ${N} random rows: p50 ${pct(inc, 50).toFixed(2)} ms p99 ${pct(inc, 99).toFixed(2)} ms max ${pct(inc, 100).toFixed(2)} ms`,
      `consistency proof (tenant transaction + tree size + proof), ${N} random pairs: p50 ${pct(cons, 50).toFixed(2)} ms p99 ${pct(cons, 99).toFixed(2)} ms max ${pct(cons, 100).toFixed(2)} ms`,
    ];
  } finally {
    await db.close();
  }
}

async function offline(rowsCount: number): Promise<string[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-bench-offline-'));
  try {
    const tenant = 'bench-offline';
    const signer = createCheckpointSigner('fleet-security-api/bench', parseEd25519PrivateKey(KEY));
    const cpDir = path.join(dir, 'checkpoints', tenant);
    fs.mkdirSync(cpDir, { recursive: true });
    const rowsFile = path.join(dir, 'rows.ndjson');
    const out = fs.createWriteStream(rowsFile);
    const builder = new TreeBuilder();
    let prev: Buffer = GENESIS_HASH;
    const t0 = Date.now();
    const every = Math.ceil(rowsCount / 10);
    let lastCp = 0;
    for (let i = 1; i <= rowsCount; i += 1) {
      const created = new Date(Date.UTC(2026, 0, 1) + i * 10).toISOString().replace('Z', '000Z');
      const f: CanonicalFields = {
        id: String(i),
        tenantId: tenant,
        userId: '00000000-0000-4000-8000-000000000001',
        action: 'vehicle.updated',
        resourceType: 'vehicle',
        resourceId: `V-${i % 5000}`,
        before: `{"mileage": ${i}}`,
        after: `{"driver": "d-42", "mileage": ${i + 1}}`,
        ipAddress: '203.0.113.7/32',
        userAgent: 'fleet-app/2.1',
        result: 'success',
        errorMessage: null,
        severity: 'low',
        requestId: `req-${i}`,
        createdAt: created,
      };
      const h = computeRowHash(f, String(i), prev);
      prev = h;
      builder.addRowHash(h);
      const line = renderRow({ ...f, ipAddress: '203.0.113.7', result: 'success', severity: 'low' });
      if (!out.write(`${line}\n`)) await new Promise<void>((r) => out.once('drain', () => r()));
      if (i % every === 0 || i === rowsCount) {
        // as the publisher does: the leaves' ids in tree order beside the note
        fs.writeFileSync(
          path.join(cpDir, `${i}.ids`),
          `from ${lastCp}\n${Array.from({ length: i - lastCp }, (_, k) => String(lastCp + k + 1)).join('\n')}\n`,
        );
        fs.writeFileSync(
          path.join(cpDir, String(i)),
          signer.signBody(checkpointBody(checkpointOrigin('bench', tenant), i, builder.root())),
        );
        lastCp = i;
      }
    }
    await new Promise<void>((r) => out.end(r));
    const gen = (Date.now() - t0) / 1000;
    const mb = fs.statSync(rowsFile).size / 1e6;
    const load0 = os.loadavg()[0] as number;
    const c1 = process.cpuUsage();
    const t1 = performance.now();
    const report = await verifyOffline({
      keys: [parseVerifierKey(signer.verifierKey)],
      checkpointsDir: path.join(dir, 'checkpoints'),
      rowFiles: [rowsFile],
    });
    const secs = (performance.now() - t1) / 1000;
    const cu = process.cpuUsage(c1);
    // process CPU: the main thread and the row reader threads together
    const cpuSecs = (cu.user + cu.system) / 1e6;
    if (!report.ok) throw new Error(report.failure ?? 'offline verification failed');
    const load1 = os.loadavg()[0] as number;
    const target = rowsCount === 1_000_000 ? `, target < 10 s: ${secs < 10 ? 'met' : 'NOT met'}` : '';
    return [
      `offline verification: ${rowsCount} archived rows (${mb.toFixed(0)} MB NDJSON, generated in ${gen.toFixed(1)} s), ${report.tenants[0]?.verifiedSizes.length} signed checkpoints rebuilt: ${secs.toFixed(2)} s wall${target}; ${cpuSecs.toFixed(2)} s CPU in all threads (${Math.round(rowsCount / secs)} rows/s); load average ${load0.toFixed(1)} before, ${load1.toFixed(1)} after, on ${os.cpus().length} CPUs`,
    ];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 3);
  const rounds = Number(process.argv[3] ?? 3);
  const leaves = Number(process.argv[4] ?? 1_000_000);
  const only = process.env.BENCH_ONLY; // throughput | proofs | offline
  const lines: string[] = [];
  if (!only || only === 'throughput') lines.push(...(await throughput(seconds, rounds)));
  if (!only || only === 'sealer') lines.push(...(await sealerCost(rounds)));
  if (!only || only === 'proofs') lines.push(...(await proofs(leaves)));
  if (!only || only === 'offline') lines.push(...(await offline(leaves)));
  console.log('\nverifiable audit log (medians of the rounds):');
  for (const l of lines) console.log(`  ${l}`);
  console.log('targets: with/without >= 0.95; proof p99 < 5 ms; offline verification of 1,000,000 rows < 10 s');
}

main().catch((e: Error) => {
  console.error(e);
  process.exit(1);
});
