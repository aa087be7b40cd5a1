import { runMigrations } from '../db/migrate';
import { pgSsl } from '../db/pool';
import { noOptions } from './args';
import { cliConfig, cliLogger, withDatabase } from './boot';

noOptions(
  'Usage: npm run migrate\n\nApplies pending SQL migrations from migrations/ as the schema owner (MIGRATION_DATABASE_URL;\noutside production DATABASE_URL when only one is given). Takes no options.',
);

async function main(): Promise<void> {
  // Only the database settings matter here (a migration job may have nothing else).
  const config = cliConfig({ scope: 'database' });
  const logger = cliLogger(config, { level: config.log.level });
  await withDatabase(config, logger, async (db) => {
    // The owner login: MIGRATION_DATABASE_URL (outside production DATABASE_URL when only one is given).
    if (!db.ownerUrl)
      throw new Error(
        'MIGRATION_DATABASE_URL is required in production: migrations run as the schema owner, never as the runtime login of DATABASE_URL (docs/OPERATIONS.md, "Database logins")',
      );
    const r = await runMigrations(db.ownerUrl, {
      logger,
      ssl: pgSsl(config.database.ownerSsl, config.database.ownerCaFile),
      connectTimeoutMs: config.database.poolTimeoutMs,
    });
    process.stdout.write(
      `migrations: ${r.applied.length} applied${r.applied.length ? ` (${r.applied.join(', ')})` : ''}, ${r.alreadyApplied} already applied\n`,
    );
  });
}

main().catch((err: Error) => {
  process.stderr.write(`migrate failed: ${err.message}\n`);
  process.exit(1);
});
