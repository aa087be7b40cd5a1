/**
 * Rewrites CSV files in place with formula-like cells neutralized (see ops/csv-safe.ts).
 * Used by scripts/collect-evidence.sh:  tsx server/src/cli/csv-safe.ts FILE.csv…
 * Exit 0 done, 1 a file could not be read or parsed, 2 no file given.
 */
import fs from 'node:fs';
import { neutralizeCsv } from '../ops/csv-safe';
import { parseArgv } from './args';

function main(argv: string[]): number {
  // Every argument is a file name, even one starting with a dash.
  const files = parseArgv({ positionals: true, unknown: (arg) => arg }, argv).positionals;
  if (files.length === 0) {
    process.stderr.write('usage: csv-safe.ts FILE.csv…\n');
    return 2;
  }
  for (const file of files) {
    try {
      const out = neutralizeCsv(fs.readFileSync(file, 'utf8'));
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, out, { mode: fs.statSync(file).mode & 0o777 });
      fs.renameSync(tmp, file);
    } catch (err) {
      process.stderr.write(`csv-safe: ${file}: ${(err as Error).message}\n`);
      return 1;
    }
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
