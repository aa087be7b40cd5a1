import { randomBytes, randomUUID } from 'node:crypto';
import type pg from 'pg';
import request from 'supertest';
import { ManualClock, type Clock } from '../../src/lib/clock';
import type { Role } from '../../src/domain/actor';
import { buildTestApp, type TestApp } from '../helpers/app';
import { uniqueEmail, uniqueTenant } from '../helpers/env';
import type { TestIssuer } from './oidc-issuer';

export const SECURITY = '/api/v1/security';

/** A client address no other test uses: lockout counts per IP (the app trusts the loopback proxy in these tests). */
export function uniqueIp(): string {
  const b = randomBytes(3);
  return `10.${b[0]}.${b[1]}.${b[2] === 0 ? 1 : b[2]}`;
}

export interface AuthTestApp extends TestApp {
  clock: ManualClock;
}

/** The real app wired to a local issuer, with a manual clock set to now. */
export async function buildAuthApp(
  issuer: TestIssuer | null,
  opts: { env?: Record<string, string | undefined>; clock?: ManualClock } = {},
): Promise<AuthTestApp> {
  const clock = opts.clock ?? new ManualClock(Date.now());
  const t = await buildTestApp({
    clock,
    env: { TRUST_PROXY: 'loopback', ...(issuer ? issuer.env() : {}), ...opts.env },
  });
  return Object.assign(t, { clock });
}

export interface Provisioned {
  id: string;
  email: string;
  tenantId: string;
  role: Role;
}

export async function provision(
  t: TestApp,
  opts: { email?: string; role?: Role; tenantId?: string; name?: string } = {},
): Promise<Provisioned> {
  const email = opts.email ?? uniqueEmail();
  const tenantId = opts.tenantId ?? uniqueTenant();
  const role = opts.role ?? 'user';
  const r = await t.composition.services.users.provision(
    { email, role, tenantId, displayName: opts.name },
    { source: 'test' },
  );
  return { id: r.user.id, email: r.user.email, tenantId, role };
}

export interface LoginOk {
  token: string;
  refreshToken: string;
  authorization: string;
  sessionId: string;
  cookie: string;
}

/** POST /login from a given client IP. */
export function postLogin(t: TestApp, body: unknown, ip: string, requestId = randomUUID()) {
  return request(t.app)
    .post(`${SECURITY}/login`)
    .set('X-Forwarded-For', ip)
    .set('X-Request-Id', requestId)
    .send(body as object);
}

/** Logs in through the local issuer and returns the tokens. */
export async function loginThroughIssuer(
  t: TestApp,
  issuer: TestIssuer,
  clock: Clock,
  email: string,
  ip = uniqueIp(),
): Promise<LoginOk> {
  const res = await postLogin(t, { email, idToken: issuer.idToken(clock, email) }, ip);
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${JSON.stringify(res.body)}`);
  const payload = JSON.parse(Buffer.from(String(res.body.token).split('.')[1] as string, 'base64url').toString()) as {
    sid: string;
  };
  const setCookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
  return {
    token: res.body.token,
    refreshToken: res.body.refreshToken,
    authorization: `Bearer ${res.body.token}`,
    sessionId: payload.sid,
    cookie: setCookie.find((c) => c.startsWith('fleet_refresh=')) ?? '',
  };
}

export interface AuditRow {
  id: string;
  tenant_id: string;
  user_id: string | null;
  action: string;
  resource_type: string;
  resource_id: string | null;
  result: string;
  error_message: string | null;
  severity: string;
  ip_address: string | null;
  request_id: string | null;
  after: Record<string, unknown> | null;
  before: Record<string, unknown> | null;
}

export async function auditByRequest(owner: pg.Pool, requestId: string): Promise<AuditRow[]> {
  const { rows } = await owner.query<AuditRow>(
    `SELECT id, tenant_id, user_id, action, resource_type, resource_id, result, error_message, severity, host(ip_address) AS ip_address, request_id, after, before
     FROM audit_logs WHERE request_id = $1 ORDER BY id`,
    [requestId],
  );
  return rows;
}

export async function auditFor(
  owner: pg.Pool,
  where: { tenantId?: string; action?: string; resourceId?: string },
): Promise<AuditRow[]> {
  const { rows } = await owner.query<AuditRow>(
    `SELECT id, tenant_id, user_id, action, resource_type, resource_id, result, error_message, severity, host(ip_address) AS ip_address, request_id, after, before
     FROM audit_logs
     WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR resource_id = $3)
     ORDER BY id`,
    [where.tenantId ?? null, where.action ?? null, where.resourceId ?? null],
  );
  return rows;
}

/** The generic body every authentication failure gets. */
export function expectGeneric401(res: request.Response): void {
  expect(res.status).toBe(401);
  expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
  expect(res.body).toEqual({
    success: false,
    error: { code: 'UNAUTHENTICATED', message: 'Authentication required or invalid.' },
    requestId: expect.any(String),
    timestamp: expect.any(String),
  });
}
