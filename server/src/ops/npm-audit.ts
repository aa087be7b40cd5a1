/**
 * Reading `npm audit --json` output for `npm run audit:deps`.
 *
 * Three outcomes:
 * - the advisory endpoint answered: a report (auditReportVersion 2). High or critical
 *   findings fail the check; lower ones are listed but pass.
 * - the endpoint did not answer usefully (an HTTP error status such as the 405 some
 *   registries and mirrors give, a network error, a timeout): the scan could not run. That
 *   is said plainly and does not fail the build (there is nothing to act on).
 * - anything else (no lock file, unreadable output): an error that fails the check.
 */

export type Level = 'info' | 'low' | 'moderate' | 'high' | 'critical';

export interface AuditFinding {
  name: string;
  severity: Level;
  range: string;
  fixAvailable: boolean;
}

export type AuditOutcome =
  | { kind: 'clean'; counts: Record<Level, number>; findings: AuditFinding[] }
  | { kind: 'findings'; counts: Record<Level, number>; findings: AuditFinding[] }
  | { kind: 'unavailable'; reason: string }
  | { kind: 'error'; reason: string };

const NETWORK_CODES = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EPROTO',
  'ERR_SOCKET_TIMEOUT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
]);
const LEVELS: Level[] = ['info', 'low', 'moderate', 'high', 'critical'];

function zeroCounts(): Record<Level, number> {
  return { info: 0, low: 0, moderate: 0, high: 0, critical: 0 };
}

function asObject(v: unknown): Record<string, unknown> | null {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** Classifies the JSON npm audit printed (stdout) and its exit code; stderr helps with errors. */
export function classifyAudit(stdout: string, stderr = ''): AuditOutcome {
  let parsed: Record<string, unknown> | null;
  try {
    parsed = asObject(JSON.parse(stdout));
  } catch {
    parsed = null;
  }
  if (parsed && typeof parsed.auditReportVersion === 'number') {
    const counts = zeroCounts();
    const meta = asObject(asObject(parsed.metadata)?.vulnerabilities);
    for (const l of LEVELS) counts[l] = typeof meta?.[l] === 'number' ? (meta[l] as number) : 0;
    const findings: AuditFinding[] = [];
    for (const [name, raw] of Object.entries(asObject(parsed.vulnerabilities) ?? {})) {
      const v = asObject(raw);
      if (!v) continue;
      const severity = (LEVELS as string[]).includes(v.severity as string) ? (v.severity as Level) : 'info';
      findings.push({
        name,
        severity,
        range: typeof v.range === 'string' ? v.range : '',
        fixAvailable: Boolean(v.fixAvailable),
      });
    }
    findings.sort((a, b) => LEVELS.indexOf(b.severity) - LEVELS.indexOf(a.severity) || a.name.localeCompare(b.name));
    return { kind: counts.high + counts.critical > 0 ? 'findings' : 'clean', counts, findings };
  }
  const err = asObject(parsed?.error);
  const status = typeof parsed?.statusCode === 'number' ? parsed.statusCode : null;
  const code =
    typeof parsed?.code === 'string' ? parsed.code : typeof err?.code === 'string' ? (err.code as string) : null;
  const message =
    typeof parsed?.message === 'string'
      ? parsed.message
      : typeof err?.summary === 'string' && err.summary
        ? (err.summary as string)
        : null;
  if (status !== null)
    return {
      kind: 'unavailable',
      reason: `the advisory endpoint answered HTTP ${status}${message ? ` (${message})` : ''}`,
    };
  if (code && NETWORK_CODES.has(code))
    return { kind: 'unavailable', reason: `the advisory endpoint could not be reached (${code})` };
  if (/audit endpoint returned an error/i.test(stderr))
    return { kind: 'unavailable', reason: 'the advisory endpoint returned an error' };
  return { kind: 'error', reason: message ?? (code ? `npm audit failed (${code})` : 'npm audit printed no report') };
}
