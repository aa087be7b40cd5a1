/**
 * Runs every benchmark in bench/ one after another (each prints its own baseline and ratio).
 * Usage: npm run bench   (or npx tsx bench/<name>.bench.ts for one)
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const dir = __dirname;
const benches = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .sort();
let failed = 0;
for (const b of benches) {
  process.stdout.write(`\n===== ${b} =====\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(dir, b)], { stdio: 'inherit' });
  if (r.status !== 0) failed += 1;
}
process.exit(failed > 0 ? 1 : 0);
