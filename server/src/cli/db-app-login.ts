/**
 * npm run db:app-login -- --name N [--print-sql] [--database D]
 *
 * Creates the API's runtime database login (CONTRACT §7): LOGIN, no superuser, CREATEDB,
 * CREATEROLE, BYPASSRLS or REPLICATION, a member of fleet_app and of nothing else, CONNECT on
 * the database. Run with the owner login (MIGRATION_DATABASE_URL, or DATABASE_URL outside
 * production when only one is given) after `npm run migrate`. A new random password is set
 * and printed once (running it again for the same name rotates the password).
 *
 * --print-sql prints the same statements (with a fresh password) for a DBA to run, without
 * connecting. Exit 0 done, 1 failed, 2 bad arguments or configuration.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createRuntimeLogin, LOGIN_NAME_RE, runtimeLoginSql } from '../db/logins';
import { connectClient, pgSsl } from '../db/pool';
import { loadRuntimeConfig } from '../runtime';
import { parseOptions, runCli, usageError } from './args';
import { cliConfig, cliLogger, withDatabase } from './boot';

const USAGE = `Usage: npm run db:app-login -- --name LOGIN [--print-sql] [--database NAME]

Creates (or re-passwords) the API's runtime database login: a member of fleet_app only.
Uses the owner login (MIGRATION_DATABASE_URL; outside production DATABASE_URL when only one
is given). The password is printed once; put the URL it prints into the API's DATABASE_URL.

  --name LOGIN     1-63 characters of a-z, 0-9 and _ (not starting with a digit)
  --print-sql      print the SQL for a DBA instead of connecting (fresh password inside)
  --database NAME  the database to grant CONNECT on (default: the configured one)`;

function withLogin(url: string, name: string, password: string): string {
  const u = new URL(url);
  u.username = name;
  u.password = encodeURIComponent(password);
  return u.toString();
}

runCli('db:app-login', async () => {
  let values;
  try {
    values = parseOptions({
      name: { type: 'string' },
      'print-sql': { type: 'boolean' },
      database: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    });
  } catch (err) {
    usageError(USAGE, (err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const name = values.name;
  if (!name) usageError(USAGE, 'db:app-login needs --name');
  if (!LOGIN_NAME_RE.test(name) || name === 'fleet_app')
    usageError(USAGE, '--name must be 1-63 characters of a-z, 0-9 and _, not starting with a digit, and not fleet_app');
  if (values.database !== undefined && !/^[A-Za-z0-9_.-]{1,63}$/.test(values.database))
    usageError(USAGE, '--database must be 1-63 characters of letters, digits, _, . and -');
  const password = randomBytes(24).toString('base64url');

  if (values['print-sql']) {
    let database = values.database;
    if (!database) {
      const loaded = loadRuntimeConfig(undefined, { scope: 'database' });
      const url = loaded.config?.database.ownerUrl ?? loaded.config?.database.url;
      database = url ? decodeURIComponent(new URL(url).pathname.slice(1)) : undefined;
    }
    if (!database) usageError(USAGE, 'no database configured: give --database NAME');
    const sql = runtimeLoginSql(name, password, database);
    process.stdout.write(
      [
        `-- Runtime login "${name}" for the Fleet Security API (member of fleet_app only).`,
        '-- Run as the schema owner or a superuser, after `npm run migrate`. The password below is shown once.',
        '\\set ON_ERROR_STOP on',
        'BEGIN;',
        ...sql.map((s) => `${s};`),
        'COMMIT;',
        '',
      ].join('\n'),
    );
    return;
  }

  const config = cliConfig({ scope: 'database', exitCode: 2 });
  await withDatabase(config, cliLogger(config, { level: 'warn' }), async (db) => {
    if (!db.ownerUrl)
      throw new Error(
        'MIGRATION_DATABASE_URL (the schema owner) is required in production; or use --print-sql and hand the SQL to your DBA',
      );
    const ssl =
      config.database.separateOwner || !config.database.url
        ? pgSsl(config.database.ownerSsl, config.database.ownerCaFile)
        : pgSsl(config.database.ssl, config.database.caFile);
    const client = new pg.Client({
      connectionString: db.ownerUrl,
      ssl,
      application_name: 'fleet-security-db-app-login',
      connectionTimeoutMillis: config.database.poolTimeoutMs,
    });
    client.on('error', () => undefined);
    await connectClient(client);
    try {
      if (values.database) {
        const cur = (await client.query<{ d: string }>('SELECT current_database() AS d')).rows[0]?.d;
        if (cur !== values.database)
          throw new Error(
            `--database ${values.database} is not the database the owner login is connected to (${cur}); use --print-sql for another database`,
          );
      }
      const app = (
        await client.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'fleet_app'")
      ).rows[0]?.n;
      if (!app) throw new Error('the role fleet_app does not exist: run `npm run migrate` first');
      try {
        await createRuntimeLogin(client, name, password);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === '42501')
          throw new Error(
            `${(err as Error).message}: the owner login may not create logins or grant fleet_app (it needs CREATEROLE and the ADMIN option on fleet_app); use --print-sql and have a superuser run it`,
            { cause: err },
          );
        throw err;
      }
    } finally {
      await client.end().catch(() => undefined);
    }
    process.stdout.write(
      [
        `runtime login "${name}" is ready: member of fleet_app only.`,
        `password (shown once, not stored anywhere): ${password}`,
        `DATABASE_URL for the API: ${withLogin(db.ownerUrl, name, password)}`,
        '',
      ].join('\n'),
    );
  });
});
