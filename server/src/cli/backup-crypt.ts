/**
 * Backup encryption helper used by scripts/backup.sh and scripts/restore.sh (file format:
 * server/src/ops/backup-crypt.ts). Keys are read from files, never from arguments.
 *
 *   backup-crypt.ts keygen  --out FILE                          new random key file (mode 0600; never overwrites)
 *   backup-crypt.ts key-id  --key-file FILE                     prints the key's id (hex)
 *   backup-crypt.ts inspect --in FILE                           prints the header (version, chunk size, key id)
 *   backup-crypt.ts encrypt --key-file FILE [--in F] [--out F]  stdin/stdout by default
 *   backup-crypt.ts decrypt --key-file FILE [--key-file F2 …] [--in F] [--out F]
 *
 * With --out, output goes to F.partial (created exclusively, mode 0600) and is linked to F
 * only on success; on failure it is removed, so a decrypted file that exists is complete and
 * authentic. An existing F is never replaced (exit 2): not the input, not an older backup.
 * Exit 0 ok, 1 I/O error, 2 bad arguments or bad key file, 3 not a backup, wrong key, or
 * altered/truncated data.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BackupCryptError,
  HEADER_LEN,
  createDecryptStream,
  createEncryptStream,
  keyId,
  parseHeader,
  readKeyFile,
} from '../ops/backup-crypt';
import { ArgvError, parseArgv } from './args';

const USAGE = `usage:
  backup-crypt.ts keygen  --out FILE
  backup-crypt.ts key-id  --key-file FILE
  backup-crypt.ts inspect --in FILE
  backup-crypt.ts encrypt --key-file FILE [--in FILE] [--out FILE]
  backup-crypt.ts decrypt --key-file FILE [--key-file FILE ...] [--in FILE] [--out FILE]`;

interface Args {
  command: string;
  keyFiles: string[];
  input: string | null;
  output: string | null;
}

function parseArgs(argv: string[]): Args & { help: boolean } {
  const p = parseArgv(
    {
      values: ['--in', '--out'],
      lists: ['--key-file'],
      help: { names: ['--help', '-h'], mode: 'anywhere' },
      missingValue: 'empty',
      unknown: (arg) => `unknown argument ${JSON.stringify(arg)}`,
      command: {
        choices: ['keygen', 'key-id', 'inspect', 'encrypt', 'decrypt'],
        message: 'a command is required: keygen, key-id, inspect, encrypt or decrypt',
      },
    },
    argv,
  );
  const command = p.command ?? '';
  const args = {
    help: p.help,
    command,
    keyFiles: p.lists.get('--key-file') ?? [],
    input: p.values.get('--in') ?? null,
    output: p.values.get('--out') ?? null,
  };
  if (args.help) return args;
  const needsKey = command === 'key-id' || command === 'encrypt' || command === 'decrypt';
  if (needsKey && args.keyFiles.length === 0) throw new ArgvError(`${command} needs --key-file`);
  if (!needsKey && args.keyFiles.length > 0) throw new ArgvError(`${command} takes no --key-file`);
  if ((command === 'encrypt' || command === 'key-id') && args.keyFiles.length > 1)
    throw new ArgvError(`${command} takes exactly one --key-file`);
  if (command === 'keygen' && !args.output) throw new ArgvError('keygen needs --out');
  if (command === 'inspect' && !args.input) throw new ArgvError('inspect needs --in');
  if ((command === 'encrypt' || command === 'decrypt') && args.output && fs.existsSync(args.output))
    throw new ArgvError(
      `--out ${args.output} exists; backup-crypt never replaces a file (not the input, not another backup): choose a new name`,
    );
  return args;
}

function loadKeys(files: string[]): Buffer[] {
  const warnings: string[] = [];
  const keys = files.map((f) => readKeyFile(f, warnings));
  for (const w of warnings) process.stderr.write(`backup-crypt: warning: ${w}\n`);
  return keys;
}

/**
 * Moves the finished `partial` to `output` without replacing a file there: a hard link fails
 * with EEXIST if one appeared meanwhile. Where the file system has no hard links, a rename
 * after checking again (what --out was checked for before anything was read).
 */
function placeNew(partial: string, output: string): void {
  try {
    fs.linkSync(partial, output);
    fs.rmSync(partial);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST' || fs.existsSync(output)) throw err;
    fs.renameSync(partial, output);
  }
}

async function transformFile(transform: Transform, input: string | null, output: string | null): Promise<void> {
  const source: Readable = input ? fs.createReadStream(input) : process.stdin;
  if (!output) {
    await pipeline(source, transform, process.stdout as Writable);
    return;
  }
  const partial = `${output}.partial`;
  const fd = fs.openSync(partial, 'wx', 0o600);
  try {
    await pipeline(source, transform, fs.createWriteStream('', { fd }));
    placeNew(partial, output);
  } catch (err) {
    fs.rmSync(partial, { force: true });
    throw err;
  }
}

async function run(args: Args): Promise<void> {
  switch (args.command) {
    case 'keygen': {
      const out = args.output as string;
      fs.writeFileSync(out, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
      process.stdout.write(`${keyId(readKeyFile(out)).toString('hex')}\n`);
      return;
    }
    case 'key-id':
      process.stdout.write(`${keyId(loadKeys(args.keyFiles)[0] as Buffer).toString('hex')}\n`);
      return;
    case 'inspect': {
      const fd = fs.openSync(args.input as string, 'r');
      const buf = Buffer.alloc(HEADER_LEN);
      const n = fs.readSync(fd, buf, 0, HEADER_LEN, 0);
      fs.closeSync(fd);
      const h = parseHeader(buf.subarray(0, n));
      process.stdout.write(
        `format: FLEETBK1 (AES-256-GCM, chunked)\nchunk_size: ${h.chunkSize}\nkey_id: ${h.keyId.toString('hex')}\n`,
      );
      return;
    }
    case 'encrypt':
      await transformFile(createEncryptStream(loadKeys(args.keyFiles)[0] as Buffer), args.input, args.output);
      return;
    case 'decrypt':
      await transformFile(createDecryptStream(loadKeys(args.keyFiles)), args.input, args.output);
      return;
    default:
      throw new Error('unknown command');
  }
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`backup-crypt: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    await run(args);
    return 0;
  } catch (err) {
    if (err instanceof BackupCryptError) {
      process.stderr.write(`backup-crypt: ${err.message}\n`);
      return err.code === 'BAD_KEY_FILE' ? 2 : 3;
    }
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(
      `backup-crypt: ${e.code === 'EEXIST' ? `${e.path ?? 'output'} already exists; refusing to overwrite` : e.message}\n`,
    );
    return 1;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`backup-crypt: ${err.message}\n`);
    process.exitCode = 1;
  },
);
