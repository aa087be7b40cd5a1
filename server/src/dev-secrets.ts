/**
 * Development secrets: generated once, persisted under the data directory with mode 0600,
 * and used only when NODE_ENV is not production and the variable is not set.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const DEV_SECRETS_FILE = 'dev-secrets.json';

export interface DevSecrets {
  JWT_SECRET: string;
  FLEET_ENCRYPTION_KEY: string;
  EMBEDDED_PG_PASSWORD: string;
  [k: string]: string;
}

/** Creates the data directory: traversable (0755) so an embedded PostgreSQL running as another user can reach its own subfolder. */
export function ensureDataDir(dataDir: string): void {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o755 });
}

export function loadOrCreateDevSecrets(dataDir: string): { secrets: DevSecrets; created: boolean; file: string } {
  ensureDataDir(dataDir);
  const file = path.join(dataDir, DEV_SECRETS_FILE);
  let existing: Partial<DevSecrets> = {};
  if (fs.existsSync(file)) {
    existing = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<DevSecrets>;
    fs.chmodSync(file, 0o600);
  }
  const secrets: DevSecrets = {
    ...existing,
    JWT_SECRET: existing.JWT_SECRET ?? randomBytes(48).toString('base64'),
    FLEET_ENCRYPTION_KEY: existing.FLEET_ENCRYPTION_KEY ?? randomBytes(32).toString('base64'),
    EMBEDDED_PG_PASSWORD: existing.EMBEDDED_PG_PASSWORD ?? randomBytes(24).toString('base64url'),
  };
  const created = Object.keys(secrets).some((k) => existing[k] === undefined);
  if (created) {
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(secrets, null, 2) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, file);
  }
  return { secrets, created, file };
}
