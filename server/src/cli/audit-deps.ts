/**
 * `npm run audit:deps`: the production dependency vulnerability scan.
 * Runs `npm audit --omit=dev --audit-level=high --json` and reports plainly:
 *   exit 0  no high/critical advisories, or the advisory endpoint did not answer (said so)
 *   exit 1  high or critical advisories found, or npm audit failed for another reason
 */
import { spawnSync } from 'node:child_process';
import { classifyAudit } from '../ops/npm-audit';
import { noOptions } from './args';

noOptions(
  'Usage: npm run audit:deps\n\nProduction dependency vulnerability scan (npm audit --omit=dev); exit 1 on high or critical advisories. Takes no options.',
);

const args = ['audit', '--omit=dev', '--audit-level=high', '--json'];
const r = spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, {
  encoding: 'utf8',
  maxBuffer: 64 * 1024 * 1024,
  timeout: 180_000,
});
if (r.error) {
  process.stderr.write(`audit:deps: could not run npm audit: ${r.error.message}\n`);
  process.exit(1);
}
const outcome = classifyAudit(r.stdout ?? '', r.stderr ?? '');
const say = (s: string) => process.stdout.write(`${s}\n`);
switch (outcome.kind) {
  case 'clean':
  case 'findings': {
    const c = outcome.counts;
    say(
      `audit:deps: production dependencies: ${c.critical} critical, ${c.high} high, ${c.moderate} moderate, ${c.low} low`,
    );
    for (const f of outcome.findings)
      say(`  ${f.severity.padEnd(8)} ${f.name} ${f.range}${f.fixAvailable ? ' (fix available: npm audit fix)' : ''}`);
    if (outcome.kind === 'findings') {
      say('audit:deps: FAILED: high or critical advisories affect production dependencies (see npm audit --omit=dev)');
      process.exit(1);
    }
    say('audit:deps: OK: no high or critical advisories');
    break;
  }
  case 'unavailable':
    say(`audit:deps: SKIPPED: the dependency scan could not run: ${outcome.reason}.`);
    say('audit:deps: this is not a pass; run `npm run audit:deps` where the registry advisory endpoint answers.');
    break;
  case 'error':
    process.stderr.write(`audit:deps: npm audit failed: ${outcome.reason}\n${r.stderr ?? ''}`);
    process.exit(1);
}
