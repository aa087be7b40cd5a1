/**
 * The scripts run as the database owner in production (not a superuser), and tables may force
 * row-level security on their owner (the audit trail does). Backup, restore and evidence must
 * then read every row through the owner read path (app.audit_scope = 'all') or refuse: never
 * a silently partial backup or export.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { runMigrations } from '../../src/db/migrate';
import { testAdminUrl } from '../helpers/env';
import { hasAuditVerify, lastLine, makeKeyFile, run, scriptEnv, tmpDir } from './helpers';

jest.setTimeout(180_000);

const role = `fleet_ops_owner_${randomBytes(4).toString('hex')}`;
const password = randomBytes(18).toString('base64url');
const source = `fleet_ops_rls_src_${randomBytes(3).toString('hex')}`;
const target = `fleet_ops_rls_dst_${randomBytes(3).toString('hex')}`;
let work: string;
let keyFile: string;

function url(db: string, asOwner: boolean): string {
  const u = new URL(testAdminUrl());
  if (asOwner) {
    u.username = role;
    u.password = password;
  }
  u.pathname = `/${db}`;
  return u.toString();
}

async function admin<T>(db: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url(db, false) });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A table forcing row-level security on its owner; `readPath` adds the owner read path policy. */
async function forcedTable(name: string, readPath: boolean): Promise<void> {
  const c = new pg.Client({ connectionString: url(source, true) });
  await c.connect();
  try {
    await c.query(`CREATE TABLE ${name} (tenant_id text NOT NULL, v int NOT NULL)`);
    await c.query(`ALTER TABLE ${name} ENABLE ROW LEVEL SECURITY`);
    await c.query(`ALTER TABLE ${name} FORCE ROW LEVEL SECURITY`);
    await c.query(
      `CREATE POLICY ${name}_tenant ON ${name} USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())`,
    );
    if (readPath) {
      await c.query(
        `CREATE POLICY ${name}_owner_read ON ${name} FOR SELECT TO ${pg.escapeIdentifier(role)} USING (current_setting('app.audit_scope', true) = 'all')`,
      );
    }
    for (const [tenant, v] of [
      ['acme', 1],
      ['acme', 2],
      ['beta', 3],
    ] as const) {
      await c.query('BEGIN');
      await c.query(`SELECT set_config('app.tenant_id', $1, true)`, [tenant]);
      await c.query(`INSERT INTO ${name} (tenant_id, v) VALUES ($1, $2)`, [tenant, v]);
      await c.query('COMMIT');
    }
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  await admin('postgres', async (c) => {
    await c.query(`CREATE ROLE ${pg.escapeIdentifier(role)} LOGIN CREATEROLE PASSWORD '${password}'`);
    await c.query(`CREATE DATABASE ${pg.escapeIdentifier(source)} OWNER ${pg.escapeIdentifier(role)}`);
    await c.query(`CREATE DATABASE ${pg.escapeIdentifier(target)} OWNER ${pg.escapeIdentifier(role)}`);
  });
  await runMigrations(url(source, true));
  await forcedTable('forced_readable', true);
  work = tmpDir();
  keyFile = makeKeyFile(work);
});

afterAll(async () => {
  await admin('postgres', async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(source)} WITH (FORCE)`);
    await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(target)} WITH (FORCE)`);
    await c.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(role)}`);
  });
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('scripts as a non-superuser owner under forced row-level security', () => {
  test('when a forced table has the owner read path, then backup and restore carry every row of it', async () => {
    const b = await run(
      'backup.sh',
      [],
      scriptEnv(url(source, true), { BACKUP_ENCRYPTION_KEY_FILE: keyFile, BACKUP_DIR: path.join(work, 'backups') }),
    );
    expect(b.code).toBe(0);
    expect(b.stderr).toMatch(new RegExp(`row-level security applies to \\d+ table\\(s\\) for ${role}`));
    const file = lastLine(b.stdout);
    const r = await run('restore.sh', [file], scriptEnv(url(target, true), { BACKUP_ENCRYPTION_KEY_FILE: keyFile }));
    expect(r.stderr).toMatch(/row counts match the backup/);
    expect(r.code).toBe(hasAuditVerify() ? 0 : 5);
    const rows = await admin(
      target,
      async (c) => (await c.query('SELECT tenant_id, v FROM forced_readable ORDER BY v')).rows,
    );
    expect(rows).toEqual([
      { tenant_id: 'acme', v: 1 },
      { tenant_id: 'acme', v: 2 },
      { tenant_id: 'beta', v: 3 },
    ]);
  });

  test('when a forced table has no owner read path, then backup and evidence refuse instead of missing rows', async () => {
    await forcedTable('forced_blind', false);
    const dir = path.join(work, 'refused');
    const b = await run(
      'backup.sh',
      [],
      scriptEnv(url(source, true), { BACKUP_ENCRYPTION_KEY_FILE: keyFile, BACKUP_DIR: dir }),
    );
    expect(b.code).toBe(1);
    expect(b.stderr).toContain(`the login ${role} would see only part of public.forced_blind (row-level security)`);
    expect(b.stderr).toContain('BYPASSRLS');
    expect(fs.existsSync(dir)).toBe(false);
    const out = path.join(work, 'evidence');
    const e = await run('collect-evidence.sh', ['--since', '2020-01-01', '--out', out], scriptEnv(url(source, true)));
    expect(e.code).toBe(1);
    expect(e.stderr).toContain('would see only part of public.forced_blind');
    expect(fs.existsSync(out)).toBe(false);
  });
});
