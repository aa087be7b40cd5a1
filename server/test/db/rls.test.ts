/**
 * Row-level security as the second wall: on the forced tables, a runtime-login query without
 * a tenant context sees nothing, and with one sees only that tenant.
 */
import type pg from 'pg';
import { ownerPool } from '../helpers/app';
import { uniqueTenant } from '../helpers/env';
import { appRolePool } from '../audit/helpers';

let owner: pg.Pool;
let app: pg.Pool;
const a = uniqueTenant('rls-a');
const b = uniqueTenant('rls-b');
const users = new Map<string, string>();
const sessions = new Map<string, string>();
const prefixes = new Map<string, string>();
const streams = new Map<string, string>();

beforeAll(async () => {
  owner = ownerPool();
  app = appRolePool(2);
  for (const t of [a, b]) {
    await owner.query("INSERT INTO audit_logs (tenant_id, action, resource_type) VALUES ($1, 'rls.test', 'thing')", [
      t,
    ]);
    await owner.query(
      "INSERT INTO encrypted_secrets (tenant_id, name, key_version, ciphertext) VALUES ($1, 'rls-secret', 'v1', 'v1:v1:x')",
      [t],
    );
    await owner.query(
      `INSERT INTO audit_exports (tenant_id, seq, first_id, last_id, row_count, first_created_at, last_created_at, container, blob_name, sha256, prev_digest, digest, status)
       VALUES ($1, 1, 1, 1, 1, now(), now(), 'c', $2, $3, $3, $3, 'pending')`,
      [t, `rls-${t}`, 'b'.repeat(64)],
    );
    const user = (
      await owner.query<{ id: string }>(
        "INSERT INTO users (tenant_id, email, role) VALUES ($1, 'rls@example.com', 'admin') RETURNING id",
        [t],
      )
    ).rows[0]!.id;
    users.set(t, user);
    const session = (
      await owner.query<{ id: string }>(
        "INSERT INTO sessions (user_id, tenant_id, idle_expires_at, absolute_expires_at) VALUES ($1, $2, now() + interval '1 hour', now() + interval '1 day') RETURNING id",
        [user, t],
      )
    ).rows[0]!.id;
    sessions.set(t, session);
    await owner.query(
      "INSERT INTO refresh_tokens (session_id, token_hash, expires_at) VALUES ($1, gen_random_bytes(32), now() + interval '1 day')",
      [session],
    );
    await owner.query(
      "INSERT INTO mfa_totp (user_id, tenant_id, secret_sealed, created_at) VALUES ($1, $2, 'sealed', now())",
      [user, t],
    );
    await owner.query("INSERT INTO mfa_recovery_codes (user_id, tenant_id, code_hash) VALUES ($1, $2, 'h')", [user, t]);
    const prefix = `rls${t === a ? 'a' : 'b'}${Math.random().toString(36).slice(2, 10).padEnd(8, '0')}`
      .toLowerCase()
      .slice(0, 12);
    prefixes.set(t, prefix);
    await owner.query(
      "INSERT INTO api_keys (tenant_id, name, prefix, secret_hash, scopes, created_by, created_at) VALUES ($1, 'rls', $2, 's1:v1:x', '{audit:read}', $3, now())",
      [t, prefix, user],
    );
    await owner.query(
      `INSERT INTO idempotency_keys (tenant_id, principal, route, idem_key, request_hash, status, response, created_at, expires_at)
       VALUES ($1, 'u', 'POST /x', 'rls', $2, 200, '{}', now(), now() + interval '1 hour')`,
      [t, Buffer.alloc(32)],
    );
    const stream = (
      await owner.query<{ id: string }>(
        "INSERT INTO audit_streams (tenant_id, name, provider, endpoint_url, schema, min_severity, created_at, updated_at) VALUES ($1, 'rls', 'webhook', 'https://siem.example/x', 'native', 'high', now(), now()) RETURNING id::text AS id",
        [t],
      )
    ).rows[0]!.id;
    streams.set(t, stream);
    await owner.query(
      'INSERT INTO audit_stream_state (stream_id, tenant_id, min_rank, next_attempt_at) VALUES ($1, $2, 4, now())',
      [stream, t],
    );
    await owner.query(
      "INSERT INTO audit_stream_outbox (stream_id, tenant_id, payload, enqueued_at) VALUES ($1, $2, '{}', now())",
      [stream, t],
    );
    await owner.query(
      "INSERT INTO audit_stream_dead_letter (stream_id, event_id, tenant_id, payload, reason, dead_at) VALUES ($1, gen_random_uuid(), $2, '{}', 'rls', now())",
      [stream, t],
    );
    await owner.query(
      "INSERT INTO siem_outbox (event_id, tenant_id, event_type, severity, payload, enqueued_at, next_attempt_at) VALUES (gen_random_uuid(), $1, 'rls.test', 'low', '{}', now(), now())",
      [t],
    );
    await owner.query(
      "INSERT INTO siem_dead_letter (event_id, tenant_id, event_type, severity, payload, enqueued_at, attempts, reason, dead_at) VALUES (gen_random_uuid(), $1, 'rls.test', 'low', '{}', now(), 1, 'rls', now())",
      [t],
    );
    await owner.query(
      "INSERT INTO siem_alert_signals (rule, subject, tenant_id, occurred_at) VALUES ('rls', $2, $1, now())",
      [t, `rls:${t}`],
    );
  }
  await owner.query("INSERT INTO siem_alert_state (rule, subject, last_alert_at) VALUES ('rls', $1, now())", [
    `rls:${a}`,
  ]);
});
afterAll(async () => {
  for (const t of ['siem_outbox', 'siem_dead_letter', 'siem_alert_signals'])
    await owner.query(`DELETE FROM ${t} WHERE tenant_id = ANY($1)`, [[a, b]]);
  await owner.query("DELETE FROM siem_alert_state WHERE rule = 'rls'");
  await owner.end();
  await app.end();
});

const TABLES = [
  'audit_logs',
  'encrypted_secrets',
  'audit_exports',
  'users',
  'sessions',
  'refresh_tokens',
  'mfa_totp',
  'mfa_recovery_codes',
  'api_keys',
  'idempotency_keys',
  'audit_streams',
  'siem_outbox',
  'siem_dead_letter',
  'siem_alert_signals',
  'audit_stream_state',
  'audit_stream_outbox',
  'audit_stream_dead_letter',
];

/** The tenant of a row: refresh_tokens has none of its own, it is its session's. */
const tenantOf = (table: string) =>
  table === 'refresh_tokens' ? '(SELECT s.tenant_id FROM sessions s WHERE s.id = session_id)' : 'tenant_id';

/**
 * An INSERT of one row of `tenant` into each table the application role writes (params: tenant,
 * user id, session id of that tenant).
 */
const INSERTS: Record<string, string> = {
  users: "INSERT INTO users (tenant_id, email, role) VALUES ($1, 'rls-insert@example.com', 'user')",
  sessions:
    "INSERT INTO sessions (user_id, tenant_id, idle_expires_at, absolute_expires_at) VALUES ($2, $1, now() + interval '1 hour', now() + interval '1 day')",
  refresh_tokens:
    "INSERT INTO refresh_tokens (session_id, token_hash, expires_at) SELECT $3, gen_random_bytes(32), now() + interval '1 day' WHERE $1::text IS NOT NULL AND $2::uuid IS NOT NULL",
  audit_logs: "INSERT INTO audit_logs (tenant_id, action, resource_type) VALUES ($1, 'rls.insert', 'thing')",
  encrypted_secrets:
    "INSERT INTO encrypted_secrets (tenant_id, name, key_version, ciphertext) VALUES ($1, 'rls-insert', 'v1', 'v1:v1:x')",
  mfa_totp:
    "INSERT INTO mfa_totp (user_id, tenant_id, secret_sealed, created_at) VALUES (gen_random_uuid(), $1, 'sealed', now())",
  mfa_recovery_codes: "INSERT INTO mfa_recovery_codes (user_id, tenant_id, code_hash) VALUES ($2, $1, 'h2')",
  api_keys:
    "INSERT INTO api_keys (tenant_id, name, prefix, secret_hash, scopes, created_by, created_at) VALUES ($1, 'rls2', 'zzzzzzzzzzzz', 's1:v1:x', '{audit:read}', $2, now())",
  idempotency_keys: `INSERT INTO idempotency_keys (tenant_id, principal, route, idem_key, request_hash, status, response, created_at, expires_at)
    VALUES ($1, 'u', 'POST /y', 'rls2', decode(repeat('00', 32), 'hex'), 200, '{}', now(), now() + interval '1 hour')`,
  audit_streams:
    "INSERT INTO audit_streams (tenant_id, name, provider, endpoint_url, schema, min_severity, created_at, updated_at) VALUES ($1, 'rls2', 'webhook', 'https://siem.example/y', 'native', 'high', now(), now())",
  siem_outbox:
    "INSERT INTO siem_outbox (event_id, tenant_id, event_type, severity, payload, enqueued_at, next_attempt_at) VALUES (gen_random_uuid(), $1, 'rls.insert', 'low', '{}', now(), now())",
  siem_dead_letter:
    "INSERT INTO siem_dead_letter (event_id, tenant_id, event_type, severity, payload, enqueued_at, attempts, reason, dead_at) VALUES (gen_random_uuid(), $1, 'rls.insert', 'low', '{}', now(), 1, 'rls', now())",
  siem_alert_signals:
    "INSERT INTO siem_alert_signals (rule, subject, tenant_id, occurred_at) VALUES ('rls', 'rls:insert', $1, now())",
  // $4: the tenant's stream.
  audit_stream_state:
    'INSERT INTO audit_stream_state (stream_id, tenant_id, min_rank, next_attempt_at) SELECT $4, $1, 1, now() WHERE $2::uuid IS NOT NULL AND $3::uuid IS NOT NULL',
  audit_stream_outbox:
    "INSERT INTO audit_stream_outbox (stream_id, tenant_id, payload, enqueued_at) SELECT $4, $1, '{}', now() WHERE $2::uuid IS NOT NULL AND $3::uuid IS NOT NULL",
  audit_stream_dead_letter:
    "INSERT INTO audit_stream_dead_letter (stream_id, event_id, tenant_id, payload, reason, dead_at) SELECT $4, gen_random_uuid(), $1, '{}', 'rls', now() WHERE $2::uuid IS NOT NULL AND $3::uuid IS NOT NULL",
};

async function countIn(tenant: string | null, table: string): Promise<{ mine: number; all: number }> {
  const c = await app.connect();
  try {
    await c.query('BEGIN');
    if (tenant) await c.query("SELECT set_config('app.tenant_id', $1, true)", [tenant]);
    const { rows } = await c.query<{ mine: number; all: number }>(
      `SELECT count(*) FILTER (WHERE ${tenantOf(table)} IN ($1, $2))::int AS mine, count(*)::int AS all FROM ${table}`,
      [a, b],
    );
    await c.query('COMMIT');
    return rows[0] as { mine: number; all: number };
  } finally {
    c.release();
  }
}

const params = (sql: string, tenant: string) =>
  sql.includes('$4')
    ? [tenant, users.get(tenant), sessions.get(tenant), streams.get(tenant)]
    : sql.includes('$3')
      ? [tenant, users.get(tenant), sessions.get(tenant)]
      : sql.includes('$2')
        ? [tenant, users.get(tenant)]
        : [tenant];

describe('row-level security on tenant tables', () => {
  test.each(TABLES)(
    'when the runtime login queries %s without a tenant context, then it sees nothing; with one, only that tenant',
    async (table) => {
      expect(await countIn(null, table)).toEqual({ mine: 0, all: 0 });
      expect(await countIn(a, table)).toEqual({ mine: 1, all: 1 });
      const c = await app.connect();
      try {
        await c.query('BEGIN');
        await c.query("SELECT set_config('app.tenant_id', $1, true)", [a]);
        const { rows } = await c.query<{ t: string }>(`SELECT DISTINCT ${tenantOf(table)} AS t FROM ${table}`);
        await c.query('COMMIT');
        expect(rows.map((r) => r.t)).toEqual([a]);
      } finally {
        c.release();
      }
    },
  );

  test.each(Object.keys(INSERTS))(
    'when the runtime login inserts into %s without a tenant context, then row-level security refuses it',
    async (table) => {
      const c = await app.connect();
      try {
        await c.query('BEGIN');
        const sql = INSERTS[table] as string;
        await expect(c.query(sql, params(sql, a))).rejects.toMatchObject({ code: '42501' });
      } finally {
        await c.query('ROLLBACK');
        c.release();
      }
    },
  );

  test.each(Object.keys(INSERTS))(
    "when the runtime login inserts a row of tenant B into %s in tenant A's context, then row-level security refuses it",
    async (table) => {
      const c = await app.connect();
      try {
        await c.query('BEGIN');
        await c.query("SELECT set_config('app.tenant_id', $1, true)", [a]);
        const sql = INSERTS[table] as string;
        await expect(c.query(sql, params(sql, b))).rejects.toMatchObject({ code: '42501' });
      } finally {
        await c.query('ROLLBACK');
        c.release();
      }
    },
  );

  test('when an API key is looked up by prefix before its tenant is known, then only the function finds it, by exact prefix', async () => {
    const prefix = prefixes.get(a) as string;
    expect((await app.query('SELECT 1 FROM api_keys WHERE prefix = $1', [prefix])).rowCount).toBe(0);
    const found = await app.query<{ tenant_id: string; prefix: string }>(
      'SELECT tenant_id, prefix FROM auth_api_key_by_prefix($1)',
      [prefix],
    );
    expect(found.rows).toEqual([{ tenant_id: a, prefix }]);
    for (const hostile of ['%', `${prefix.slice(0, 11)}%`, "' OR true --", '', prefix.toUpperCase()]) {
      expect((await app.query('SELECT 1 FROM auth_api_key_by_prefix($1)', [hostile])).rowCount).toBe(0);
    }
  });

  test('when the pre-tenant authentication functions run for the application role, then each answers only its narrow question', async () => {
    const byEmail = await app.query<{ tenant_id: string }>(
      "SELECT tenant_id FROM auth_users_by_email('rls@example.com') WHERE tenant_id = ANY($1)",
      [[a, b]],
    );
    expect(byEmail.rows.map((r) => r.tenant_id).sort()).toEqual([a, b].sort());
    const sa = sessions.get(a) as string;
    const ua = users.get(a) as string;
    const found = await app.query<{ ord: number; email: string }>(
      'SELECT ord, email FROM auth_find_sessions($1::uuid[], $2::text[], $3::uuid[])',
      [
        [sa, sa, sa],
        [a, b, a],
        [ua, ua, users.get(b)],
      ],
    );
    // Only the key naming the session's own tenant and user is answered.
    expect(found.rows).toEqual([{ ord: 1, email: 'rls@example.com' }]);
    expect((await app.query('SELECT auth_session_tenant($1) AS t', [sa])).rows[0]).toEqual({ t: a });
  });

  test('when the runtime login reads the SIEM tables, then only the transaction-local worker scope spans tenants, and it does not outlive its transaction', async () => {
    const c = await app.connect();
    try {
      const q =
        "SELECT (SELECT count(*)::int FROM siem_outbox WHERE tenant_id = ANY($1)) AS outbox, (SELECT count(*)::int FROM siem_alert_state WHERE rule = 'rls') AS state";
      // siem_alert_state has no tenant: neither no context nor a tenant context reaches it.
      expect((await c.query(q, [[a, b]])).rows[0]).toEqual({ outbox: 0, state: 0 });
      await c.query('BEGIN');
      await c.query("SELECT set_config('app.tenant_id', $1, true)", [a]);
      expect((await c.query(q, [[a, b]])).rows[0]).toEqual({ outbox: 1, state: 0 });
      await c.query("SELECT set_config('app.siem_worker', 'on', true)");
      expect((await c.query(q, [[a, b]])).rows[0]).toEqual({ outbox: 2, state: 1 });
      await c.query('COMMIT');
      // Transaction-local: the pooled connection is back to seeing nothing.
      expect((await c.query(q, [[a, b]])).rows[0]).toEqual({ outbox: 0, state: 0 });
      await c.query('BEGIN');
      await expect(
        c.query("INSERT INTO siem_alert_state (rule, subject, last_alert_at) VALUES ('rls', 'rls:x', now())"),
      ).rejects.toMatchObject({ code: '42501' });
      await c.query('ROLLBACK');
    } finally {
      c.release();
    }
  });

  test('when the catalog is read, then these tables enable and FORCE row-level security', async () => {
    const { rows } = await owner.query<{ relname: string; on: boolean; forced: boolean }>(
      'SELECT relname, relrowsecurity AS on, relforcerowsecurity AS forced FROM pg_class WHERE relname = ANY($1) ORDER BY relname',
      [[...TABLES, 'audit_chain', 'audit_chain_anchors', 'siem_alert_state']],
    );
    expect(rows.every((r) => r.on && r.forced)).toBe(true);
    expect(rows).toHaveLength(TABLES.length + 3);
  });

  test('when the cross-tenant helper functions run for the application role, then they still see every tenant (owner path, counts only)', async () => {
    const usage = await app.query<{ tenant_id: string }>(
      'SELECT tenant_id FROM encrypted_secrets_key_usage() WHERE tenant_id = ANY($1)',
      [[a, b]],
    );
    expect(usage.rows.map((r) => r.tenant_id).sort()).toEqual([a, b].sort());
    const archived = await app.query<{ tenant_id: string }>(
      'SELECT tenant_id FROM audit_archive_tenants() WHERE tenant_id = ANY($1)',
      [[a, b]],
    );
    expect(archived.rows.map((r) => r.tenant_id).sort()).toEqual([a, b].sort());
  });
});
