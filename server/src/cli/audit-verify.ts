/**
 * npm run audit:verify [-- --tenant T] [--anchor SEQ:HASH] [--seal] [--json] [--no-record]
 *
 * Walks the audit hash chain of one tenant (or of every tenant) through the owner
 * connection and reports, per tenant, whether it is intact, how many entries were checked,
 * the first broken row id and the rows not yet sealed. When a checkpoint signing key is
 * configured (AUDIT_CHECKPOINT_SIGNING_KEY or AZURE_KEYVAULT_CHECKPOINT_KEY_NAME), it also
 * rebuilds each tenant's Merkle tree and checks it against every stored checkpoint and the
 * newest copies published to the archive container (docs/AUDIT.md).
 * Exit codes: 0 intact, 1 broken (the first broken row id is printed), 2 usage, configuration
 * or runtime error (including a --tenant with no audit rows at all: most likely a typo).
 * Only the database settings are needed (configuration scope 'database'): a cron or restore
 * environment with DATABASE_URL alone can verify.
 */
import type { VerifyOptions } from '../services/audit/chain';
import { buildCheckpointService } from '../services/audit/checkpoint-setup';
import { verifyTrailIn, type TrailVerifyResult } from '../services/audit/tree-verify';
import { systemClock } from '../lib/clock';
import { SYSTEM_TENANT } from '../services/audit/catalog';
import { TENANT_RE } from '../services/auth/users';
import { sealBatch } from '../services/audit/repository';
import { createAuditService, listAuditTenants, withAllTenantsSnapshot } from '../services/audit/service';
import { poolOptionsFromConfig } from '../db/pool';
import { setTenantContext, withClient } from '../db/transaction';
import type { DatabaseHandle } from '../runtime';
import { ArgvError, exitWith, parseArgv } from './args';
import { cliConfig, cliLogger, withDatabasePool } from './boot';

const USAGE = `usage: npm run audit:verify [-- [--tenant T] [--anchor SEQ:SHA256HEX] [--seal] [--json] [--no-record]]

  --tenant T        verify only tenant T (default: every tenant)
  --anchor SEQ:HASH also require the entry at SEQ to have HASH (a chain head exported earlier,
                    e.g. from the audit archive); needs --tenant
  --seal            seal committed rows that are still unsealed before verifying
  --json            print one JSON document instead of text
  --no-record       do not write the audit.verify / audit.verify.failed audit row

The database settings are read (DATABASE_URL or DATABASE_*, DATABASE_SSL, DB_*); with a
checkpoint key (AUDIT_CHECKPOINT_SIGNING_KEY or AZURE_KEYVAULT_CHECKPOINT_KEY_NAME, plus
AUDIT_CHECKPOINT_TRUSTED_KEYS, AUDIT_LOG_NAME and the archive storage settings) the signed
checkpoints are checked too.

exit status: 0 intact, 1 broken (first broken row id printed), 2 usage, configuration or
runtime error (also: --tenant names a tenant with no audit rows)`;

interface Args {
  tenant: string | null;
  anchor: VerifyOptions['anchor'];
  seal: boolean;
  json: boolean;
  record: boolean;
}

function parseArgs(argv: string[]): Args {
  let anchor: VerifyOptions['anchor'];
  const p = parseArgv(
    {
      flags: ['--seal', '--json', '--no-record'],
      values: ['--tenant', '--anchor'],
      help: { names: ['--help', '-h'], mode: 'stop' },
      repeated: 'error',
      unknown: (arg) => `unknown argument ${JSON.stringify(arg)}`,
      check: (option, v) => {
        if (option === '--tenant' && v !== SYSTEM_TENANT && v !== '_platform' && !TENANT_RE.test(v))
          throw new ArgvError(
            `--tenant must be 1-64 letters, digits, dots, dashes or underscores, starting with a letter or digit (or ${SYSTEM_TENANT})`,
          );
        if (option !== '--anchor') return;
        const m = /^([1-9]\d{0,18}):([0-9a-fA-F]{64})$/.exec(v);
        if (!m) throw new ArgvError('--anchor must look like SEQ:64-hex-characters');
        anchor = { seq: m[1] as string, hash: (m[2] as string).toLowerCase() };
      },
    },
    argv,
  );
  if (p.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const a: Args = {
    tenant: p.values.get('--tenant') ?? null,
    anchor,
    seal: p.flags.has('--seal'),
    json: p.flags.has('--json'),
    record: !p.flags.has('--no-record'),
  };
  if (a.anchor && !a.tenant) throw new ArgvError('--anchor needs --tenant');
  return a;
}

function describe(r: TrailVerifyResult): string {
  const unsealed = r.unsealed > 0 ? `; ${r.unsealed} row(s) not sealed yet (oldest id ${r.oldestUnsealedId})` : '';
  if (r.valid) {
    const head = r.head ? `head seq ${r.head.seq} ${r.head.hash}` : 'no sealed rows';
    const cps = r.checkpoints
      ? `; ${r.checkpoints.checked} checkpoint note(s) verified (${r.checkpoints.publishedChecked} of ${r.checkpoints.published} published copies read)`
      : '';
    return `tenant ${r.tenantId}: intact, ${r.checked} entr${r.checked === 1 ? 'y' : 'ies'} checked, ${head}${unsealed}${cps}`;
  }
  return `tenant ${r.tenantId}: BROKEN${r.firstBrokenId ? ` at audit row ${r.firstBrokenId}` : ''}: ${r.reason}${unsealed}`;
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ArgvError) {
      process.stderr.write(`audit:verify: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
  const config = cliConfig({ scope: 'database', exitCode: 2 });
  const logger = cliLogger(config);
  // The owner connection (no application role): it may read every tenant once it sets
  // app.audit_scope = 'all' (migration 022). MIGRATION_DATABASE_URL when given (two logins),
  // else the one login configured.
  const ownerPool = (db: DatabaseHandle) => ({
    ...poolOptionsFromConfig(config, db.ownerUrl ?? db.url),
    ...(db.ownerUrl ? { ssl: config.database.ownerSsl, caFile: config.database.ownerCaFile } : {}),
    appRole: null,
    max: 2,
    applicationName: 'fleet-security-audit-verify',
  });
  return withDatabasePool(
    config,
    logger,
    async (pool) => {
      if (args.seal) {
        let sealed = 0;
        for (;;) {
          const n = await sealBatch(pool, 5000);
          if (n === -1) {
            await new Promise((r) => setTimeout(r, 50));
            continue;
          }
          sealed += n;
          if (n < 5000) break;
        }
        if (!args.json) process.stdout.write(`sealed ${sealed} row(s) before verifying\n`);
      }
      // The same trusted keys, origin and published copies as GET /audit/verify (trailDeps: null
      // when no checkpoint key is configured).
      const checkpoints = buildCheckpointService({ config, pool, logger, clock: systemClock });
      const results = await withClient(pool, (client) =>
        withAllTenantsSnapshot(client, async (q) => {
          const tenants = args.tenant ? [args.tenant] : await listAuditTenants(q);
          const out: TrailVerifyResult[] = [];
          for (const t of tenants) {
            await setTenantContext(q, t);
            const deps = await checkpoints.trailDeps(t);
            out.push(await verifyTrailIn(q, t, deps, { anchor: args.anchor }));
          }
          return out;
        }),
      );

      const only = args.tenant ? results[0] : undefined;
      if (only && only.valid && only.checked === 0 && only.unsealed === 0 && !only.head) {
        // Nothing at all for that tenant: report it, rather than "intact, 0 entries checked".
        process.stderr.write(
          `audit:verify: tenant ${JSON.stringify(args.tenant)} has no audit rows (is the name right?)\n`,
        );
        return 2;
      }
      const broken = results.filter((r) => !r.valid);
      const valid = broken.length === 0;
      const firstBroken = broken[0] ?? null;
      if (args.record) {
        const audit = createAuditService({ pool, logger });
        for (const r of broken) {
          await audit.record({
            tenantId: r.tenantId,
            action: 'audit.verify.failed',
            resourceType: 'audit_chain',
            resourceId: r.tenantId,
            result: 'failure',
            errorMessage: r.reason,
            after: { checked: r.checked, firstBrokenId: r.firstBrokenId, unsealed: r.unsealed, source: 'cli' },
          });
        }
        await audit.record({
          tenantId: SYSTEM_TENANT,
          action: valid ? 'audit.verify' : 'audit.verify.failed',
          resourceType: 'audit_chain',
          resourceId: args.tenant ?? '*',
          result: valid ? 'success' : 'failure',
          errorMessage: firstBroken ? `tenant ${firstBroken.tenantId}: ${firstBroken.reason}` : null,
          after: {
            tenants: results.length,
            broken: broken.map((r) => ({ tenantId: r.tenantId, firstBrokenId: r.firstBrokenId })),
            checked: results.reduce((n, r) => n + r.checked, 0),
            source: 'cli',
          },
        });
      }

      if (args.json) {
        process.stdout.write(
          `${JSON.stringify({ valid, checked: results.reduce((n, r) => n + r.checked, 0), firstBrokenId: firstBroken?.firstBrokenId ?? null, tenants: results }, null, 2)}\n`,
        );
      } else {
        if (results.length === 0)
          process.stdout.write(args.tenant ? `tenant ${args.tenant}: no audit rows\n` : 'no audit rows found\n');
        for (const r of results) process.stdout.write(`${describe(r)}\n`);
        const checked = results.reduce((n, r) => n + r.checked, 0);
        process.stdout.write(
          valid
            ? `audit chain intact: ${results.length} tenant(s), ${checked} entries checked\n`
            : `audit chain BROKEN: ${broken.length} tenant(s); first broken row id: ${firstBroken?.firstBrokenId ?? '(none: rows removed from the end)'}\n`,
        );
      }
      return valid ? 0 : 1;
    },
    ownerPool,
  );
}

exitWith(main, (err) => {
  process.stderr.write(`audit:verify failed: ${err.message}\n`);
  return 2;
});
