/**
 * npm run openapi:write   regenerates docs/openapi.json from the route descriptions
 * npm run openapi:check   exit 1 when docs/openapi.json differs from the generated document
 * (CONTRACT §12; the document is also served at GET /api/openapi.json).
 */
import fs from 'node:fs';
import path from 'node:path';
import '../server/src/app';
import { openApiJson } from '../server/src/openapi/document';

const FILE = path.resolve(__dirname, '../docs/openapi.json');
const mode = process.argv[2];
const generated = openApiJson();
if (mode === 'write') {
  fs.writeFileSync(FILE, generated);
  process.stdout.write(`openapi: wrote ${path.relative(process.cwd(), FILE)}\n`);
} else if (mode === 'check') {
  const committed = fs.existsSync(FILE) ? fs.readFileSync(FILE, 'utf8') : '';
  if (committed !== generated) {
    process.stderr.write(
      'openapi:check: docs/openapi.json differs from the document the routes describe: run `npm run openapi:write` and commit it.\n',
    );
    process.exit(1);
  }
  process.stdout.write('openapi:check: docs/openapi.json is up to date\n');
} else {
  process.stderr.write('usage: tsx scripts/openapi.ts write|check\n');
  process.exit(2);
}
