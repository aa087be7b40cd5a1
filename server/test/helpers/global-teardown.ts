import fs from 'node:fs';
import pg from 'pg';

export default async function globalTeardown(): Promise<void> {
  const state = (
    globalThis as {
      __FLEET_TEST_DB__?: {
        embedded?: { stop(): Promise<void> };
        tmpDir?: string;
        adminUrl: string;
        dbName: string;
        appLogin?: string;
      };
    }
  ).__FLEET_TEST_DB__;
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
    // Roles are cluster-wide; the runtime login owned nothing and its grants went with the database.
    if (state.appLogin) await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(state.appLogin)}`);
  } finally {
    await admin.end();
  }
}
