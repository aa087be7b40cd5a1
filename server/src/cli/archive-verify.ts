/**
 * npm run archive:verify [-- --tenant T] [--json]
 * Re-reads every archived audit blob and checks its SHA-256, its rows against the database and
 * the export digest chain. Exit 0: intact; 1: a problem (the first one is printed); 2: usage
 * or configuration error. Each verified tenant gets an audit.verify / audit.verify.failed row.
 * With --json every outcome is one JSON document on stdout, errors too:
 * { "valid": false, "error": { "kind": "usage"|"config"|"runtime", "message", "issues"? } }.
 */
import { createAuditService } from '../services/audit/service';
import { createBlobStore } from '../services/archive/blob-store';
import { verifyArchive } from '../services/archive/verify';
import { loadRuntimeConfig, requireConfig } from '../runtime';
import { exitWith, parseArgv } from './args';
import { cliLogger, withDatabasePool } from './boot';
import { formatIssues } from '../config';

const USAGE = 'usage: npm run archive:verify [-- --tenant TENANT] [--json]\n';

function parseArgs(argv: string[]): { tenant?: string; json: boolean; help: boolean } {
  const p = parseArgv(
    {
      flags: ['--json'],
      values: ['--tenant'],
      help: { names: ['--help', '-h'], mode: 'flag' },
      repeated: 'error',
      unknown: (arg) => `unknown argument ${arg}`,
    },
    argv,
  );
  const tenant = p.values.get('--tenant');
  if (tenant !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(tenant))
    throw new Error('--tenant must be 1-64 letters, digits, dots, underscores or dashes');
  return { ...(tenant !== undefined ? { tenant } : {}), json: p.flags.has('--json'), help: p.help };
}

/**
 * One line for an operator. Some storage errors (a wrong account key) carry an empty message;
 * their code and HTTP status then say what happened.
 */
function describeFailure(err: Error & { code?: unknown; statusCode?: unknown }): string {
  const line = String(err.message ?? '')
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l.length > 0);
  const code = typeof err.code === 'string' && err.code ? err.code : null;
  const status = typeof err.statusCode === 'number' ? `HTTP ${err.statusCode}` : null;
  const extra = [code, status].filter(Boolean).join(', ');
  if (line) return extra && !line.includes(extra) ? `${line} (${extra})` : line;
  return extra || err.name || 'unknown error';
}

// Whether errors are reported as JSON: decided before parsing, so usage errors are JSON too.
const jsonOutput = process.argv.slice(2).includes('--json');

type ErrorKind = 'usage' | 'config' | 'runtime';
function reportError(
  kind: ErrorKind,
  message: string,
  extra: { issues?: { level: 'error' | 'warning'; variable: string; message: string }[]; text?: string } = {},
): void {
  if (jsonOutput)
    process.stdout.write(
      JSON.stringify(
        { valid: false, error: { kind, message, ...(extra.issues ? { issues: extra.issues } : {}) } },
        null,
        2,
      ) + '\n',
    );
  else process.stderr.write(`${extra.text ?? `archive:verify: ${message}`}\n`);
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    reportError('usage', (err as Error).message, {
      text: `archive:verify: ${(err as Error).message}\n${USAGE.trimEnd()}`,
    });
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const loaded = loadRuntimeConfig();
  if (!loaded.config) {
    const issues = [
      ...loaded.errors.map((e) => ({ level: 'error' as const, ...e })),
      ...loaded.warnings.map((w) => ({ level: 'warning' as const, ...w })),
    ];
    if (jsonOutput) reportError('config', `configuration invalid: ${loaded.errors.length} error(s)`, { issues });
    else requireConfig(loaded, undefined, 2);
    return 2;
  }
  const config = jsonOutput ? loaded.config : requireConfig(loaded, undefined, 2);
  if (jsonOutput && loaded.warnings.length > 0)
    process.stderr.write(formatIssues({ errors: [], warnings: loaded.warnings }) + '\n');
  const logger = cliLogger(config, { level: config.log.level === 'info' ? 'warn' : config.log.level });
  const store = createBlobStore(config.archive);
  if (!store) {
    reportError('config', 'no archive configured (AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_URL)');
    return 2;
  }
  return withDatabasePool(config, logger, async (pool) => {
    const audit = createAuditService({ pool, logger });
    const report = await verifyArchive({ pool, store, audit }, { tenantId: args.tenant });
    if (args.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    else {
      for (const t of report.tenants) {
        process.stdout.write(
          `${t.problems.length === 0 ? 'OK  ' : 'FAIL'} tenant ${t.tenantId}: ${t.exports} export(s), ${t.rowsChecked} row(s) checked, ${t.rowsPending} pending\n`,
        );
        for (const p of t.problems)
          process.stdout.write(`     #${p.seq ?? '-'} ${p.kind}: ${p.detail}${p.blob ? ` [${p.blob}]` : ''}\n`);
        for (const w of t.warnings) process.stdout.write(`     warning: ${w}\n`);
      }
      if (report.tenants.length === 0) process.stdout.write('no archived exports found\n');
      process.stdout.write(
        report.valid
          ? 'archive:verify: intact\n'
          : `archive:verify: BROKEN (first problem: tenant ${report.firstProblem?.tenantId} export #${report.firstProblem?.seq} ${report.firstProblem?.kind})\n`,
      );
    }
    return report.valid ? 0 : 1;
  });
}

exitWith(main, (err) => {
  const message = describeFailure(err);
  reportError('runtime', message, { text: `archive:verify failed: ${message}` });
  return 2;
});
