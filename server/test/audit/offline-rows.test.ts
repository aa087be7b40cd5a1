/** The offline verifier's reading of archived rows: exact jsonb text, inet forms, hostile lines. */
import { createHash } from 'node:crypto';
import { computeRowHash } from '../../src/services/audit/chain';
import { archivedRowFields, entryHash, topLevelRaw } from '../../src/services/audit/offline-verify';
import { renderRow } from '../../src/services/archive/format';
import type { AuditRecord } from '../../src/services/audit/record';

const row = (over: Partial<AuditRecord> = {}): AuditRecord => ({
  id: '42',
  tenantId: 'acme',
  userId: null,
  action: 'doc.changed',
  resourceType: 'doc',
  resourceId: 'd1',
  before: '{"a": 1, "s": "x,\\"after\\":y"}',
  after: '{"b": [1, 2], "t": ",\\"after\\":"}',
  ipAddress: '203.0.113.7',
  userAgent: null,
  result: 'success',
  errorMessage: null,
  severity: 'low',
  requestId: null,
  createdAt: '2026-01-01T00:00:00.123456Z',
  ...over,
});

describe('archived rows', () => {
  it('when before/after hold the separator text inside strings, then their exact jsonb text is recovered', () => {
    const f = archivedRowFields(renderRow(row()));
    expect(f.before).toBe('{"a": 1, "s": "x,\\"after\\":y"}');
    expect(f.after).toBe('{"b": [1, 2], "t": ",\\"after\\":"}');
    expect(f.ipAddress).toBe('203.0.113.7/32');
    expect(archivedRowFields(renderRow(row({ ipAddress: '2001:db8::1' }))).ipAddress).toBe('2001:db8::1/128');
    expect(archivedRowFields(renderRow(row({ before: null, after: null }))).before).toBeNull();
  });

  it('when the line is laid out differently (keys reordered), then the general scanner gives the same fields', () => {
    const line = renderRow(row());
    const o = JSON.parse(line) as Record<string, unknown>;
    const reordered = `{"after":${row().after},"before":${row().before},${Object.entries(o)
      .filter(([k]) => k !== 'before' && k !== 'after')
      .map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`)
      .join(',')}}`;
    expect(archivedRowFields(reordered)).toEqual(archivedRowFields(line));
    expect(topLevelRaw(reordered).get('before')).toBe(row().before);
  });

  it("when the verifier's chain hash is computed, then it equals the application's chain hash", () => {
    const f = archivedRowFields(
      renderRow(row({ userId: '00000000-0000-4000-8000-000000000001', userAgent: 'ü-agent', errorMessage: 'näh' })),
    );
    const prev = createHash('sha256').update('prev').digest();
    expect(entryHash(f, 17, prev).equals(computeRowHash(f, '17', prev))).toBe(true);
  });

  it('when a line is hostile, then it is refused with a reason', () => {
    for (const bad of [
      '',
      'null',
      '[1]',
      '{"id":1}',
      '{"id":"1","tenant_id":"a"',
      '{"id":"1","tenant_id":"a","action":"x","resource_type":"r","result":"s","severity":"low","created_at":"t"}',
    ]) {
      expect(() => archivedRowFields(bad)).toThrow();
    }
  });
});
