/**
 * The audit record as other modules read it (audit/record.ts and the repository's read
 * functions): every column in PostgreSQL's own output form, so the archive's bytes, the SIEM's
 * events and the API's entries are what they were when each module read audit_logs itself.
 */
import type pg from 'pg';
import { withTenant } from '../../src/db/transaction';
import { auditCreatedAt, auditEventOf, auditHost } from '../../src/services/audit/record';
import {
  countAuditRecordsAfter,
  countAuditRecordsBetween,
  selectAuditRecordRange,
  selectAuditRecordsById,
} from '../../src/services/audit/repository';
import { ownerPool } from '../helpers/app';
import { uniqueTenant } from '../helpers/env';
import { appRolePool, insertRawRows } from './helpers';

let owner: pg.Pool;
let app: pg.Pool;
const tenant = uniqueTenant('record-read');
const other = uniqueTenant('record-read-other');
let ids: string[] = [];

beforeAll(async () => {
  owner = ownerPool();
  app = appRolePool(2);
  ids = await insertRawRows(owner, tenant, [
    {
      ip: '2001:0db8:0000::0001',
      after: { b: [1, 2], a: 'ü\n', n: 1.5e300 },
      createdAt: '2026-03-04T05:06:07.123456Z',
    },
    { ip: '10.0.0.0/8', userId: '00000000-0000-4000-8000-000000000001', createdAt: '2026-03-04T05:06:08Z' },
    { ip: null, result: 'denied', severity: 'critical', createdAt: '2000-01-01T00:00:00.000001Z' },
  ]);
  await insertRawRows(owner, other, [{ ip: '192.0.2.1' }]);
});

afterAll(async () => {
  await app.end();
  await owner.end();
});

describe('the audit record', () => {
  it('when read, then every column is in the form PostgreSQL prints (jsonb, inet, ids) and created_at in UTC with microseconds', async () => {
    const records = await withTenant(app, tenant, (c) => selectAuditRecordRange(c, tenant, '0', ids[2] as string, 10));
    const { rows: sql } = await owner.query<Record<string, string | null>>(
      `SELECT id::text AS id, user_id::text AS user_id, after::text AS after,
              host(ip_address) AS host, audit_ts_text(created_at) AS created_at, created_at AS ts
         FROM audit_logs WHERE id = ANY ($1::bigint[]) ORDER BY id`,
      [ids],
    );
    expect(records.map((r) => r.id)).toEqual(ids);
    records.forEach((r, i) => {
      const s = sql[i] as Record<string, unknown>;
      expect(r.tenantId).toBe(tenant);
      expect(r.userId).toBe(s.user_id);
      expect(r.after).toBe(s.after);
      expect(r.createdAt).toBe(s.created_at);
      expect(auditCreatedAt(r).getTime()).toBe((s.ts as Date).getTime());
      expect(auditHost(r.ipAddress)).toBe(s.host);
    });
    expect(records.map((r) => r.ipAddress)).toEqual(['2001:db8::1', '10.0.0.0/8', null]);
    expect(records[2]).toMatchObject({
      result: 'denied',
      severity: 'critical',
      createdAt: '2000-01-01T00:00:00.000001Z',
    });
  });

  it('when read by id, then only the tenant’s rows come back, and the event built from one carries parsed values and the stored time', async () => {
    const [own] = await withTenant(app, tenant, (c) => selectAuditRecordsById(c, tenant, [ids[0] as string]));
    expect(own?.id).toBe(ids[0]);
    expect(await withTenant(app, other, (c) => selectAuditRecordsById(c, other, ids))).toEqual([]);
    const { event, recorded } = auditEventOf(own as NonNullable<typeof own>);
    expect(event.after).toEqual({ a: 'ü\n', b: [1, 2], n: 1.5e300 });
    expect(event.before).toBeUndefined();
    expect(recorded).toEqual({ id: ids[0], createdAt: new Date('2026-03-04T05:06:07.123Z') });
  });

  it('when counted between and after ids, then the counts are the tenant’s rows in that range', async () => {
    const [first, , last] = ids as [string, string, string];
    expect(await withTenant(app, tenant, (c) => countAuditRecordsBetween(c, tenant, first, last))).toBe(1);
    expect(await withTenant(app, tenant, (c) => countAuditRecordsAfter(c, tenant, first))).toBe(2);
    expect(await withTenant(app, tenant, (c) => selectAuditRecordRange(c, tenant, first, last, 1))).toHaveLength(1);
  });
});
