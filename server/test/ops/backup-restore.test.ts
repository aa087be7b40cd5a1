/**
 * scripts/backup.sh and scripts/restore.sh against real PostgreSQL databases: a migrated
 * scratch source with seeded rows, restored into fresh scratch targets.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { buildTestApp, type TestApp } from '../helpers/app';
import { loginAs } from '../helpers/auth';
import { uniqueTenant } from '../helpers/env';
import {
  hasAuditVerify,
  lastLine,
  makeKeyFile,
  pathWithout,
  run,
  scratchDb,
  scriptEnv,
  tmpDir,
  unprivileged,
  type ScratchDb,
} from './helpers';

jest.setTimeout(180_000);

let source: ScratchDb;
let app: TestApp;
let work: string;
let keyFile: string;
let backupFile: string;
let backupRun: { code: number | null; stdout: string; stderr: string };
const tenant = uniqueTenant('bk');
const targets: ScratchDb[] = [];

/** Row count of every table (the test logins are superusers: row-level security does not filter them). */
async function counts(db: ScratchDb): Promise<Record<string, number>> {
  const p = db.pool();
  const { rows } = await p.query<{ t: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1`,
  );
  const out: Record<string, number> = {};
  for (const { t } of rows) out[t] = Number((await p.query(`SELECT count(*) AS n FROM ${t}`)).rows[0].n);
  expect(Object.keys(out)).toEqual(
    expect.arrayContaining(['public.users', 'public.sessions', 'public.audit_logs', 'public.schema_migrations']),
  );
  return out;
}

async function newTarget(migrate = false): Promise<ScratchDb> {
  const t = await scratchDb({ migrate });
  targets.push(t);
  return t;
}

beforeAll(async () => {
  source = await scratchDb({ migrate: true });
  // Seed through the real services on the source database.
  app = await buildTestApp({ env: { DATABASE_URL: source.url } });
  const admin = await loginAs(app, { role: 'admin', tenantId: tenant });
  await loginAs(app, { role: 'user', tenantId: tenant });
  await loginAs(app, { role: 'viewer', tenantId: uniqueTenant('bk2') });
  for (let i = 0; i < 5; i++) {
    await app.composition.services.audit.record({
      tenantId: tenant,
      userId: admin.userId,
      action: 'fleet.vehicle.update',
      resourceType: 'vehicle',
      resourceId: `v-${i}`,
      after: { note: `row ${i} with "quotes", a\nnewline and 'single quotes' \\ backslash` },
      ipAddress: '203.0.113.9',
      severity: 'low',
    });
  }
  work = tmpDir();
  keyFile = makeKeyFile(work);
  backupRun = await run(
    'backup.sh',
    [],
    scriptEnv(source.url, { BACKUP_ENCRYPTION_KEY_FILE: keyFile, BACKUP_DIR: path.join(work, 'backups') }),
  );
  backupFile = lastLine(backupRun.stdout);
});

afterAll(async () => {
  await app?.close();
  for (const t of targets) await t.drop();
  await source?.drop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('backup.sh', () => {
  test('when a backup runs, then it prints the path of an encrypted 0600 file with a matching .sha256 and writes a system.backup audit row', async () => {
    expect(backupRun.code).toBe(0);
    expect(backupFile).toMatch(/\/backups\/fleet-backup-\d{8}T\d{6}Z-[0-9a-f]{8}\.dump\.enc$/);
    expect(fs.statSync(backupFile).mode & 0o777).toBe(0o600);
    expect(fs.statSync(`${backupFile}.sha256`).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(backupFile)).mode & 0o777).toBe(0o700);
    // Encrypted: our header, and no plaintext of the dump (pg_dump custom format starts with PGDMP).
    const bytes = fs.readFileSync(backupFile);
    expect(bytes.subarray(0, 8).toString('ascii')).toBe('FLEETBK1');
    expect(bytes.includes(Buffer.from('PGDMP'))).toBe(false);
    expect(bytes.includes(Buffer.from('fleet.vehicle.update'))).toBe(false);
    // sha256sum -c verifies it from its folder.
    execFileSync('sha256sum', ['-c', `${path.basename(backupFile)}.sha256`], { cwd: path.dirname(backupFile) });
    // The key never appears in the output.
    const key = fs.readFileSync(keyFile, 'utf8').trim();
    expect(backupRun.stdout + backupRun.stderr).not.toContain(key);
    const { rows } = await source.pool().query(`SELECT * FROM audit_logs WHERE action = 'system.backup'`);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      tenant_id: '_system',
      result: 'success',
      severity: 'medium',
      resource_type: 'backup',
      resource_id: path.basename(backupFile),
    });
    expect(rows[0].after).toMatchObject({
      file: backupFile,
      bytes: bytes.length,
      retentionDays: 14,
      expiredDeleted: 0,
    });
    expect(rows[0].after.sha256).toBe(fs.readFileSync(`${backupFile}.sha256`, 'utf8').split(' ')[0]);
  });

  test('when restored into an empty database, then every table has the same rows and the audit chain step runs', async () => {
    const target = await newTarget();
    const env = scriptEnv(target.url, { BACKUP_ENCRYPTION_KEY_FILE: keyFile });
    const r = await run('restore.sh', [backupFile], env);
    expect(r.stderr).toMatch(/row counts match the backup: \d+ tables, \d+ rows/);
    if (hasAuditVerify()) {
      expect(r.code).toBe(0);
      expect(lastLine(r.stdout)).toContain('row counts and audit hash chain verified');
      expect(r.stderr).toContain('audit hash chain verified');
    } else {
      // Until `npm run audit:verify` exists the chain cannot be checked: restore says so and fails.
      expect(r.code).toBe(5);
      expect(r.stderr).toContain('npm run audit:verify is not available');
    }
    const before = await counts(source);
    const after = await counts(target);
    // Every table but the audit trail's is identical. The audit trail differs only by the rows
    // written after the dump: system.backup in the source; system.restore and the chain
    // verification's own audit.verify row in the target. Everything else is the same, row by row.
    const audit = (t: string) => t.startsWith('public.audit_');
    expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
    for (const t of Object.keys(before).filter((x) => !audit(x)))
      expect({ t, n: after[t] }).toEqual({ t, n: before[t] });
    const pick = `SELECT id, tenant_id, user_id, action, resource_id, after, ip_address::text, created_at FROM audit_logs
                  WHERE action NOT LIKE 'system.%' AND action NOT LIKE 'audit.verify%' ORDER BY id`;
    const src = (await source.pool().query(pick)).rows;
    const dst = (await target.pool().query(pick)).rows;
    expect(src.length).toBeGreaterThanOrEqual(5);
    expect(dst).toEqual(src);
    const users = 'SELECT id, tenant_id, email, role FROM users ORDER BY id';
    expect((await target.pool().query(users)).rows).toEqual((await source.pool().query(users)).rows);
    const restoreRows = (
      await target.pool().query(`SELECT result, severity, after FROM audit_logs WHERE action = 'system.restore'`)
    ).rows;
    expect(restoreRows).toHaveLength(1);
    expect(restoreRows[0]).toMatchObject({ severity: 'high', result: hasAuditVerify() ? 'success' : 'failure' });
    // The application role can use the restored tables (grants came along).
    // (INSERT on audit_logs is granted per column since migration 051: every column but id and created_at.)
    const grants = await target
      .pool()
      .query(
        `SELECT has_column_privilege('fleet_app', 'audit_logs', 'action', 'INSERT') AND NOT has_column_privilege('fleet_app', 'audit_logs', 'created_at', 'INSERT') AS ok`,
      );
    expect(grants.rows[0].ok).toBe(true);
  });

  test('when the target database is not empty, then restore refuses without --force and leaves it untouched', async () => {
    const target = await newTarget(true);
    const before = await counts(target);
    const r = await run('restore.sh', [backupFile], scriptEnv(target.url, { BACKUP_ENCRYPTION_KEY_FILE: keyFile }));
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('is not empty');
    expect(r.stderr).toContain('--force');
    expect(await counts(target)).toEqual(before);
  });

  test('when restore into a non-empty database is forced, then the backup replaces its objects', async () => {
    const target = await newTarget(true);
    await target
      .pool()
      .query(`INSERT INTO audit_logs (tenant_id, action, resource_type) VALUES ('stale', 'stale.row', 'x')`);
    const r = await run(
      'restore.sh',
      ['--force', backupFile],
      scriptEnv(target.url, { BACKUP_ENCRYPTION_KEY_FILE: keyFile }),
    );
    expect(r.stderr).toContain('--force: replacing');
    expect(r.stderr).toContain('row counts match the backup');
    expect(r.code).toBe(hasAuditVerify() ? 0 : 5);
    expect(
      (await target.pool().query(`SELECT count(*)::int AS n FROM audit_logs WHERE action = 'stale.row'`)).rows[0].n,
    ).toBe(0);
    expect(
      (await target.pool().query(`SELECT count(*)::int AS n FROM audit_logs WHERE action = 'fleet.vehicle.update'`))
        .rows[0].n,
    ).toBe(5);
  });

  test('when the backup file was altered, then restore refuses it on the checksum before touching the database', async () => {
    const dir = tmpDir();
    const copy = path.join(dir, path.basename(backupFile));
    fs.copyFileSync(backupFile, copy);
    fs.copyFileSync(`${backupFile}.sha256`, `${copy}.sha256`);
    const buf = fs.readFileSync(copy);
    buf[Math.floor(buf.length / 2)] ^= 0x01;
    fs.writeFileSync(copy, buf);
    const target = await newTarget();
    const r = await run('restore.sh', [copy], scriptEnv(target.url, { BACKUP_ENCRYPTION_KEY_FILE: keyFile }));
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('checksum mismatch');
    expect(r.stderr).toContain('nothing was restored');
    expect(await target.relationCount()).toBe(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('when the backup was altered and its checksum rewritten to match, then authenticated decryption refuses it before any write', async () => {
    const dir = tmpDir();
    const copy = path.join(dir, path.basename(backupFile));
    const buf = fs.readFileSync(backupFile);
    buf[buf.length - 40] ^= 0x80; // inside the last chunk
    fs.writeFileSync(copy, buf);
    const sha = execFileSync('sha256sum', [path.basename(copy)], { cwd: dir }).toString();
    fs.writeFileSync(`${copy}.sha256`, sha);
    const target = await newTarget();
    const r = await run('restore.sh', [copy], scriptEnv(target.url, { BACKUP_ENCRYPTION_KEY_FILE: keyFile }));
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('authentication failed');
    expect(r.stderr).toContain('nothing was restored');
    expect(await target.relationCount()).toBe(0);
    expect(fs.readdirSync(dir).sort()).toEqual([path.basename(copy), `${path.basename(copy)}.sha256`]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('when the backup is truncated and its checksum rewritten, then restore refuses it before any write', async () => {
    const dir = tmpDir();
    const copy = path.join(dir, path.basename(backupFile));
    const buf = fs.readFileSync(backupFile);
    fs.writeFileSync(copy, buf.subarray(0, buf.length - 100));
    fs.writeFileSync(`${copy}.sha256`, execFileSync('sha256sum', [path.basename(copy)], { cwd: dir }).toString());
    const target = await newTarget();
    const r = await run('restore.sh', [copy], scriptEnv(target.url, { BACKUP_ENCRYPTION_KEY_FILE: keyFile }));
    expect(r.code).toBe(3);
    expect(await target.relationCount()).toBe(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('when restore is given the wrong key, then it refuses before any write', async () => {
    const dir = tmpDir();
    const wrong = makeKeyFile(dir, 'wrong.key');
    const target = await newTarget();
    const r = await run('restore.sh', [backupFile], scriptEnv(target.url, { BACKUP_ENCRYPTION_KEY_FILE: wrong }));
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('wrong key');
    expect(await target.relationCount()).toBe(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('when the key was rotated, then BACKUP_PREVIOUS_KEY_FILES lets restore decrypt an older backup', async () => {
    const dir = tmpDir();
    const current = makeKeyFile(dir, 'new.key');
    const target = await newTarget(true); // non-empty: the run stops right after decryption succeeded
    const without = await run(
      'restore.sh',
      [backupFile],
      scriptEnv(target.url, { BACKUP_ENCRYPTION_KEY_FILE: current }),
    );
    expect(without.code).toBe(3);
    const withPrevious = await run(
      'restore.sh',
      [backupFile],
      scriptEnv(target.url, { BACKUP_ENCRYPTION_KEY_FILE: current, BACKUP_PREVIOUS_KEY_FILES: keyFile }),
    );
    expect(withPrevious.stderr).toContain('decrypted and authenticated');
    expect(withPrevious.code).toBe(4);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('backup.sh retention', () => {
  test("when backups are older than BACKUP_RETENTION_DAYS, then only this script's expired files are deleted", async () => {
    const dir = path.join(tmpDir(), 'backups');
    fs.mkdirSync(dir, { mode: 0o700 });
    const stamp = (daysAgo: number) =>
      new Date(Date.now() - daysAgo * 86_400_000)
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d{3}Z$/, 'Z');
    const old = `fleet-backup-${stamp(30)}-0123abcd.dump.enc`;
    const recent = `fleet-backup-${stamp(2)}-89abcdef.dump.enc`;
    const foreign = [
      'notes.txt',
      `other-${stamp(30)}-0123abcd.dump.enc`,
      `fleet-backup-${stamp(30)}-0123abcd.dump`,
      `fleet-backup-${stamp(30)}-zzzzzzzz.dump.enc`,
      `fleet-backup-${stamp(30)}-0123abcd.dump.enc.bak`,
      `my-fleet-backup-${stamp(30)}-0123abcd.dump.enc`,
    ];
    for (const f of [old, `${old}.sha256`, recent, `${recent}.sha256`, ...foreign])
      fs.writeFileSync(path.join(dir, f), 'x');
    // A link named like an expired backup must not be followed or deleted, nor a folder.
    const outside = path.join(path.dirname(dir), 'precious.dump.enc');
    fs.writeFileSync(outside, 'keep');
    const link = `fleet-backup-${stamp(40)}-aaaaaaaa.dump.enc`;
    fs.symlinkSync(outside, path.join(dir, link));
    const folder = `fleet-backup-${stamp(40)}-bbbbbbbb.dump.enc`;
    fs.mkdirSync(path.join(dir, folder));

    const r = await run(
      'backup.sh',
      [],
      scriptEnv(source.url, { BACKUP_ENCRYPTION_KEY_FILE: keyFile, BACKUP_DIR: dir, BACKUP_RETENTION_DAYS: '14' }),
    );
    expect(r.code).toBe(0);
    const fresh = path.basename(lastLine(r.stdout));
    const left = fs.readdirSync(dir).sort();
    expect(left).toEqual([recent, `${recent}.sha256`, fresh, `${fresh}.sha256`, ...foreign, link, folder].sort());
    expect(fs.readFileSync(outside, 'utf8')).toBe('keep');
    expect(r.stderr).toContain(`retention: deleted ${old}`);
    const row = (
      await source
        .pool()
        .query(`SELECT after FROM audit_logs WHERE action = 'system.backup' AND resource_id = $1`, [fresh])
    ).rows[0];
    expect(row.after.expiredDeleted).toBe(1);
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  });

  test('when BACKUP_RETENTION_DAYS is 0, then no backup is deleted', async () => {
    const dir = path.join(tmpDir(), 'backups');
    fs.mkdirSync(dir, { mode: 0o700 });
    const old = `fleet-backup-20200101T000000Z-0123abcd.dump.enc`;
    fs.writeFileSync(path.join(dir, old), 'x');
    const r = await run(
      'backup.sh',
      [],
      scriptEnv(source.url, { BACKUP_ENCRYPTION_KEY_FILE: keyFile, BACKUP_DIR: dir, BACKUP_RETENTION_DAYS: '0' }),
    );
    expect(r.code).toBe(0);
    expect(fs.existsSync(path.join(dir, old))).toBe(true);
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  });
});

describe('backup.sh refusals', () => {
  const env = (extra: Record<string, string | undefined>) =>
    scriptEnv(source.url, {
      BACKUP_ENCRYPTION_KEY_FILE: keyFile,
      BACKUP_DIR: path.join(work, `refused-${Math.random().toString(36).slice(2)}`),
      ...extra,
    });

  test('when pg_dump is not installed, then backup exits 1 saying so and writes nothing', async () => {
    const bin = pathWithout(['pg_dump']);
    const e = env({ PATH: bin });
    const r = await run('backup.sh', [], e);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('pg_dump not found');
    expect(fs.existsSync(e.BACKUP_DIR as string)).toBe(false);
    fs.rmSync(bin, { recursive: true, force: true });
  });

  test('when pg_dump is older than the server, then backup exits 1 naming both versions and writes nothing', async () => {
    const bin = pathWithout(['pg_dump'], {
      pg_dump: '#!/bin/sh\n[ "$1" = "--version" ] && { echo "pg_dump (PostgreSQL) 12.22"; exit 0; }\nexit 1\n',
    });
    const e = env({ PATH: bin });
    const r = await run('backup.sh', [], e);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/pg_dump 12 is older than the database server \(\d+\)/);
    expect(fs.existsSync(e.BACKUP_DIR as string)).toBe(false);
    // The database answered: the failed run is on record.
    const rows = (
      await source
        .pool()
        .query(
          `SELECT error_message FROM audit_logs WHERE action = 'system.backup' AND result = 'failure' AND after->>'backupDir' = $1`,
          [e.BACKUP_DIR],
        )
    ).rows;
    expect(rows).toHaveLength(1);
    expect(rows[0].error_message).toMatch(/^pg_dump 12 is older than the database server .*\(exit 1\)$/);
    fs.rmSync(bin, { recursive: true, force: true });
  });

  test('when BACKUP_ENCRYPTION_KEY_FILE is not set, then backup exits 2 explaining how to make a key', async () => {
    const r = await run('backup.sh', [], env({ BACKUP_ENCRYPTION_KEY_FILE: undefined }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('BACKUP_ENCRYPTION_KEY_FILE is not set');
    expect(r.stderr).toContain('openssl rand -base64 32');
  });

  test('when the key file does not hold a 32-byte base64 key, then backup exits 2 without printing its content', async () => {
    const bad = path.join(work, 'bad.key');
    fs.writeFileSync(bad, 'hunter2-not-a-key\n', { mode: 0o600 });
    const r = await run('backup.sh', [], env({ BACKUP_ENCRYPTION_KEY_FILE: bad }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('base64 of exactly 32 random bytes');
    expect(r.stderr).not.toContain('hunter2');
  });

  /** The system.backup failure rows recorded for `dir`. */
  async function failureRows(
    dir: string,
  ): Promise<Array<{ error_message: string; severity: string; tenant_id: string }>> {
    return (
      await source
        .pool()
        .query(
          `SELECT error_message, severity, tenant_id FROM audit_logs WHERE action = 'system.backup' AND result = 'failure' AND after->>'backupDir' = $1`,
          [dir],
        )
    ).rows;
  }

  test('when BACKUP_DIR cannot be created (under /proc, an existing regular file, below a regular file), then backup exits 1 with a prefixed error naming BACKUP_DIR and records a system.backup failure row', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'plain-file');
    fs.writeFileSync(file, 'keep');
    const cases: Array<[string, RegExp]> = [
      [`/proc/fleet-backup-test-${process.pid}`, /cannot be created \(No such file or directory\)/],
      [file, /exists and is not a folder/],
      [path.join(file, 'sub'), /cannot be created \(Not a directory\)/],
    ];
    for (const [backupDir, why] of cases) {
      const r = await run('backup.sh', [], env({ BACKUP_DIR: backupDir }));
      expect({ backupDir, code: r.code }).toEqual({ backupDir, code: 1 });
      expect(r.stderr).toContain(`backup.sh: error: BACKUP_DIR ${backupDir} `);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).not.toMatch(/^mkdir:/m);
      expect(r.stdout).toBe('');
      const rows = await failureRows(backupDir);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ tenant_id: '_system', severity: 'medium' });
      expect(rows[0]?.error_message).toContain(`BACKUP_DIR ${backupDir} `);
      expect(rows[0]?.error_message).toMatch(why);
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('keep');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const asUser = unprivileged();
  (asUser ? test : test.skip)(
    'when BACKUP_DIR is a read-only folder for the user running the backup, then backup exits 1 saying it is not writable and records a failure row',
    async () => {
      const u = asUser as NonNullable<typeof asUser>;
      const dir = tmpDir();
      fs.chmodSync(dir, 0o755);
      const key = path.join(dir, 'own.key');
      fs.copyFileSync(keyFile, key);
      fs.chmodSync(key, 0o600);
      fs.chownSync(key, u.uid, u.gid);
      const ro = path.join(dir, 'read-only');
      fs.mkdirSync(ro, { mode: 0o555 });
      fs.chmodSync(ro, 0o555);
      for (const [backupDir, why] of [
        [ro, 'is not writable by'],
        [path.join(ro, 'new'), 'cannot be created (Permission denied)'],
      ] as const) {
        const r = await u.run('backup.sh', [], env({ BACKUP_ENCRYPTION_KEY_FILE: key, BACKUP_DIR: backupDir }));
        expect({ backupDir, code: r.code, stderr: r.stderr }).toEqual({
          backupDir,
          code: 1,
          stderr: expect.stringContaining(`backup.sh: error: BACKUP_DIR ${backupDir} ${why}`),
        });
        expect(await failureRows(backupDir)).toHaveLength(1);
      }
      expect(fs.readdirSync(ro)).toEqual([]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  );

  test('when the key file can be read by group or others, then backup refuses it with exit 2 and writes nothing', async () => {
    for (const mode of [0o644, 0o640, 0o604]) {
      const loose = path.join(work, `loose-${mode.toString(8)}.key`);
      fs.copyFileSync(keyFile, loose);
      fs.chmodSync(loose, mode);
      const e = env({ BACKUP_ENCRYPTION_KEY_FILE: loose });
      const r = await run('backup.sh', [], e);
      expect({ mode: mode.toString(8), code: r.code }).toEqual({ mode: mode.toString(8), code: 2 });
      expect(r.stderr).toContain(
        `backup.sh: error: BACKUP_ENCRYPTION_KEY_FILE: ${loose} is accessible by group or others (mode ${mode.toString(8)})`,
      );
      expect(r.stderr).toContain('chmod 600');
      expect(fs.existsSync(e.BACKUP_DIR as string)).toBe(false);
      fs.rmSync(loose);
    }
  });

  test('when BACKUP_RETENTION_DAYS is not a number, then backup exits 2', async () => {
    const r = await run('backup.sh', [], env({ BACKUP_RETENTION_DAYS: '14; rm -rf /' }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('BACKUP_RETENTION_DAYS must be a whole number');
  });

  test('when backup gets an argument, then it exits 2; with --help it prints the usage', async () => {
    const bad = await run('backup.sh', ['--dir', '/tmp'], env({}));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown argument: --dir');
    const help = await run('backup.sh', ['--help'], env({}));
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: scripts/backup.sh');
    expect(help.stdout).toContain('BACKUP_RETENTION_DAYS');
  });

  test('when the database does not answer, then backup exits 1 and names it without its password', async () => {
    const r = await run('backup.sh', [], env({ DATABASE_URL: 'postgres://ops:s3cr3t-pw@127.0.0.1:1/nowhere' }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot connect to ops@127.0.0.1:1/nowhere');
    expect(r.stderr).not.toContain('s3cr3t-pw');
  });
});

describe('restore.sh arguments', () => {
  const env = () => scriptEnv(source.url, { BACKUP_ENCRYPTION_KEY_FILE: keyFile });
  test('when restore gets no file, two files, an unknown option or a missing file, then it exits 2', async () => {
    for (const args of [[], [backupFile, backupFile], ['--yes', backupFile], ['/nonexistent/backup.dump.enc']]) {
      const r = await run('restore.sh', args, env());
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toContain('Try:');
    }
  });

  test('when an option is given twice, then restore exits 2 and touches nothing', async () => {
    const target = await newTarget();
    const r = await run(
      'restore.sh',
      ['--force', '--force', backupFile],
      scriptEnv(target.url, { BACKUP_ENCRYPTION_KEY_FILE: keyFile }),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--force was given more than once');
    expect(r.stderr).toContain('Try:');
    expect(await target.relationCount()).toBe(0);
  });

  test('when a key file (current or previous) can be read by group or others, then restore refuses it with exit 2 before touching the database', async () => {
    const dir = tmpDir();
    const loose = path.join(dir, 'loose.key');
    fs.copyFileSync(keyFile, loose);
    fs.chmodSync(loose, 0o644);
    const target = await newTarget();
    for (const extra of [
      { BACKUP_ENCRYPTION_KEY_FILE: loose },
      { BACKUP_ENCRYPTION_KEY_FILE: keyFile, BACKUP_PREVIOUS_KEY_FILES: loose },
    ]) {
      const r = await run('restore.sh', [backupFile], scriptEnv(target.url, extra));
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${loose} is accessible by group or others (mode 644)`);
      expect(r.stderr).not.toContain('decrypted');
    }
    expect(await target.relationCount()).toBe(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('when the .sha256 file is missing, then restore refuses with exit 3', async () => {
    const dir = tmpDir();
    const copy = path.join(dir, 'fleet-backup-x.dump.enc');
    fs.copyFileSync(backupFile, copy);
    const r = await run('restore.sh', [copy], env());
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('no checksum file');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('when BACKUP_ENCRYPTION_KEY_FILE is not set, then restore exits 2', async () => {
    const r = await run('restore.sh', [backupFile], scriptEnv(source.url, {}));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('BACKUP_ENCRYPTION_KEY_FILE is not set');
  });

  test('when restore is asked for --help, then it prints the usage with its exit codes', async () => {
    const r = await run('restore.sh', ['--help'], env());
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: scripts/restore.sh [--force] FILE');
    expect(r.stdout).toContain('npm run audit:verify');
  });
});
