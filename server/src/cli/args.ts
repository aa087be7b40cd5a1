/**
 * Option parsing and exit handling for the operator CLIs (server/src/cli). Each CLI keeps its
 * own usage text and messages; how options are read and how failures become exit codes is here.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * node:util parseArgs for the operator CLIs: strict, no positional arguments, and an option
 * given twice is an error (parseArgs alone keeps the last value silently, so
 * `--tenant a --tenant b` would quietly act on b) unless it is `multiple` or `repeated` is
 * 'last' (audit:verify-offline keeps node's last-wins rule). Throws on bad arguments.
 */
export function parseOptions<const O extends NonNullable<ParseArgsConfig['options']>>(
  options: O,
  args: string[] = process.argv.slice(2),
  { repeated = 'error' }: { repeated?: 'error' | 'last' } = {},
) {
  const parsed = parseArgs({ options, args, strict: true, allowPositionals: false, tokens: true });
  const seen = new Set<string>();
  for (const t of parsed.tokens) {
    if (t.kind !== 'option' || repeated === 'last' || options[t.name]?.multiple) continue;
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

/** A bad command line, as found by parseArgv; each CLI reports it in its own words. */
export class ArgvError extends Error {}

/**
 * What a hand-shaped command line accepts, for the CLIs whose wording and rules predate
 * parseOptions (their messages and tests are part of their interface). Options are spelled in
 * full ('--tenant'); an option's value is always the next argument (`--tenant=x` is unknown).
 */
export interface ArgvSpec {
  /** Boolean options. */
  flags?: readonly string[];
  /** Options taking the next argument as value; given twice, the last wins (unless `repeated` is 'error'). */
  values?: readonly string[];
  /** Options taking a value that may be given several times; every value is kept, in order. */
  lists?: readonly string[];
  /**
   * Help options: 'stop' ends parsing where one appears (later arguments are not read),
   * 'flag' records it like a flag (a later error still wins), 'anywhere' wins wherever it
   * appears, even as another option's value or before the command.
   */
  help?: { names: readonly string[]; mode: 'stop' | 'flag' | 'anywhere' };
  /** 'error': any `--` argument given a second time is refused ("--x given more than once"). */
  repeated?: 'error' | 'last';
  /**
   * When an option has no value: 'dashes' the next argument is missing or starts with `--`,
   * 'empty' it is missing or empty, 'end' it is missing.
   */
  missingValue?: 'dashes' | 'empty' | 'end';
  /** The message for an option without its value (default `${option} needs a value`). */
  needsValue?: (option: string) => string;
  /** The message for an argument that is no option (and positionals are not accepted). */
  unknown: (arg: string) => string;
  /** A command word that must come first, one of choices; `message` when it is missing or another word. */
  command?: { choices: readonly string[]; message: string };
  /** Every argument that is not an option is a positional (then nothing is unknown). */
  positionals?: boolean;
  /** Called with each option's value as it is read (left to right); throw ArgvError to refuse it. */
  check?: (option: string, value: string) => void;
}

export interface ParsedArgv {
  help: boolean;
  command: string | null;
  flags: Set<string>;
  values: Map<string, string>;
  lists: Map<string, string[]>;
  positionals: string[];
}

/** Reads argv by spec; throws ArgvError with the spec's wording for a bad command line. */
export function parseArgv(spec: ArgvSpec, argv: string[]): ParsedArgv {
  const out: ParsedArgv = {
    help: false,
    command: null,
    flags: new Set(),
    values: new Map(),
    lists: new Map(),
    positionals: [],
  };
  const helpNames = spec.help?.names ?? [];
  if (spec.help?.mode === 'anywhere' && argv.some((a) => helpNames.includes(a))) return { ...out, help: true };
  let rest = argv;
  if (spec.command) {
    const [command, ...after] = argv;
    if (!command || !spec.command.choices.includes(command)) throw new ArgvError(spec.command.message);
    out.command = command;
    rest = after;
  }
  const missing = (v: string | undefined): boolean =>
    v === undefined ||
    (spec.missingValue === 'empty' && v === '') ||
    ((spec.missingValue ?? 'dashes') === 'dashes' && v.startsWith('--'));
  const seen = new Set<string>();
  for (let i = 0; i < rest.length; i += 1) {
    const arg = rest[i] as string;
    if (spec.repeated === 'error' && arg.startsWith('--') && seen.has(arg))
      throw new ArgvError(`${arg} given more than once`);
    seen.add(arg);
    if (helpNames.includes(arg)) {
      out.help = true;
      if (spec.help?.mode === 'stop') return out;
    } else if (spec.flags?.includes(arg)) out.flags.add(arg);
    else if (spec.values?.includes(arg) || spec.lists?.includes(arg)) {
      const value = rest[i + 1];
      if (missing(value)) throw new ArgvError(spec.needsValue ? spec.needsValue(arg) : `${arg} needs a value`);
      i += 1;
      spec.check?.(arg, value as string);
      if (spec.values?.includes(arg)) out.values.set(arg, value as string);
      else out.lists.set(arg, [...(out.lists.get(arg) ?? []), value as string]);
    } else if (spec.positionals) out.positionals.push(arg);
    else throw new ArgvError(spec.unknown(arg));
  }
  return out;
}

/**
 * For a CLI that takes no options: `--help`/`-h` prints usage and exits 0; anything else on the
 * command line is a usage error (exit 2) rather than silently ignored (`migrate -- --dry-run`
 * must not apply migrations).
 */
export function noOptions(usage: string, args: string[] = process.argv.slice(2)): void {
  let values;
  try {
    values = parseOptions({ help: { type: 'boolean', short: 'h' } }, args);
  } catch (err) {
    usageError(usage, (err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
}
