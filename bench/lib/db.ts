/**
 * A database for a benchmark: a throw-away database on BENCH_DATABASE_URL's (or
 * TEST_DATABASE_URL's) server (dropped
 * afterwards), else an embedded PostgreSQL in a temporary directory. Migrated.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../server/src/db/embedded';
import { runMigrations } from '../../server/src/db/migrate';

export interface BenchDb {
  url: string;
  close(): Promise<void>;
}

export async function openBenchDb(): Promise<BenchDb> {
  const db = await open();
  await runMigrations(db.url);
  return db;
}

async function open(): Promise<BenchDb> {
  const external = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
  if (external) {
    const name = `fleet_bench_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: external });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    const u = new URL(external);
    u.pathname = `/${name}`;
    return {
      url: u.toString(),
      async close() {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await admin.end();
      },
    };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-bench-pg-'));
  fs.chmodSync(dir, 0o755);
  const embedded: EmbeddedDatabase = await startEmbeddedPostgres({
    dataDir: path.join(dir, 'data'),
    password: randomBytes(12).toString('hex'),
    database: 'bench',
    port: 0,
  });
  return {
    url: embedded.url,
    async close() {
      await embedded.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
