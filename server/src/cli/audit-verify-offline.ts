/**
 * npm run audit:verify-offline -- --key K [--key K2 ...] --checkpoints DIR --rows FILE|DIR [--rows ...] [--log-name NAME] [--json]
 *
 * Verifies, with no database and no network: every checkpoint note's signature, that notes
 * of one size agree, and that the archived rows rebuild every signed tree (which makes
 * successive checkpoints consistent). docs/AUDIT.md "Auditor's procedure".
 * Exit status: 0 verified, 1 the first failure is printed, 2 usage error.
 */
import fs from 'node:fs';
import path from 'node:path';
import { NoteError, parseVerifierKey, type VerifierKey } from '../services/audit/note-verify';
import { verifyOffline } from '../services/audit/offline-verify';
import { exitWith, parseOptions } from './args';

const USAGE = `usage: npm run audit:verify-offline -- --key K --checkpoints DIR --rows FILE [options]

  --key K           a verifier key (name+keyid+base64key, as GET /audit/checkpoint-key prints)
                    or a file holding one per line; repeat for rotated keys
  --checkpoints DIR the published checkpoints (checkpoints/<tenant>/<size> and <size>.ids,
                    as downloaded from the archive container; any layout)
  --rows FILE|DIR   archived audit rows (NDJSON as archived; a directory: every *.ndjson
                    under it); repeatable
  --log-name NAME   the deployment's AUDIT_LOG_NAME (default: taken from the key's name)
  --json            print one JSON document

exit status: 0 verified, 1 verification failed (the first failure is printed), 2 usage error`;

function usage(message: string): never {
  process.stderr.write(`audit:verify-offline: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function ndjsonFiles(p: string): string[] {
  const st = fs.statSync(p);
  if (st.isFile()) return [p];
  const out: string[] = [];
  for (const e of fs.readdirSync(p, { withFileTypes: true })) {
    const q = path.join(p, e.name);
    if (e.isDirectory()) out.push(...ndjsonFiles(q));
    else if (e.isFile() && e.name.endsWith('.ndjson')) out.push(q);
  }
  return out.sort();
}

async function main(): Promise<number> {
  let values: {
    key?: string[];
    checkpoints?: string;
    rows?: string[];
    'log-name'?: string;
    json?: boolean;
    help?: boolean;
  };
  try {
    values = parseOptions(
      {
        key: { type: 'string', multiple: true },
        checkpoints: { type: 'string' },
        rows: { type: 'string', multiple: true },
        'log-name': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      process.argv.slice(2),
      // --key and --rows repeat; any other option given twice is refused (README: exit 2).
      { repeated: 'error' },
    );
  } catch (err) {
    usage((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (!values.key?.length) usage('--key is required');
  if (!values.checkpoints) usage('--checkpoints is required');
  if (!values.rows?.length) usage('--rows is required');
  if (values['log-name'] !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(values['log-name']))
    usage('--log-name must be 1-64 letters, digits, dots, dashes or underscores');
  const keys: VerifierKey[] = [];
  for (const k of values.key) {
    const texts =
      fs.existsSync(k) && fs.statSync(k).isFile()
        ? fs
            .readFileSync(k, 'utf8')
            .split('\n')
            .map((l) => l.trim())
            .filter(Boolean)
        : [k];
    for (const t of texts) {
      try {
        keys.push(parseVerifierKey(t));
      } catch (err) {
        usage(`--key: ${err instanceof NoteError ? err.message : 'not a verifier key'}`);
      }
    }
  }
  if (!fs.existsSync(values.checkpoints) || !fs.statSync(values.checkpoints).isDirectory())
    usage(`--checkpoints ${values.checkpoints} is not a directory`);
  const rowFiles: string[] = [];
  for (const r of values.rows) {
    if (!fs.existsSync(r)) usage(`--rows ${r} does not exist`);
    rowFiles.push(...ndjsonFiles(r));
  }
  if (rowFiles.length === 0) usage(`--rows ${values.rows.join(', ')}: no archived rows (.ndjson files) found there`);
  const report = await verifyOffline({
    keys,
    checkpointsDir: values.checkpoints,
    rowFiles,
    logName: values['log-name'],
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    for (const t of report.tenants) {
      const unc = t.uncovered.length
        ? `; ${t.uncovered.length} checkpoint(s) beyond the archived rows NOT checked (sizes ${t.uncovered.slice(0, 5).join(', ')}${t.uncovered.length > 5 ? ', …' : ''})`
        : '';
      process.stdout.write(
        `tenant ${t.tenantId}: ${t.verifiedSizes.length} of ${t.checkpoints} signed checkpoint(s) rebuilt from ${t.rows} archived row(s)${unc}\n`,
      );
    }
    process.stdout.write(report.ok ? 'audit log verified offline\n' : `VERIFICATION FAILED: ${report.failure}\n`);
  }
  return report.ok ? 0 : 1;
}

exitWith(main, (err) => {
  process.stderr.write(`audit:verify-offline failed: ${err.message}\n`);
  return 2;
});
