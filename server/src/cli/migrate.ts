import { runMigrations } from '../db/migrate';
import { pgSsl } from '../db/pool';
import { createLogger } from '../lib/logger';
import { loadRuntimeConfig, openDatabase, requireConfig } from '../runtime';

async function main(): Promise<void> {
  // Only the database settings matter here (a migration job may have nothing else).
  const config = requireConfig(loadRuntimeConfig(undefined, { scope: 'database' }));
  const logger = createLogger({ level: config.log.level });
  const db = await openDatabase(config, logger);
  try {
    // The owner login: MIGRATION_DATABASE_URL (outside production DATABASE_URL when only one is given).
    if (!db.ownerUrl)
      throw new Error(
        'MIGRATION_DATABASE_URL is required in production: migrations run as the schema owner, never as the runtime login of DATABASE_URL (docs/OPERATIONS.md, "Database logins")',
      );
    const r = await runMigrations(db.ownerUrl, {
      logger,
      ssl: pgSsl(config.database.ownerSsl, config.database.ownerCaFile),
    });
    process.stdout.write(
      `migrations: ${r.applied.length} applied${r.applied.length ? ` (${r.applied.join(', ')})` : ''}, ${r.alreadyApplied} already applied\n`,
    );
  } finally {
    await db.close();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`migrate failed: ${err.message}\n`);
  process.exit(1);
});
