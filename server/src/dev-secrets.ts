/**
 * Development secrets: generated once, persisted under the data directory with mode 0600,
 * and used only when NODE_ENV is not production and the variable is not set.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { generateSigningKey } from './lib/jws-keys';

export const DEV_SECRETS_FILE = 'dev-secrets.json';

export interface DevSecrets {
  JWT_SECRET: string;
  FLEET_ENCRYPTION_KEY: string;
  EMBEDDED_PG_PASSWORD: string;
  /** The embedded cluster's runtime login (member of fleet_app only), see db/logins.ts. */
  EMBEDDED_PG_APP_PASSWORD: string;
  [k: string]: string;
}

/** The data directory or the development secrets file cannot be used; the message names the path, never a secret. */
export class DataDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirError';
  }
}

/**
 * Creates the data directory: traversable (0755) so an embedded PostgreSQL running as another
 * user can reach its own subfolder. One level at a time: Node's recursive mkdir never returns
 * on some paths (under /proc it loops), and a clear error beats a bare ENOTDIR.
 */
function ensureDataDir(dataDir: string): void {
  const missing: string[] = [];
  let p = path.resolve(dataDir);
  for (;;) {
    let st: fs.Stats | null;
    try {
      st = fs.statSync(p);
    } catch {
      st = null;
    }
    if (st) {
      if (!st.isDirectory()) throw new DataDirError(`${p} exists and is not a directory`);
      break;
    }
    missing.unshift(p);
    const parent = path.dirname(p);
    if (parent === p) break;
    p = parent;
  }
  for (const dir of missing) {
    try {
      fs.mkdirSync(dir, { mode: 0o755 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new DataDirError(`cannot create ${dir} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
}

export function loadOrCreateDevSecrets(dataDir: string): { secrets: DevSecrets; created: boolean; file: string } {
  ensureDataDir(dataDir);
  const file = path.join(dataDir, DEV_SECRETS_FILE);
  let existing: Partial<DevSecrets> = {};
  if (fs.existsSync(file)) {
    // A parse error's message (and an uncaught one's report) quotes the file's text: the
    // secrets. Only the path and what to do are reported.
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      throw new DataDirError(`${file} is not valid JSON; delete it and new development secrets are generated`);
    }
    if (
      !parsed ||
      typeof parsed !== 'object' ||
      Array.isArray(parsed) ||
      Object.values(parsed).some((v) => typeof v !== 'string')
    ) {
      throw new DataDirError(
        `${file} must hold a JSON object of text values; delete it and new development secrets are generated`,
      );
    }
    existing = parsed as Partial<DevSecrets>;
    fs.chmodSync(file, 0o600);
  }
  const secrets: DevSecrets = {
    ...existing,
    JWT_SECRET: existing.JWT_SECRET ?? randomBytes(48).toString('base64'),
    FLEET_ENCRYPTION_KEY: existing.FLEET_ENCRYPTION_KEY ?? randomBytes(32).toString('base64'),
    EMBEDDED_PG_PASSWORD: existing.EMBEDDED_PG_PASSWORD ?? randomBytes(24).toString('base64url'),
    // Signs the audit checkpoints (docs/AUDIT.md): Ed25519, PKCS#8 DER in base64.
    AUDIT_CHECKPOINT_SIGNING_KEY:
      existing.AUDIT_CHECKPOINT_SIGNING_KEY ??
      generateKeyPairSync('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
    EMBEDDED_PG_APP_PASSWORD: existing.EMBEDDED_PG_APP_PASSWORD ?? randomBytes(24).toString('base64url'),
    // Access-token signing keys (PKCS#8, base64 DER): one per JWT_SIGNING_ALG.
    JWT_SIGNING_KEY: existing.JWT_SIGNING_KEY ?? generateSigningKey('ES256'),
    JWT_SIGNING_KEY_EDDSA: existing.JWT_SIGNING_KEY_EDDSA ?? generateSigningKey('EdDSA'),
  };
  const created = Object.keys(secrets).some((k) => existing[k] === undefined);
  if (created) {
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(secrets, null, 2) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, file);
  }
  return { secrets, created, file };
}
