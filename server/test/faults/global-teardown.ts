/** Fault suite globalTeardown: the cluster is stopped by the suite; its directory goes (unless FAULTS_KEEP is set). */
import fs from 'node:fs';

export default async function globalTeardown(): Promise<void> {
  const dir = process.env.FAULTS_BASE_DIR;
  if (dir && !process.env.FAULTS_KEEP) fs.rmSync(dir, { recursive: true, force: true });
}
