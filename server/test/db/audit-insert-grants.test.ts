/**
 * The application role inserts audit rows through a per-column grant (migration 051): every
 * column the application's INSERT statements name must be granted to fleet_app, or every audit
 * row written by the runtime login fails with "permission denied for table audit_logs" (as
 * happened when migration 072 added api_key_id; fixed by migration 090). The columns the
 * server decides itself (id, created_at) must stay ungranted.
 */
import type pg from 'pg';
import { INSERT_AUDIT_LOG, INSERT_AUDIT_LOG_IN_TENANT } from '../../src/services/audit/repository';
import { ownerPool } from '../helpers/app';

function insertedColumns(sql: string): string[] {
  const m = /INSERT INTO audit_logs \(([^)]+)\)/.exec(sql);
  if (!m?.[1]) throw new Error('no INSERT INTO audit_logs (...) in the statement');
  return m[1].split(',').map((c) => c.trim());
}

describe('audit_logs column grants for the application role', () => {
  let owner: pg.Pool;
  beforeAll(() => {
    owner = ownerPool();
  });
  afterAll(async () => {
    await owner.end();
  });

  const privilege = async (column: string): Promise<boolean> =>
    (
      await owner.query<{ ok: boolean }>(
        "SELECT has_column_privilege('fleet_app', 'public.audit_logs', $1, 'INSERT') AS ok",
        [column],
      )
    ).rows[0]?.ok === true;

  test('when the application inserts an audit row, then every column it names is granted to fleet_app', async () => {
    const columns = [
      ...new Set([...insertedColumns(INSERT_AUDIT_LOG), ...insertedColumns(INSERT_AUDIT_LOG_IN_TENANT)]),
    ];
    expect(columns).toContain('api_key_id');
    const missing: string[] = [];
    for (const c of columns) if (!(await privilege(c))) missing.push(c);
    expect(missing).toEqual([]);
  });

  test('when the grants are listed, then the server-chosen id and created_at are still not insertable by fleet_app', async () => {
    expect(await privilege('id')).toBe(false);
    expect(await privilege('created_at')).toBe(false);
  });
});
