/**
 * Helpers for the operations-script tests: run a script as a child process with a clean,
 * explicit environment; make scratch databases on the test server; make backup keys.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { runMigrations } from '../../src/db/migrate';
import { testAdminUrl, testEnv } from '../helpers/env';

export const ROOT = path.resolve(__dirname, '../../..');
export const SCRIPTS = path.join(ROOT, 'scripts');

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment a script gets: PATH/HOME plus a complete test configuration for `dbUrl`. */
export function scriptEnv(
  dbUrl: string | undefined,
  extra: Record<string, string | undefined> = {},
): Record<string, string> {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: process.env.HOME ?? os.tmpdir(),
    LANG: 'C.UTF-8',
    TMPDIR: os.tmpdir(),
    ...testEnv({ DATABASE_URL: dbUrl }),
    ...extra,
  };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

/** Runs `scripts/<name>` (or any executable path) and collects its output. */
export function run(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  opts: { cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  const file = cmd.includes('/') ? cmd : path.join(SCRIPTS, cmd);
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export function lastLine(s: string): string {
  const lines = s.trimEnd().split('\n');
  return lines[lines.length - 1] ?? '';
}

export function tmpDir(prefix = 'fleet-ops-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A backup key file (base64 of 32 random bytes, mode 0600). */
export function makeKeyFile(dir: string, name = 'backup.key'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  return file;
}

export interface ScratchDb {
  name: string;
  url: string;
  pool(): pg.Pool;
  /** Non-system tables, sequences and views in the database. */
  relationCount(): Promise<number>;
  drop(): Promise<void>;
}

const RELATIONS = `SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`;

/** A new database on the test server (empty, or migrated), dropped by drop(). */
export async function scratchDb(opts: { migrate: boolean }): Promise<ScratchDb> {
  const name = `fleet_ops_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: testAdminUrl() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  const u = new URL(testAdminUrl());
  u.pathname = `/${name}`;
  const url = u.toString();
  if (opts.migrate) await runMigrations(url);
  const pools: pg.Pool[] = [];
  return {
    name,
    url,
    pool() {
      const p = new pg.Pool({ connectionString: url, max: 3 });
      // drop() uses WITH (FORCE): a backend still closing after pool.end() must not surface as an unhandled error.
      p.on('error', () => undefined);
      pools.push(p);
      return p;
    },
    async relationCount() {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        return (await c.query<{ n: number }>(RELATIONS)).rows[0]?.n ?? -1;
      } finally {
        await c.end();
      }
    },
    async drop() {
      for (const p of pools) await p.end().catch(() => undefined);
      const a = new pg.Client({ connectionString: testAdminUrl() });
      await a.connect();
      try {
        await a.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}

/** Whether `npm run audit:verify` exists yet (it comes with the audit hash chain). */
export function hasAuditVerify(): boolean {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    scripts?: Record<string, string>;
  };
  return Boolean(pkg.scripts?.['audit:verify']);
}

/**
 * A PATH directory holding links to every program in /usr/bin and /bin except `omit`, plus
 * optional replacement scripts: for "tool missing / tool too old" cases.
 */
export function pathWithout(omit: string[], replacements: Record<string, string> = {}): string {
  const dir = tmpDir('fleet-ops-bin-');
  for (const src of ['/usr/local/bin', '/usr/bin', '/bin']) {
    if (!fs.existsSync(src)) continue;
    for (const name of fs.readdirSync(src)) {
      if (omit.includes(name) || fs.existsSync(path.join(dir, name))) continue;
      fs.symlinkSync(path.join(src, name), path.join(dir, name));
    }
  }
  for (const [name, body] of Object.entries(replacements))
    fs.writeFileSync(path.join(dir, name), body, { mode: 0o755 });
  return dir;
}

export interface Unprivileged {
  uid: number;
  gid: number;
  /** Runs `scripts/<name>` as this user (environment preserved, HOME set to the temp folder). */
  run(name: string, args: string[], env: Record<string, string>): Promise<RunResult>;
}

/**
 * A user that file permissions apply to, for "read-only folder" cases (root writes anywhere):
 * the tests' own user when it is not root; `nobody` through runuser when the tests run as root;
 * null when neither is available (the caller skips the case). Files it must read need to be
 * reachable by it (e.g. a folder of mode 0755, a key file chowned to `uid`).
 */
export function unprivileged(): Unprivileged | null {
  const uid = process.getuid?.() ?? -1;
  if (uid > 0) return { uid, gid: process.getgid?.() ?? uid, run: (name, args, env) => run(name, args, env) };
  if (uid !== 0) return null;
  const runuser = ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'].find((p) => fs.existsSync(p));
  if (!runuser) return null;
  let ids: number[];
  try {
    ids = ['-u', '-g'].map((f) => Number(execFileSync('id', [f, 'nobody']).toString().trim()));
  } catch {
    return null;
  }
  const [nUid, nGid] = ids as [number, number];
  if (!(nUid > 0)) return null;
  return {
    uid: nUid,
    gid: nGid,
    run: (name, args, env) =>
      run(runuser, ['-p', '-u', 'nobody', '--', path.join(SCRIPTS, name), ...args], { ...env, HOME: os.tmpdir() }),
  };
}
