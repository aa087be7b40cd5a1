/**
 * npm run settings:write   rewrites the README's settings table from server/src/config/settings.ts
 * npm run settings:check   exit 1 when the README's table differs from the generated one
 */
import fs from 'node:fs';
import path from 'node:path';
import { withSettingsTable } from '../server/src/config/doc';

const FILE = path.resolve(__dirname, '../README.md');
const mode = process.argv[2];
const committed = fs.readFileSync(FILE, 'utf8');
const generated = withSettingsTable(committed);
if (generated === null) {
  process.stderr.write('settings: README.md has no settings:begin / settings:end markers\n');
  process.exit(1);
}
if (mode === 'write') {
  fs.writeFileSync(FILE, generated);
  process.stdout.write('settings: wrote the settings table in README.md\n');
} else if (mode === 'check') {
  if (committed !== generated) {
    process.stderr.write(
      'settings:check: the settings table in README.md differs from server/src/config/settings.ts: run `npm run settings:write` and commit it.\n',
    );
    process.exit(1);
  }
  process.stdout.write('settings:check: README.md settings table is up to date\n');
} else {
  process.stderr.write('usage: tsx scripts/settings-doc.ts write|check\n');
  process.exit(2);
}
