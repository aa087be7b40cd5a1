/** How `npm run audit:deps` reads npm audit's JSON (server/src/ops/npm-audit.ts). */
import { classifyAudit } from '../../src/ops/npm-audit';

const report = (
  vulns: Record<string, { severity: string; range?: string; fixAvailable?: boolean }>,
  counts: Record<string, number>,
) =>
  JSON.stringify({
    auditReportVersion: 2,
    vulnerabilities: vulns,
    metadata: { vulnerabilities: { info: 0, low: 0, moderate: 0, high: 0, critical: 0, ...counts, total: 0 } },
  });

describe('classifyAudit', () => {
  test('when the endpoint answered with high or critical advisories, then the outcome is findings, worst first', () => {
    const out = classifyAudit(
      report(
        {
          lodash: { severity: 'high', range: '<4.17.21', fixAvailable: true },
          minimist: { severity: 'critical', range: '<1.2.6' },
          ms: { severity: 'low' },
        },
        { high: 1, critical: 1, low: 1 },
      ),
    );
    expect(out.kind).toBe('findings');
    if (out.kind !== 'findings') throw new Error('unreachable');
    expect(out.counts).toMatchObject({ critical: 1, high: 1, low: 1 });
    expect(out.findings.map((f) => f.name)).toEqual(['minimist', 'lodash', 'ms']);
    expect(out.findings[1]).toEqual({ name: 'lodash', severity: 'high', range: '<4.17.21', fixAvailable: true });
  });

  test('when the endpoint answered with only moderate or lower advisories (or none), then the outcome is clean', () => {
    expect(classifyAudit(report({ ms: { severity: 'moderate' } }, { moderate: 1 })).kind).toBe('clean');
    expect(classifyAudit(report({}, {})).kind).toBe('clean');
  });

  test('when the advisory endpoint answers an HTTP error such as 405, then the scan is unavailable (not a failure)', () => {
    const npm405 = JSON.stringify({
      message: '405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk',
      method: 'POST',
      statusCode: 405,
      body: '',
      error: { summary: '', detail: '' },
    });
    const out = classifyAudit(npm405, 'npm error audit endpoint returned an error');
    expect(out).toEqual({
      kind: 'unavailable',
      reason:
        'the advisory endpoint answered HTTP 405 (405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk)',
    });
  });

  test('when the registry cannot be reached, then the scan is unavailable', () => {
    expect(classifyAudit(JSON.stringify({ error: { code: 'ENOTFOUND', summary: 'request failed' } })).kind).toBe(
      'unavailable',
    );
    expect(classifyAudit(JSON.stringify({ code: 'ETIMEDOUT', message: 'timeout' })).kind).toBe('unavailable');
    expect(classifyAudit('', 'npm error audit endpoint returned an error').kind).toBe('unavailable');
  });

  test('when npm audit fails for another reason or prints garbage, then the outcome is an error that fails the check', () => {
    expect(
      classifyAudit(
        JSON.stringify({ error: { code: 'ENOLOCK', summary: 'This command requires an existing lockfile.' } }),
      ),
    ).toEqual({ kind: 'error', reason: 'This command requires an existing lockfile.' });
    expect(classifyAudit('<html>not json</html>')).toEqual({ kind: 'error', reason: 'npm audit printed no report' });
    expect(classifyAudit('[1,2,3]').kind).toBe('error');
  });
});
