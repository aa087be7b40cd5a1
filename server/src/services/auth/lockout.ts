/**
 * Brute-force lockout, counted from the audit trail (auth.login.failure rows) so every
 * instance agrees.
 *
 * Only attempts that carried a correctly signed ID token which then failed a check count
 * (their failure row carries after.lockout, see lockoutMarker). ID tokens are the identity
 * provider's signatures: they cannot be guessed, so a junk token (bad shape, unknown kid, bad
 * signature) is audited but never counted — otherwise anyone could lock any e-mail, or everyone
 * behind one address, with five requests.
 * - Per client network: LOGIN_MAX_FAILURES within LOGIN_LOCKOUT_WINDOW from one IPv4 address or
 *   one IPv6 /56 (keyed like the rate limiter, so rotating addresses inside a /56 does not help).
 * - Per e-mail: LOGIN_EMAIL_MAX_FAILURES within LOGIN_EMAIL_LOCKOUT_WINDOW, a slower separate
 *   threshold, counting only tokens whose own (signed) e-mail claim is that e-mail: a valid token
 *   for the attacker's own account presented with a victim's e-mail counts against the
 *   attacker's network, never against the victim's e-mail.
 */
import { isIP } from 'node:net';
import { ipKeyGenerator } from 'express-rate-limit';
import type { Pool, PoolClient } from '../../db/pool';

const LOCKOUT_STATE = `SELECT email_failures, email_unlock_at, ip_failures, ip_unlock_at FROM auth_login_lockout_counted($1, $2, $3::interval, $4, $5::cidr, $6, $7::interval, $8)`;

export interface LockoutLimits {
  ipMax: number;
  ipWindowMs: number;
  emailMax: number;
  emailWindowMs: number;
}

export interface LockoutState {
  /** Counted failures inside each window, capped at that window's maximum. */
  emailFailures: number;
  ipFailures: number;
  locked: boolean;
  /** Seconds until the lock ends (0 when not locked). */
  retryAfterSec: number;
  scope: Array<'email' | 'ip'>;
}

/** The network a client address is counted under: IPv4 /32, IPv6 /56 (as the rate limiter). */
function lockoutNetwork(ip: string | null): string | null {
  if (!ip) return null;
  const family = isIP(ip);
  if (family === 4) return `${ip}/32`;
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    if (mapped) return `${mapped[1]}/32`;
    return ipKeyGenerator(ip, 56);
  }
  return null;
}

/** What a failure row records about counting: which counters it feeds (stored as after.lockout). */
export interface LockoutMarker {
  ip: boolean;
  email: boolean;
}

export async function lockoutState(
  q: Pool | PoolClient,
  input: { email: string; ip: string | null; now: number; limits: LockoutLimits },
): Promise<LockoutState> {
  const { limits } = input;
  // Named (prepared) statement: on the login path, planned once per connection.
  const { rows } = await q.query<{
    email_failures: number;
    email_unlock_at: Date | null;
    ip_failures: number;
    ip_unlock_at: Date | null;
  }>({
    name: 'fleet_auth_lockout_counted',
    text: LOCKOUT_STATE,
    values: [
      input.email,
      new Date(input.now - limits.emailWindowMs),
      `${Math.round(limits.emailWindowMs)} milliseconds`,
      limits.emailMax,
      lockoutNetwork(input.ip),
      new Date(input.now - limits.ipWindowMs),
      `${Math.round(limits.ipWindowMs)} milliseconds`,
      limits.ipMax,
    ],
  });
  const r = rows[0] ?? { email_failures: 0, email_unlock_at: null, ip_failures: 0, ip_unlock_at: null };
  const scope: Array<'email' | 'ip'> = [];
  let until = 0;
  let windowMs = 0;
  for (const [name, at, w] of [
    ['email', r.email_unlock_at, limits.emailWindowMs],
    ['ip', r.ip_unlock_at, limits.ipWindowMs],
  ] as const) {
    if (at && at.getTime() > input.now) {
      scope.push(name);
      until = Math.max(until, at.getTime());
      windowMs = Math.max(windowMs, w);
    }
  }
  return {
    emailFailures: r.email_failures,
    ipFailures: r.ip_failures,
    locked: scope.length > 0,
    // Never more than one window from now (the database's and this process's clocks may differ slightly).
    retryAfterSec:
      scope.length > 0 ? Math.min(Math.ceil(windowMs / 1000), Math.max(1, Math.ceil((until - input.now) / 1000))) : 0,
    scope,
  };
}
