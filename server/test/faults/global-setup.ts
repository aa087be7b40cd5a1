/** Fault suite globalSetup: a fresh PostgreSQL cluster in a temporary directory (initialised, stopped). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initDatabase } from './cluster';

export default async function globalSetup(): Promise<void> {
  const baseDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-faults-'));
  fs.chmodSync(baseDir, 0o755);
  process.env.FAULTS_BASE_DIR = baseDir;
  process.env.FAULTS_DB = JSON.stringify(await initDatabase(baseDir));
}
