/**
 * Small things a newcomer meets on the first day: archive:verify --json reports every error as
 * JSON, the rotation 409 names the development secrets file when the key lives there, and the
 * operations scripts print paths without `/./`.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config';
import { loadOrCreateDevSecrets } from '../src/dev-secrets';
import { environmentKeyProvider, RotationNotSupportedError } from '../src/services/encryption';

const ROOT = path.resolve(__dirname, '../..');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');

function run(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  cwd = ROOT,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { cwd, env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir(), ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

describe('npm run archive:verify -- --json', () => {
  const cli = (args: string[], env: Record<string, string>) =>
    run(TSX, ['server/src/cli/archive-verify.ts', ...args], env);

  test('when the configuration is invalid, then stdout is one JSON document listing the issues by variable (no value), exit 2', async () => {
    const r = await cli(['--json'], { NODE_ENV: 'production', JWT_SECRET: 'hunter2-hunter2' });
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout) as {
      valid: boolean;
      error: { kind: string; message: string; issues: { level: string; variable: string; message: string }[] };
    };
    expect(doc).toMatchObject({
      valid: false,
      error: { kind: 'config', message: expect.stringMatching(/configuration invalid: \d+ error\(s\)/) },
    });
    expect(doc.error.issues).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ level: 'error', variable: 'DATABASE_URL' }),
        expect.objectContaining({ level: 'error', variable: 'JWT_SECRET' }),
      ]),
    );
    expect(r.stdout).not.toContain('hunter2');
  });

  test('when no archive is configured or an argument is wrong, then the error is JSON too; without --json it stays text', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-newcomer-'));
    try {
      const none = await cli(['--json'], { FLEET_DATA_DIR: dataDir, DATABASE_URL: 'postgres://a@127.0.0.1:1/x' });
      expect(none.code).toBe(2);
      expect(JSON.parse(none.stdout)).toEqual({
        valid: false,
        error: {
          kind: 'config',
          message: 'no archive configured (AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_URL)',
        },
      });
      const usage = await cli(['--json', '--tenant'], { FLEET_DATA_DIR: dataDir });
      expect(usage.code).toBe(2);
      expect(JSON.parse(usage.stdout)).toEqual({
        valid: false,
        error: { kind: 'usage', message: '--tenant needs a value' },
      });
      const text = await cli(['--tenant'], { FLEET_DATA_DIR: dataDir });
      expect(text.code).toBe(2);
      expect(text.stdout).toBe('');
      expect(text.stderr).toContain('archive:verify: --tenant needs a value');
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('key rotation with the development key', () => {
  test('when the master key is the generated development key, then the rotation refusal names .data/dev-secrets.json, not FLEET_ENCRYPTION_KEY as if it were set', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-newcomer-'));
    try {
      const dev = loadOrCreateDevSecrets(dataDir);
      const { config } = loadConfig({ FLEET_DATA_DIR: dataDir }, { devSecrets: dev.secrets });
      expect(config?.keys.fallbackKeyFile).toBe(path.join(dataDir, 'dev-secrets.json'));
      const p = environmentKeyProvider({
        currentKey: config?.keys.fallbackKey ?? null,
        devSecretsFile: config?.keys.fallbackKeyFile ?? null,
      });
      const err = await (p.rotate as () => Promise<unknown>)().catch((e: Error) => e);
      expect(err).toBeInstanceOf(RotationNotSupportedError);
      expect((err as Error).message).toContain(
        `generated development key in ${path.join(dataDir, 'dev-secrets.json')} (no FLEET_ENCRYPTION_KEY is set)`,
      );

      const { config: explicit } = loadConfig(
        { FLEET_DATA_DIR: dataDir, FLEET_ENCRYPTION_KEY: dev.secrets.FLEET_ENCRYPTION_KEY as string },
        { devSecrets: dev.secrets },
      );
      expect(explicit?.keys.fallbackKeyFile).toBeNull();
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('operations scripts', () => {
  test('when a relative path like ./backups is made absolute, then it prints without /./', async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-abspath-'));
    try {
      const r = await run(
        '/bin/bash',
        [
          '-c',
          `source "${ROOT}/scripts/lib/common.sh"; fleet_abspath ./backups; echo; fleet_abspath ./a/./b/.; echo; fleet_abspath /x/./y`,
        ],
        {},
        cwd,
      );
      expect(r.stdout.split('\n')).toEqual([`${cwd}/backups`, `${cwd}/a/b`, '/x/y']);
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });
});
