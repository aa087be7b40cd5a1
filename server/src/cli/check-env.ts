import { formatIssues } from '../config';
import { loadRuntimeConfig } from '../runtime';
import { noOptions } from './args';

noOptions(
  'Usage: npm run check-env\n\nValidates the environment exactly as start-up does; prints every error and warning; exit 1 on any error. Takes no options.',
);

/** Validates the environment exactly as start-up does; every error and warning; exit 1 on any error. */
const loaded = loadRuntimeConfig();
const text = formatIssues(loaded);
if (text) process.stdout.write(text + '\n');
if (loaded.errors.length > 0) {
  process.stdout.write(`\ncheck-env: ${loaded.errors.length} error(s), ${loaded.warnings.length} warning(s)\n`);
  process.exit(1);
}
process.stdout.write(`check-env: OK (${loaded.config?.env}), ${loaded.warnings.length} warning(s)\n`);
