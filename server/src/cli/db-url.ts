/**
 * Prints the database the operations scripts use, resolved like the server (see
 * server/src/ops/db-target.ts): DATABASE_URL, else DATABASE_* parts, else (outside
 * production) the running embedded development database.
 *
 *   npx tsx server/src/cli/db-url.ts                    the URL (contains the password)
 *   npx tsx server/src/cli/db-url.ts --format describe  user@host:port/db (source), no password
 *   npx tsx server/src/cli/db-url.ts --format pgenv     NAME=<base64 value> lines for PGHOST,
 *                                                       PGPORT, PGDATABASE, PGUSER, PGPASSWORD,
 *                                                       PGSSLMODE, PGSSLROOTCERT (used by scripts/lib/common.sh)
 * Run it from the project root (the embedded database is found under ./.data).
 * Exit 0 ok, 1 no usable database configuration, 2 bad arguments.
 */
import { processEnv } from '../config';
import { DbTargetError, describe, resolveDbTarget, toPgEnv, toUrl } from '../ops/db-target';

const USAGE = 'usage: db-url.ts [--format url|describe|pgenv]';

function main(argv: string[]): number {
  let format = 'url';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (a === '--format' && i + 1 < argv.length) format = argv[++i] as string;
    else {
      process.stderr.write(`db-url: unknown argument ${JSON.stringify(a)}\n${USAGE}\n`);
      return 2;
    }
  }
  if (!['url', 'describe', 'pgenv'].includes(format)) {
    process.stderr.write(`db-url: --format must be url, describe or pgenv\n${USAGE}\n`);
    return 2;
  }
  try {
    const target = resolveDbTarget(processEnv(), { cwd: process.cwd() });
    if (format === 'url') process.stdout.write(`${toUrl(target)}\n`);
    else if (format === 'describe') process.stdout.write(`${describe(target)}\n`);
    else {
      const lines = Object.entries({ ...toPgEnv(target), FLEET_DB_DESCRIPTION: describe(target) }).map(([k, v]) => `${k}=${Buffer.from(v, 'utf8').toString('base64')}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    return 0;
  } catch (err) {
    if (err instanceof DbTargetError) {
      process.stderr.write(`db-url: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

process.exitCode = main(process.argv.slice(2));
