import fs from 'node:fs';
import pg from 'pg';

export default async function globalTeardown(): Promise<void> {
  const state = (globalThis as { __FLEET_TEST_DB__?: { embedded?: { stop(): Promise<void> }; tmpDir?: string; adminUrl: string; dbName: string } }).__FLEET_TEST_DB__;
  if (!state) return;
  if (state.embedded) {
    await state.embedded.stop();
    if (state.tmpDir) fs.rmSync(state.tmpDir, { recursive: true, force: true });
    return;
  }
  const admin = new pg.Client({ connectionString: state.adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(state.dbName)} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}
