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
 * With --out, output goes to F.partial (created exclusively, mode 0600) and is renamed to F
 * only on success; on failure it is removed, so a decrypted file that exists is complete and
 * authentic. Exit 0 ok, 1 I/O error, 2 bad arguments or bad key file, 3 not a backup, wrong
 * key, or altered/truncated data.
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

const USAGE = `usage:
  backup-crypt.ts keygen  --out FILE
  backup-crypt.ts key-id  --key-file FILE
  backup-crypt.ts inspect --in FILE
  backup-crypt.ts encrypt --key-file FILE [--in FILE] [--out FILE]
  backup-crypt.ts decrypt --key-file FILE [--key-file FILE ...] [--in FILE] [--out FILE]`;

class UsageError extends Error {}

interface Args {
  command: string;
  keyFiles: string[];
  input: string | null;
  output: string | null;
}

function parseArgs(argv: string[]): Args {
  const [command, ...rest] = argv;
  if (!command || !['keygen', 'key-id', 'inspect', 'encrypt', 'decrypt'].includes(command))
    throw new UsageError('a command is required: keygen, key-id, inspect, encrypt or decrypt');
  const args: Args = { command, keyFiles: [], input: null, output: null };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] as string;
    const value = rest[i + 1];
    if ((a === '--key-file' || a === '--in' || a === '--out') && (value === undefined || value === ''))
      throw new UsageError(`${a} needs a value`);
    if (a === '--key-file') args.keyFiles.push(value as string);
    else if (a === '--in') args.input = value as string;
    else if (a === '--out') args.output = value as string;
    else throw new UsageError(`unknown argument ${JSON.stringify(a)}`);
    i++;
  }
  const needsKey = command === 'key-id' || command === 'encrypt' || command === 'decrypt';
  if (needsKey && args.keyFiles.length === 0) throw new UsageError(`${command} needs --key-file`);
  if (!needsKey && args.keyFiles.length > 0) throw new UsageError(`${command} takes no --key-file`);
  if ((command === 'encrypt' || command === 'key-id') && args.keyFiles.length > 1)
    throw new UsageError(`${command} takes exactly one --key-file`);
  if (command === 'keygen' && !args.output) throw new UsageError('keygen needs --out');
  if (command === 'inspect' && !args.input) throw new UsageError('inspect needs --in');
  return args;
}

function loadKeys(files: string[]): Buffer[] {
  const warnings: string[] = [];
  const keys = files.map((f) => readKeyFile(f, warnings));
  for (const w of warnings) process.stderr.write(`backup-crypt: warning: ${w}\n`);
  return keys;
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
    fs.renameSync(partial, output);
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
      throw new UsageError('unknown command');
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`backup-crypt: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
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
