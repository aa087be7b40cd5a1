/**
 * Sealer throughput (npx tsx bench/sealer.bench.ts [rows=100000] [tenants=100]): committed,
 * unsealed audit rows are chained by audit_seal() (what the background sealer of one instance
 * calls, under the cluster-wide lock) in batches of 2,000 (the sealer's default) as fast as it
 * goes. Reports rows/s. The rows are inserted first (one statement), so only sealing is timed.
 * Database: BENCH_DATABASE_URL or TEST_DATABASE_URL (throw-away database), else embedded.
 */
import pg from 'pg';
import { openBenchDb } from './lib/db';
import { sealBatch } from '../server/src/services/audit/repository';

async function main(): Promise<void> {
  const rows = Number(process.argv[2] ?? 100_000);
  const tenants = Number(process.argv[3] ?? 100);
  const db = await openBenchDb();
  const owner = new pg.Pool({ connectionString: db.url, max: 2 });
  // The application role, as the sealer runs it.
  const app = new pg.Pool({ connectionString: db.url, max: 2, options: '-c role=fleet_app' });
  owner.on('error', () => undefined);
  app.on('error', () => undefined);
  try {
    const lsn = async (): Promise<string> =>
      (await owner.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]?.l as string;
    const walBytes = async (from: string, to: string): Promise<number> =>
      Number(
        (await owner.query<{ d: string }>('SELECT pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)::text AS d', [from, to]))
          .rows[0]?.d,
      );
    await owner.query('CHECKPOINT');
    const l0 = await lsn();
    const t0 = Date.now();
    await owner.query(
      `INSERT INTO audit_logs (tenant_id, action, resource_type, resource_id, after, severity)
       SELECT 'bench-' || (g % $2), 'bench.event', 'vehicle', 'V-' || g, json_build_object('mileage', g, 'driver', 'd-42'), 'low'
       FROM generate_series(1, $1) g`,
      [rows, tenants],
    );
    const insertS = (Date.now() - t0) / 1000;
    const l1 = await lsn();
    const s0 = process.hrtime.bigint();
    let sealed = 0;
    for (;;) {
      const n = await sealBatch(app, 2000);
      if (n === -1) continue;
      sealed += n;
      if (n === 0) break;
    }
    const s = Number(process.hrtime.bigint() - s0) / 1e9;
    const l2 = await lsn();
    const walInsert = await walBytes(l0, l1);
    const walSeal = await walBytes(l1, l2);
    process.stdout.write(
      `inserted ${rows} rows over ${tenants} tenants in ${insertS.toFixed(1)} s (${Math.round(rows / insertS)} rows/s, one statement)\n`,
    );
    process.stdout.write(
      `sealed ${sealed} rows in ${s.toFixed(2)} s: ${Math.round(sealed / s)} rows/s (batches of 2000)\n`,
    );
    process.stdout.write(
      `WAL: ${Math.round(walInsert / rows)} bytes/row inserted (incl. indexes, pending queue, first-touch full pages after a checkpoint), ${Math.round(walSeal / rows)} bytes/row sealed; ${Math.round((walInsert + walSeal) / rows)} bytes/row in all\n`,
    );
  } finally {
    await app.end();
    await owner.end();
    await db.close();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
