/**
 * npm run keys:rewrap [-- --dry-run] [--tenant T] [--batch-size N]
 *
 * Re-encrypts every stored ciphertext the encryption service owns (encrypted_secrets) under
 * the current master key version, so old versions can be retired after a rotation. Safe to
 * re-run and to run while the service is up. Exit 0: done (or nothing to do); 1: rows that
 * could not be decrypted (left unchanged, listed) or an error; 2: bad arguments.
 */
import { exitWith, parseOptions } from './args';
import { quietUnlessDebug } from './boot';
import { withCliServices } from './services';
import { rewrapEncryptedSecrets, type RewrapReport } from '../services/encryption';

const USAGE = `Usage: npm run keys:rewrap [-- options]

Re-encrypts stored ciphertexts (encrypted_secrets) under the current master key version.

Options:
  --dry-run          count rows per key version; change nothing
  --tenant T         only this tenant
  --batch-size N     rows per transaction (default 200)
  -h, --help         this text

Exit status: 0 done, 1 rows left unchanged (or, with --dry-run, rows whose key version has no
key available) or an error, 2 bad arguments.
`;

function out(s: string): void {
  process.stdout.write(s + '\n');
}

function printReport(r: RewrapReport): void {
  out(`master key: ${r.keyId} version ${r.targetVersion} (${r.source})`);
  if (r.before.length === 0) out('stored ciphertexts: none');
  for (const b of r.before) out(`  ${b.keyVersion === r.targetVersion ? '*' : ' '} ${b.keyVersion}: ${b.rows} row(s)`);
  if (r.dryRun) {
    out(`dry run: ${r.stale} row(s) would be re-encrypted under ${r.targetVersion}`);
    for (const u of r.unavailable)
      out(
        `  NO KEY for version ${u.keyVersion}: its ${u.rows} row(s) would fail (${u.reason}); add that key (FLEET_ENCRYPTION_PREVIOUS_KEYS or the vault) before the real run`,
      );
    return;
  }
  for (const t of r.tenants) out(`  tenant ${t.tenantId}: ${t.rewrapped} re-encrypted, ${t.failed} failed`);
  out(`re-encrypted ${r.rewrapped} of ${r.stale} row(s) under ${r.targetVersion}; ${r.failed.length} failed`);
  for (const f of r.failed)
    out(`  FAILED tenant=${f.tenantId} id=${f.id} name=${f.name} version=${f.keyVersion}: ${f.reason}`);
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseOptions({
      'dry-run': { type: 'boolean', default: false },
      tenant: { type: 'string' },
      'batch-size': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    });
  } catch (err) {
    process.stderr.write(`keys:rewrap: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    out(USAGE);
    return 0;
  }
  const batchRaw = args['batch-size'];
  const batchSize = batchRaw === undefined ? 200 : /^\d{1,5}$/.test(batchRaw) ? Number(batchRaw) : NaN;
  if (!(batchSize >= 1 && batchSize <= 10_000)) {
    process.stderr.write(`keys:rewrap: --batch-size must be a whole number from 1 to 10000\n`);
    return 2;
  }
  if (args.tenant !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(args.tenant)) {
    process.stderr.write(`keys:rewrap: --tenant must be a tenant id (letters, digits, . _ -)\n`);
    return 2;
  }

  try {
    // No migrations here (prepare: false): a rewrap runs against the schema as it is.
    return await withCliServices(
      async (c) => {
        try {
          const { encryption, audit } = c.services;
          const report = await rewrapEncryptedSecrets(
            { pool: c.pool, encryption, audit, logger: c.logger },
            { dryRun: args['dry-run'], batchSize, tenantId: args.tenant ?? null },
          );
          printReport(report);
          return report.failed.length > 0 || report.unavailable.length > 0 ? 1 : 0;
        } finally {
          await c.stop();
        }
      },
      { prepare: false, logLevel: quietUnlessDebug },
    );
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === '42883' || code === '42P01') {
      process.stderr.write('keys:rewrap: the encrypted_secrets table is missing; run `npm run migrate` first\n');
    } else {
      process.stderr.write(`keys:rewrap failed: ${(err as Error).message}\n`);
    }
    return 1;
  }
}

exitWith(main, (err) => {
  process.stderr.write(`keys:rewrap failed: ${err.message}\n`);
  return 1;
});
