/**
 * Option parsing and exit handling for the operator CLIs (server/src/cli). Each CLI keeps its
 * own usage text and messages; how options are read and how failures become exit codes is here.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * node:util parseArgs for the operator CLIs: strict, no positional arguments, and an option
 * given twice is an error (parseArgs alone keeps the last value silently, so
 * `--tenant a --tenant b` would quietly act on b). Throws on bad arguments.
 */
export function parseOptions<const O extends NonNullable<ParseArgsConfig['options']>>(
  options: O,
  args: string[] = process.argv.slice(2),
) {
  const parsed = parseArgs({ options, args, strict: true, allowPositionals: false, tokens: true });
  const seen = new Set<string>();
  for (const t of parsed.tokens) {
    if (t.kind !== 'option') continue;
    if (seen.has(t.name)) throw new Error(`${t.rawName} given more than once`);
    seen.add(t.name);
  }
  return parsed.values;
}

/** Prints a message and exits with status 2 (usage error). */
export function usageError(usage: string, message: string): never {
  process.stderr.write(`${message}\n\n${usage}\n`);
  process.exit(2);
}

/** Runs main, turning failures into a one-line message and exit status 1. */
export function runCli(name: string, main: () => Promise<void>): void {
  main().catch((err: Error) => {
    process.stderr.write(`${name}: ${err.message}\n`);
    process.exit(1);
  });
}

/**
 * Runs main and exits with the status it returns; a thrown error is handed to onFailure, which
 * reports it and returns the exit status.
 */
export function exitWith(main: () => Promise<number>, onFailure: (err: Error) => number): void {
  main().then(
    (code) => process.exit(code),
    (err: Error) => process.exit(onFailure(err)),
  );
}
