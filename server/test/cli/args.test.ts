/** The shared option parser of the operator CLIs (server/src/cli/args.ts): parseOptions and parseArgv. */
import { ArgvError, parseArgv, parseOptions, type ArgvSpec } from '../../src/cli/args';

const base: ArgvSpec = {
  flags: ['--json'],
  values: ['--tenant'],
  lists: ['--key'],
  help: { names: ['--help', '-h'], mode: 'flag' },
  unknown: (arg) => `unknown argument ${JSON.stringify(arg)}`,
};

function error(spec: ArgvSpec, argv: string[]): string {
  try {
    parseArgv(spec, argv);
  } catch (err) {
    expect(err).toBeInstanceOf(ArgvError);
    return (err as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(argv)}`);
}

describe('parseArgv', () => {
  test('when flags, values and lists are given, then each is read, lists in order and a repeated value last-wins', () => {
    const p = parseArgv(base, ['--key', 'a', '--tenant', 't1', '--json', '--key', 'b', '--tenant', 't2']);
    expect(p.flags).toEqual(new Set(['--json']));
    expect(p.values.get('--tenant')).toBe('t2');
    expect(p.lists.get('--key')).toEqual(['a', 'b']);
    expect(p).toMatchObject({ help: false, command: null, positionals: [] });
    expect(parseArgv(base, []).values.size).toBe(0);
  });

  test('when an argument is no option, then the spec words the refusal (also for --opt=value and words)', () => {
    expect(error(base, ['--bogus'])).toBe('unknown argument "--bogus"');
    expect(error(base, ['--tenant=x'])).toBe('unknown argument "--tenant=x"');
    expect(error({ ...base, unknown: (a) => `unknown argument ${a}` }, ['word'])).toBe('unknown argument word');
  });

  test('when an option lacks its value, then the missing-value rule decides what counts as missing', () => {
    expect(error(base, ['--tenant'])).toBe('--tenant needs a value');
    expect(error(base, ['--tenant', '--json'])).toBe('--tenant needs a value');
    expect(parseArgv(base, ['--tenant', '']).values.get('--tenant')).toBe('');
    const empty: ArgvSpec = { ...base, missingValue: 'empty' };
    expect(error(empty, ['--key', ''])).toBe('--key needs a value');
    expect(parseArgv(empty, ['--key', '--json']).lists.get('--key')).toEqual(['--json']);
    const end: ArgvSpec = { ...base, missingValue: 'end', needsValue: (o) => `unknown argument ${JSON.stringify(o)}` };
    expect(error(end, ['--tenant'])).toBe('unknown argument "--tenant"');
    expect(parseArgv(end, ['--tenant', '--help']).values.get('--tenant')).toBe('--help');
  });

  test("when repeated is 'error', then any --argument given twice is refused, before it is looked up", () => {
    const strict: ArgvSpec = { ...base, repeated: 'error' };
    expect(error(strict, ['--json', '--json'])).toBe('--json given more than once');
    expect(error(strict, ['--tenant', 'a', '--tenant', 'b'])).toBe('--tenant given more than once');
    expect(error(strict, ['--help', '--help'])).toBe('--help given more than once');
    expect(parseArgv(strict, ['-h', '-h']).help).toBe(true);
  });

  test('when help is asked for, then the help mode decides whether later arguments are still read', () => {
    expect(parseArgv(base, ['--json', '-h']).help).toBe(true);
    expect(error(base, ['--help', '--bogus'])).toBe('unknown argument "--bogus"');
    const stop: ArgvSpec = { ...base, help: { names: ['--help', '-h'], mode: 'stop' } };
    expect(parseArgv(stop, ['--tenant', 'x', '--help', '--bogus'])).toMatchObject({ help: true });
    expect(error(stop, ['--bogus', '--help'])).toBe('unknown argument "--bogus"');
    const anywhere: ArgvSpec = {
      ...base,
      help: { names: ['--help', '-h'], mode: 'anywhere' },
      command: { choices: ['run'], message: 'a command is required' },
    };
    expect(parseArgv(anywhere, ['nope', '--key', '-h']).help).toBe(true);
  });

  test('when a command word is required, then it must come first and be one of the choices', () => {
    const spec: ArgvSpec = { ...base, command: { choices: ['keygen', 'encrypt'], message: 'a command is required' } };
    expect(parseArgv(spec, ['encrypt', '--key', 'k']).command).toBe('encrypt');
    expect(error(spec, [])).toBe('a command is required');
    expect(error(spec, ['--key', 'k', 'encrypt'])).toBe('a command is required');
    expect(error(spec, ['keygen', 'encrypt'])).toBe('unknown argument "encrypt"');
  });

  test('when positionals are accepted, then every non-option argument is one, dashes included', () => {
    expect(parseArgv({ positionals: true, unknown: (a) => a }, ['a.csv', '--help', '-x']).positionals).toEqual([
      'a.csv',
      '--help',
      '-x',
    ]);
    expect(parseArgv({ ...base, positionals: true }, ['x', '--json', 'y']).positionals).toEqual(['x', 'y']);
  });

  test('when a check hook refuses a value, then its message wins over later arguments', () => {
    const spec: ArgvSpec = {
      ...base,
      check: (option, value) => {
        if (option === '--tenant' && value.includes('!')) throw new ArgvError('bad tenant');
      },
    };
    expect(error(spec, ['--tenant', 'a!', '--bogus'])).toBe('bad tenant');
    expect(error(spec, ['--bogus', '--tenant', 'a!'])).toBe('unknown argument "--bogus"');
    expect(parseArgv(spec, ['--tenant', 'ok']).values.get('--tenant')).toBe('ok');
  });
});

describe('parseOptions', () => {
  const options = { tenant: { type: 'string' }, key: { type: 'string', multiple: true } } as const;

  test('when an option is given twice, then it is refused unless it is multiple or repeated is last', () => {
    expect(() => parseOptions(options, ['--tenant', 'a', '--tenant', 'b'])).toThrow('--tenant given more than once');
    expect(parseOptions(options, ['--key', 'a', '--key', 'b']).key).toEqual(['a', 'b']);
    expect(parseOptions(options, ['--tenant', 'a', '--tenant=b'], { repeated: 'last' }).tenant).toBe('b');
  });

  test("when an option is unknown, then node's wording is kept", () => {
    expect(() => parseOptions(options, ['--password'])).toThrow("Unknown option '--password'");
  });
});
