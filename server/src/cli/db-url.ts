/**
 * Prints the database the operations scripts use, resolved like the server (see
 * server/src/ops/db-target.ts): DATABASE_URL, else DATABASE_* parts, else (outside
 * production) the running embedded development database.
 *
 *   npx tsx server/src/cli/db-url.ts                    the URL (contains the password)
 *   npx tsx server/src/cli/db-url.ts --format describe  user@host:port/db (source), no password
 *   npx tsx server/src/cli/db-url.ts --format pgenv     PGHOST='…' lines (shell-quoted) for PGHOST,
 *                                                       PGPORT, PGDATABASE, PGUSER, PGPASSWORD,
 *                                                       PGSSLMODE, PGSSLROOTCERT, then an `export` line:
 *                                                       eval "$(npm run -s db:url -- --format pgenv)"
 *   npx tsx server/src/cli/db-url.ts --format pgenv-b64 NAME=<base64 value> lines, the same variables
 *                                                       and FLEET_DB_DESCRIPTION (read by scripts/lib/common.sh)
 * Run it from the project root (the embedded database is found under ./.data).
 * Exit 0 ok, 1 no usable database configuration, 2 bad arguments.
 */
import { processEnv } from '../config';
import { DbTargetError, describe, resolveDbTarget, toPgEnv, toUrl } from '../ops/db-target';
import { ArgvError, parseArgv } from './args';

const USAGE = 'usage: db-url.ts [--format url|describe|pgenv|pgenv-b64]';

/** POSIX shell single-quoting: safe for eval whatever the value holds. */
function shQuote(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`;
}

function main(argv: string[]): number {
  let parsed;
  try {
    parsed = parseArgv(
      {
        values: ['--format'],
        help: { names: ['--help', '-h'], mode: 'stop' },
        repeated: 'error',
        missingValue: 'end',
        needsValue: (option) => `${option} needs a value`,
        unknown: (arg) => `unknown argument ${JSON.stringify(arg)}`,
      },
      argv,
    );
  } catch (err) {
    if (!(err instanceof ArgvError)) throw err;
    process.stderr.write(`db-url: ${err.message}\n${USAGE}\n`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const format = parsed.values.get('--format') ?? 'url';
  if (!['url', 'describe', 'pgenv', 'pgenv-b64'].includes(format)) {
    process.stderr.write(`db-url: --format must be url, describe, pgenv or pgenv-b64\n${USAGE}\n`);
    return 2;
  }
  try {
    const target = resolveDbTarget(processEnv(), { cwd: process.cwd() });
    if (format === 'url') process.stdout.write(`${toUrl(target)}\n`);
    else if (format === 'describe') process.stdout.write(`${describe(target)}\n`);
    else if (format === 'pgenv') {
      const vars = toPgEnv(target);
      const lines = Object.entries(vars).map(([k, v]) => `${k}=${shQuote(v)}`);
      process.stdout.write(`${lines.join('\n')}\nexport ${Object.keys(vars).join(' ')}\n`);
    } else {
      const lines = Object.entries({ ...toPgEnv(target), FLEET_DB_DESCRIPTION: describe(target) }).map(
        ([k, v]) => `${k}=${Buffer.from(v, 'utf8').toString('base64')}`,
      );
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
