import fs from 'node:fs';
import pg from 'pg';
import type { Config } from '../config';
import type { Logger } from '../lib/logger';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
/** Anything that runs a parameterized query: the pool or a transaction's client. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  /** A named statement: parsed and planned once per connection. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(config: {
    name: string;
    text: string;
    values?: unknown[];
  }): Promise<pg.QueryResult<R>>;
}

// Return int8 (bigint ids, counts) as strings is pg's default; keep it (ids exceed 2^53 in theory).
// timestamptz stays a Date.

export interface PoolOptions {
  url: string;
  ssl: Config['database']['ssl'];
  max: number;
  connectionTimeoutMs: number;
  statementTimeoutMs: number;
  idleTimeoutMs: number;
  applicationName: string;
  /** When set, every connection assumes this role (privileges and row-level security apply to it). */
  appRole?: string | null;
  caFile?: string | null;
}

export function poolOptionsFromConfig(config: Config, url: string): PoolOptions {
  return {
    url,
    ssl: config.database.ssl,
    max: config.database.poolSize,
    connectionTimeoutMs: config.database.poolTimeoutMs,
    statementTimeoutMs: config.database.statementTimeoutMs,
    idleTimeoutMs: config.database.idleTimeoutMs,
    applicationName: config.database.applicationName,
    appRole: config.database.appRole,
    caFile: config.database.caFile,
  };
}

/**
 * The driver's TLS option for a DATABASE_SSL mode. Every connection (the pool, the migrations,
 * the CLIs) uses it; the connection string carries no TLS parameters (config takes them out),
 * so nothing can override it.
 */
export function pgSsl(mode: Config['database']['ssl'], caFile?: string | null): pg.ClientConfig['ssl'] {
  if (mode === 'disable') return false;
  if (mode === 'require') return { rejectUnauthorized: false };
  return { rejectUnauthorized: true, ...(caFile ? { ca: fs.readFileSync(caFile, 'utf8') } : {}) };
}

function assertRoleName(role: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(role)) throw new Error('invalid application role name');
  return role;
}

export function createPool(opts: PoolOptions, logger: Logger): Pool {
  const ssl = pgSsl(opts.ssl, opts.caFile);
  const pool = new pg.Pool({
    connectionString: opts.url,
    ssl,
    max: opts.max,
    connectionTimeoutMillis: opts.connectionTimeoutMs,
    idleTimeoutMillis: opts.idleTimeoutMs,
    statement_timeout: opts.statementTimeoutMs,
    // The server cancels a statement after statement_timeout; this is the client's own limit
    // for a server that does not answer at all (stalled, partitioned): the query fails instead
    // of hanging, and the connection is discarded (see withTransaction).
    query_timeout: opts.statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS,
    idle_in_transaction_session_timeout: Math.max(opts.statementTimeoutMs * 2, 10_000),
    application_name: opts.applicationName,
    keepAlive: true,
    // The role is a startup parameter: the server refuses the connection if it cannot be
    // assumed (fail closed), RESET ROLE returns to it, and no extra round trip is spent.
    ...(opts.appRole ? { options: `-c role=${assertRoleName(opts.appRole)}` } : {}),
  });
  // An idle client losing its connection must never crash the process: pg-pool's own listener
  // covers idle clients (and emits 'error' on the pool, logged here). A client that is checked
  // out has no listener of the pool's: one that loses its connection while no query runs on it
  // (a transaction between statements, the archive's lock holder) would emit an unhandled
  // 'error' and end the process. Every client gets its own listener at connect: the loss is
  // logged once, and the pool discards the client when it is released (it is no longer
  // queryable; its next query fails with a connection error that callers answer with 503).
  pool.on('connect', (client) => onConnectionLoss(client, logger, 'pool'));
  pool.on('error', (err) => logger.warn('database pool: idle connection lost', { err: errSummary(err) }));
  return pool;
}

function errSummary(err: Error): { message: string; code?: string } {
  return { message: err.message, code: (err as { code?: string }).code };
}

/**
 * Attaches the 'error' listener every dedicated or checked-out client needs: a lost connection
 * (server restart, pg_terminate_backend, network) is logged once, never fatal. The client is
 * unusable afterwards; its owner discards it when its next query fails.
 */
export function onConnectionLoss(
  client: { on(event: 'error', listener: (err: Error) => void): unknown },
  logger: Pick<Logger, 'warn'> | undefined,
  what: string,
): void {
  let logged = false;
  client.on('error', (err: Error) => {
    if (logged) return;
    logged = true;
    logger?.warn('database connection lost', { client: what, err: errSummary(err) });
  });
}

/** How long after statement_timeout the client gives up on a server that does not answer. */
export const QUERY_TIMEOUT_MARGIN_MS = 2000;

const UNAVAILABLE_MESSAGES =
  /^(Query read timeout|timeout exceeded when trying to connect|Connection terminated( unexpectedly| due to connection timeout)?|Client has encountered a connection error and is not queryable|Client was closed and is not queryable)$/;
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * The connection itself is unusable (no answer, or gone): never send it another statement.
 * Network errors, SQLSTATE class 08 (connection exception) and 57P* (shutdown, cannot
 * connect now), and the driver's own timeout and connection messages.
 */
export function isConnectionLost(err: unknown): boolean {
  const e = err as { message?: unknown; code?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  if (
    typeof e.code === 'string' &&
    (UNAVAILABLE_CODES.has(e.code) || e.code.startsWith('08') || e.code.startsWith('57P'))
  )
    return true;
  return typeof e.message === 'string' && UNAVAILABLE_MESSAGES.test(e.message);
}

/**
 * The database could not serve the request: the connection is lost (above), or the server is
 * out of connections (53300) or cancelled the statement at statement_timeout (57014).
 * Answered 503, not 500.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (isConnectionLost(err)) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return code === '53300' || code === '57014';
}

/** How long a dedicated (non-pool) connection waits to be ready unless told otherwise (DB_POOL_TIMEOUT's default). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Connects a dedicated client (created with connectionTimeoutMillis); a server that does not
 * answer in time (a black-holed or half-open connection) fails with a message that says so
 * instead of pg's "timeout expired".
 */
export async function connectClient(client: pg.Client): Promise<void> {
  try {
    await client.connect();
  } catch (err) {
    if (err instanceof Error && /timeout expired|connection timeout/i.test(err.message)) {
      throw new Error(
        `the database at ${client.host}:${client.port} did not become ready in time (DB_POOL_TIMEOUT): no answer to the connection`,
        { cause: err },
      );
    }
    throw err;
  }
}
