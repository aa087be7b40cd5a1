/**
 * npm run settings:write   rewrites the settings tables of README.md and docs/SIEM_AND_ARCHIVE.md
 *                          from server/src/config/settings.ts
 * npm run settings:check   exit 1 when a committed table differs from the generated one
 */
import fs from 'node:fs';
import path from 'node:path';
import { withSettingsTable } from '../server/src/config/doc';

const FILES = ['README.md', 'docs/SIEM_AND_ARCHIVE.md'];
const mode = process.argv[2];
if (mode !== 'write' && mode !== 'check') {
  process.stderr.write('usage: tsx scripts/settings-doc.ts write|check\n');
  process.exit(2);
}
let stale = 0;
for (const rel of FILES) {
  const file = path.resolve(__dirname, '..', rel);
  const committed = fs.readFileSync(file, 'utf8');
  const generated = withSettingsTable(committed);
  if (generated === null) {
    process.stderr.write(`settings: ${rel} has no complete settings:begin / settings:end block\n`);
    process.exit(1);
  }
  if (mode === 'write') {
    fs.writeFileSync(file, generated);
    process.stdout.write(`settings: wrote the settings table(s) in ${rel}\n`);
  } else if (committed !== generated) {
    process.stderr.write(
      `settings:check: the settings table in ${rel} differs from server/src/config/settings.ts: run \`npm run settings:write\` and commit it.\n`,
    );
    stale += 1;
  } else process.stdout.write(`settings:check: ${rel} settings table is up to date\n`);
}
if (stale > 0) process.exit(1);
