/**
 * Start-up database steps shared by the server and the operator CLIs:
 *   - outside production, pending migrations are applied with the owner login (zero
 *     configuration in development); in production the server never migrates;
 *   - on a connection of the runtime login: the schema must be current (else the server
 *     refuses to start, naming `npm run migrate`) and the login must be a runtime login
 *     (not superuser, no BYPASSRLS/CREATEROLE, owns nothing, no role beyond fleet_app).
 *     That is enforced in production and whenever a separate owner login exists (two logins
 *     configured, or the embedded cluster); with one development login it is a warning.
 */
import pg from 'pg';
import type { Config } from '../config';
import type { Logger } from '../lib/logger';
import { checkRuntimeDatabase, type StartupCheck } from './logins';
import { runMigrations } from './migrate';
import { connectClient, pgSsl } from './pool';

class StartupRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupRefused';
  }
}

export interface DatabaseUrls {
  url: string;
  ownerUrl: string | null;
  embedded?: unknown;
}

async function checkRuntimeLogin(config: Config, url: string): Promise<StartupCheck> {
  const client = new pg.Client({
    connectionString: url,
    ssl: pgSsl(config.database.ssl, config.database.caFile),
    application_name: 'fleet-security-startup-check',
    connectionTimeoutMillis: config.database.poolTimeoutMs,
  });
  client.on('error', () => undefined);
  await connectClient(client);
  try {
    return await checkRuntimeDatabase(client, { appRole: config.database.appRole });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * `quiet`: the operator CLIs, which print their own results on stderr/stdout, skip the
 * development warning about a single privileged login (refusals still apply).
 */
export async function prepareDatabase(
  config: Config,
  db: DatabaseUrls,
  logger: Logger,
  opts: { quiet?: boolean } = {},
): Promise<StartupCheck> {
  if (!config.isProduction && db.ownerUrl) {
    const migrated = await runMigrations(db.ownerUrl, {
      logger,
      ssl: pgSsl(config.database.ownerSsl, config.database.ownerCaFile),
      connectTimeoutMs: config.database.poolTimeoutMs,
    });
    logger.info('migrations', { applied: migrated.applied.length, alreadyApplied: migrated.alreadyApplied });
  }
  const check = await checkRuntimeLogin(config, db.url);
  if (check.schemaProblem) throw new StartupRefused(check.schemaProblem);
  if (check.schema.unknown.length > 0)
    logger.warn('database has migrations this build does not know (a newer version ran?)', {
      ids: check.schema.unknown,
    });
  if (check.loginProblems.length > 0) {
    const strict = config.isProduction || (db.ownerUrl !== null && db.ownerUrl !== db.url);
    const message = `${check.loginProblems.join('; ')}. The API must run as a runtime login that is a member of fleet_app and nothing else; create one with \`npm run db:app-login -- --name <login>\` (docs/OPERATIONS.md, "Database logins")`;
    if (strict) throw new StartupRefused(`refusing to start: ${message}`);
    if (!opts.quiet)
      logger.warn('the database login is not least-privileged (allowed outside production with a single login)', {
        problems: check.loginProblems,
      });
  }
  return check;
}
