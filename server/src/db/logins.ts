/**
 * The two database logins (CONTRACT §7):
 *   - the owner (MIGRATION_DATABASE_URL): owns the schema, runs migrations and the operator
 *     commands that need it; the API never holds it in production;
 *   - the runtime login (DATABASE_URL): a member of fleet_app and of nothing else.
 *
 * This module checks, from the catalog, that a connection really is such a runtime login and
 * that the schema is current, and creates runtime logins (db:app-login, the embedded cluster).
 */
import pg from 'pg';
import { readMigrations, type MigrationFile } from './migrate';
import { withTransaction } from './transaction';

const APP_ROLE = 'fleet_app';
/** The runtime login the embedded development cluster creates for `npm start`. */
export const EMBEDDED_RUNTIME_LOGIN = 'fleet_runtime';

/** PostgreSQL role names this tool creates: plain identifiers, no quoting surprises. */
export const LOGIN_NAME_RE = /^[a-z_][a-z0-9_]{0,62}$/;

export interface LoginFacts {
  login: string;
  superuser: boolean;
  bypassRls: boolean;
  createRole: boolean;
  ownedRelations: number;
  ownedSchemas: number;
  /** Roles this login may become or inherits from, other than itself and fleet_app. */
  otherRoles: string[];
  memberOfAppRole: boolean;
}

/** What the catalog says about the session's login (session_user, not a SET ROLE). */
async function loginFacts(client: pg.ClientBase, appRole: string = APP_ROLE): Promise<LoginFacts> {
  const { rows } = await client.query<{
    login: string;
    superuser: boolean;
    bypass_rls: boolean;
    create_role: boolean;
    owned_relations: string;
    owned_schemas: string;
    other_roles: string[] | null;
    member_of_app: boolean;
  }>(
    `SELECT r.rolname AS login, r.rolsuper AS superuser, r.rolbypassrls AS bypass_rls, r.rolcreaterole AS create_role,
            (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid) AS owned_relations,
            (SELECT count(*) FROM pg_namespace n WHERE n.nspowner = r.oid) AS owned_schemas,
            (SELECT array_agg(o.rolname::text ORDER BY o.rolname) FROM pg_roles o
              WHERE o.oid <> r.oid AND o.rolname <> $1 AND pg_has_role(r.oid, o.oid, 'MEMBER')) AS other_roles,
            coalesce((SELECT pg_has_role(r.oid, a.oid, 'MEMBER') FROM pg_roles a WHERE a.rolname = $1), false) AS member_of_app
       FROM pg_roles r WHERE r.rolname = session_user`,
    [appRole],
  );
  const r = rows[0];
  if (!r) throw new Error('the session user is not in pg_roles');
  return {
    login: r.login,
    superuser: r.superuser,
    bypassRls: r.bypass_rls,
    createRole: r.create_role,
    ownedRelations: Number(r.owned_relations),
    ownedSchemas: Number(r.owned_schemas),
    otherRoles: r.other_roles ?? [],
    memberOfAppRole: r.member_of_app,
  };
}

/** Why this login must not run the API (empty: it is a least-privileged runtime login). */
function loginProblems(f: LoginFacts, appRole: string | null = APP_ROLE): string[] {
  const out: string[] = [];
  if (f.superuser) out.push(`the database login "${f.login}" is a superuser`);
  if (f.bypassRls) out.push(`the database login "${f.login}" has BYPASSRLS`);
  if (f.createRole) out.push(`the database login "${f.login}" has CREATEROLE (it could grant itself any role)`);
  if (f.ownedRelations > 0)
    out.push(`the database login "${f.login}" owns ${f.ownedRelations} table(s) or other relation(s)`);
  if (f.ownedSchemas > 0) out.push(`the database login "${f.login}" owns ${f.ownedSchemas} schema(s)`);
  // A superuser is "member" of every role; listing them all says nothing more.
  if (!f.superuser && f.otherRoles.length > 0) {
    const shown =
      f.otherRoles.slice(0, 5).join(', ') + (f.otherRoles.length > 5 ? `, … (${f.otherRoles.length} in all)` : '');
    out.push(`the database login "${f.login}" can SET ROLE to roles beyond ${APP_ROLE}: ${shown}`);
  }
  if (appRole && !f.superuser && !f.memberOfAppRole)
    out.push(`the database login "${f.login}" is not a member of ${appRole}`);
  return out;
}

export interface SchemaStatus {
  /** Migrations of this build the database has not applied. */
  missing: string[];
  /** Migrations the database has that this build does not know (a newer version ran). */
  unknown: string[];
  /** schema_migrations could not be read (never migrated, or too old to grant it to fleet_app). */
  unreadable: string | null;
}

async function schemaStatus(
  client: pg.ClientBase,
  migrations: MigrationFile[] = readMigrations(),
): Promise<SchemaStatus> {
  let applied: Set<string>;
  try {
    const { rows } = await client.query<{ id: string }>('SELECT id FROM schema_migrations');
    applied = new Set(rows.map((r) => r.id));
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === '42P01' || code === '42501')
      return { missing: migrations.map((m) => m.id), unknown: [], unreadable: (err as Error).message };
    throw err;
  }
  const known = new Set(migrations.map((m) => m.id));
  return {
    missing: migrations.filter((m) => !applied.has(m.id)).map((m) => m.id),
    unknown: [...applied].filter((id) => !known.has(id)).sort(),
    unreadable: null,
  };
}

function schemaBehindMessage(s: SchemaStatus): string | null {
  if (s.missing.length === 0) return null;
  const what = s.unreadable
    ? `the schema is not migrated or predates this version (${s.unreadable})`
    : `the database schema is behind: ${s.missing.length} migration(s) pending (${s.missing.slice(0, 3).join(', ')}${s.missing.length > 3 ? ', …' : ''})`;
  return `${what}; run \`npm run migrate\` with the owner login (MIGRATION_DATABASE_URL) first — the server never migrates in production`;
}

export interface StartupCheck {
  login: LoginFacts;
  loginProblems: string[];
  schema: SchemaStatus;
  schemaProblem: string | null;
}

/** Both checks, on one connection of the runtime login. */
export async function checkRuntimeDatabase(
  client: pg.ClientBase,
  opts: { appRole?: string | null; migrations?: MigrationFile[] } = {},
): Promise<StartupCheck> {
  const appRole = opts.appRole === undefined ? APP_ROLE : opts.appRole;
  const login = await loginFacts(client, appRole ?? APP_ROLE);
  const schema = await schemaStatus(client, opts.migrations);
  return { login, loginProblems: loginProblems(login, appRole), schema, schemaProblem: schemaBehindMessage(schema) };
}

/**
 * SQL creating (or, for an existing login, re-passwording and re-checking) a runtime login:
 * LOGIN, no superuser/CREATEDB/CREATEROLE/BYPASSRLS/REPLICATION, member of fleet_app only,
 * CONNECT on the database. Identifiers and the password are quoted by the driver's escapers.
 */
export function runtimeLoginSql(name: string, password: string, database: string): string[] {
  if (!LOGIN_NAME_RE.test(name))
    throw new Error('the login name must be 1-63 of a-z, 0-9 and _, not starting with a digit');
  if (name === APP_ROLE) throw new Error(`the login name must not be ${APP_ROLE} itself`);
  const id = pg.escapeIdentifier(name);
  const attrs = 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION INHERIT';
  return [
    `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${pg.escapeLiteral(name)}) THEN CREATE ROLE ${id} ${attrs}; END IF; END $$`,
    `ALTER ROLE ${id} ${attrs} PASSWORD ${pg.escapeLiteral(password)}`,
    `GRANT ${pg.escapeIdentifier(APP_ROLE)} TO ${id}`,
    `GRANT CONNECT ON DATABASE ${pg.escapeIdentifier(database)} TO ${id}`,
  ];
}

/**
 * Creates or updates a runtime login as the owner (or a superuser). Refuses when the login
 * already exists with memberships beyond fleet_app or owns objects: it would not be a
 * runtime login, and this tool does not take privileges away silently.
 */
export async function createRuntimeLogin(owner: pg.ClientBase, name: string, password: string): Promise<void> {
  const db = (await owner.query<{ d: string }>('SELECT current_database() AS d')).rows[0]?.d as string;
  const statements = runtimeLoginSql(name, password, db);
  const existing = await owner.query<{ other: string[] | null; owns: string }>(
    `SELECT (SELECT array_agg(o.rolname::text) FROM pg_roles o WHERE o.oid <> r.oid AND o.rolname <> $2 AND pg_has_role(r.oid, o.oid, 'MEMBER')) AS other,
            (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid) AS owns
       FROM pg_roles r WHERE r.rolname = $1`,
    [name, APP_ROLE],
  );
  const e = existing.rows[0];
  if (e && ((e.other ?? []).length > 0 || Number(e.owns) > 0)) {
    throw new Error(
      `the role "${name}" already exists and is more than a runtime login (member of other roles or owns objects); choose another name`,
    );
  }
  await withTransaction(owner, async (c) => {
    for (const sql of statements) await c.query(sql);
  });
}
