/** The backup encryption format (server/src/ops/backup-crypt.ts) and its CLI, with real crypto. */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BackupCryptError,
  HEADER_LEN,
  MIN_CHUNK_SIZE,
  TAG_LEN,
  createDecryptStream,
  createEncryptStream,
  keyId,
  parseKey,
  readKeyFile,
} from '../../src/ops/backup-crypt';
import { ROOT, run, tmpDir } from './helpers';

const CHUNK = MIN_CHUNK_SIZE; // small chunks: many of them in little data

function pieces(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

async function through(input: Buffer, transform: NodeJS.ReadWriteStream, pieceSize = 777): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(
    Readable.from(pieces(input, pieceSize)),
    transform,
    new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(chunks);
}

const encrypt = (key: Buffer, plain: Buffer, pieceSize?: number) =>
  through(plain, createEncryptStream(key, { chunkSize: CHUNK }), pieceSize);
const decrypt = (keys: Buffer[], sealed: Buffer, pieceSize?: number) =>
  through(sealed, createDecryptStream(keys), pieceSize);

async function failure(p: Promise<unknown>): Promise<BackupCryptError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BackupCryptError);
    return err as BackupCryptError;
  }
  throw new Error('expected a BackupCryptError');
}

describe('backup encryption format', () => {
  const key = randomBytes(32);

  test.each([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 50_000])(
    'when %i bytes are encrypted and decrypted, then they come back identical',
    async (size) => {
      const plain = randomBytes(size);
      const sealed = await encrypt(key, plain);
      // Every chunk but the last is full; the last holds 1..CHUNK bytes (0 only for empty input).
      const chunks = Math.max(1, Math.ceil(size / CHUNK));
      expect(sealed.length).toBe(HEADER_LEN + size + chunks * TAG_LEN);
      expect(sealed.subarray(0, 8).toString('ascii')).toBe('FLEETBK1');
      expect(sealed.subarray(12, 28)).toEqual(keyId(key));
      expect(await decrypt([key], sealed, 1000)).toEqual(plain);
      // Fed in odd-sized pieces (byte by byte for the small ones): chunk boundaries do not matter.
      expect(await decrypt([key], sealed, size <= 4 * CHUNK ? 1 : 333)).toEqual(plain);
    },
  );

  test('when the same data is encrypted twice, then the files differ (fresh salt, per-file key)', async () => {
    const plain = Buffer.from('same plaintext');
    const a = await encrypt(key, plain);
    const b = await encrypt(key, plain);
    expect(a.equals(b)).toBe(false);
    expect(a.subarray(28, 60).equals(b.subarray(28, 60))).toBe(false);
  });

  test('when any single byte of the file is changed, then decryption fails and never returns data', async () => {
    const plain = randomBytes(2 * CHUNK + 100);
    const sealed = await encrypt(key, plain);
    const positions = [
      0,
      7,
      8,
      11,
      12,
      27,
      28,
      59,
      HEADER_LEN,
      HEADER_LEN + CHUNK - 1,
      HEADER_LEN + CHUNK + 3,
      HEADER_LEN + CHUNK + TAG_LEN,
      sealed.length - 1,
    ];
    for (const pos of positions) {
      const bad = Buffer.from(sealed);
      bad[pos] ^= 0x01;
      const err = await failure(decrypt([key], bad));
      const expected = pos < 8 ? 'NOT_A_BACKUP' : pos >= 12 && pos < 28 ? 'WRONG_KEY' : 'CORRUPT';
      expect({ pos, code: err.code }).toEqual({ pos, code: expected });
    }
  });

  test('when chunks are dropped, reordered or bytes appended, then decryption fails', async () => {
    const sealed = await encrypt(key, randomBytes(3 * CHUNK + 10));
    const c = CHUNK + TAG_LEN;
    const header = sealed.subarray(0, HEADER_LEN);
    const chunk = (i: number) => sealed.subarray(HEADER_LEN + i * c, HEADER_LEN + (i + 1) * c);
    const last = sealed.subarray(HEADER_LEN + 3 * c);
    const variants = {
      'last chunk dropped': Buffer.concat([header, chunk(0), chunk(1), chunk(2)]),
      'middle chunk dropped': Buffer.concat([header, chunk(0), chunk(2), last]),
      'two chunks swapped': Buffer.concat([header, chunk(1), chunk(0), chunk(2), last]),
      'a byte appended': Buffer.concat([sealed, Buffer.from([0])]),
      'a chunk repeated at the end': Buffer.concat([sealed, chunk(0)]),
      'only the header': Buffer.from(header),
      'header cut short': sealed.subarray(0, 30),
      'empty file': Buffer.alloc(0),
    };
    for (const [name, bad] of Object.entries(variants)) {
      const err = await failure(decrypt([key], bad));
      expect({ name, code: err.code }).toEqual({
        name,
        code: name.startsWith('header cut') || name === 'empty file' ? 'NOT_A_BACKUP' : 'CORRUPT',
      });
    }
  });

  test('when decrypted with another key, then it fails as WRONG_KEY; among several keys the right one is used', async () => {
    const plain = randomBytes(5000);
    const sealed = await encrypt(key, plain);
    const other = randomBytes(32);
    const err = await failure(decrypt([other], sealed));
    expect(err.code).toBe('WRONG_KEY');
    expect(err.message).toContain(keyId(key).toString('hex'));
    expect(await decrypt([other, key], sealed)).toEqual(plain);
  });

  test('when a key file is parsed, then only base64 of exactly 32 random bytes is accepted', () => {
    const good = randomBytes(32).toString('base64');
    expect(parseKey(`${good}\n`)).toEqual(Buffer.from(good, 'base64'));
    for (const bad of [
      '',
      'not base64 at all',
      randomBytes(31).toString('base64'),
      randomBytes(33).toString('base64'),
      Buffer.alloc(32, 7).toString('base64'),
      `${good}${good}`,
    ]) {
      expect(() => parseKey(bad)).toThrow(BackupCryptError);
    }
  });

  test('when a key file is readable by others, then a warning says so; a missing file fails clearly', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'k');
    fs.writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    const warnings: string[] = [];
    readKeyFile(file, warnings);
    expect(warnings.join()).toContain('chmod 600');
    fs.chmodSync(file, 0o600);
    const none: string[] = [];
    readKeyFile(file, none);
    expect(none).toEqual([]);
    expect(() => readKeyFile(path.join(dir, 'missing'))).toThrow('cannot be read');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('backup-crypt CLI', () => {
  const tsx = path.join(ROOT, 'node_modules/.bin/tsx');
  const cli = path.join(ROOT, 'server/src/cli/backup-crypt.ts');
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' };

  test('when keygen writes a key, then the file is 0600, prints its id and is never overwritten', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'backup.key');
    const r = await run(tsx, [cli, 'keygen', '--out', file], env);
    expect(r.code).toBe(0);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(r.stdout.trim()).toBe(keyId(parseKey(fs.readFileSync(file))).toString('hex'));
    const before = fs.readFileSync(file, 'utf8');
    const again = await run(tsx, [cli, 'keygen', '--out', file], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('refusing to overwrite');
    expect(fs.readFileSync(file, 'utf8')).toBe(before);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('when decrypting a tampered file to --out, then it exits 3 and leaves no output file behind', async () => {
    const dir = tmpDir();
    const keyFile = path.join(dir, 'k');
    fs.writeFileSync(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
    const sealed = await encrypt(parseKey(fs.readFileSync(keyFile)), randomBytes(10_000));
    sealed[sealed.length - 5] ^= 1;
    fs.writeFileSync(path.join(dir, 'in.enc'), sealed);
    const out = path.join(dir, 'out.dump');
    const r = await run(
      tsx,
      [cli, 'decrypt', '--key-file', keyFile, '--in', path.join(dir, 'in.enc'), '--out', out],
      env,
    );
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('authentication failed');
    expect(fs.readdirSync(dir).sort()).toEqual(['in.enc', 'k']);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('when --out names an existing file (the input itself, or another backup), then encrypt and decrypt exit 2 and leave it untouched; a new name works', async () => {
    const dir = tmpDir();
    const keyFile = path.join(dir, 'k');
    fs.writeFileSync(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
    const sealed = await encrypt(parseKey(fs.readFileSync(keyFile)), Buffer.from('PGDMP plaintext dump'));
    const enc = path.join(dir, 'b.enc');
    fs.writeFileSync(enc, sealed);
    const other = path.join(dir, 'older.dump');
    fs.writeFileSync(other, 'an older dump');
    for (const [command, out] of [
      ['decrypt', enc],
      ['decrypt', other],
      ['encrypt', enc],
    ] as const) {
      const r = await run(tsx, [cli, command, '--key-file', keyFile, '--in', enc, '--out', out], env);
      expect({ command, out, code: r.code }).toEqual({ command, out, code: 2 });
      expect(r.stderr).toContain('never replaces a file');
    }
    expect(fs.readFileSync(enc)).toEqual(sealed);
    expect(fs.readFileSync(other, 'utf8')).toBe('an older dump');
    const fresh = path.join(dir, 'b.dump');
    const ok = await run(tsx, [cli, 'decrypt', '--key-file', keyFile, '--in', enc, '--out', fresh], env);
    expect(ok.code).toBe(0);
    expect(fs.readFileSync(fresh, 'utf8')).toBe('PGDMP plaintext dump');
    expect(fs.readdirSync(dir).sort()).toEqual(['b.dump', 'b.enc', 'k', 'older.dump']);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('when given no command, an unknown option or a key on the command line, then it exits 2', async () => {
    for (const args of [[], ['encrypt'], ['encrypt', '--key', 'c2VjcmV0'], ['frobnicate'], ['key-id', '--key-file']]) {
      const r = await run(tsx, [cli, ...args], env);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toContain('usage:');
    }
  });
});
