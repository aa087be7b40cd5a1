/**
 * Brute-force lockout, counted from the audit trail (auth.login.failure rows) so every
 * instance agrees: LOGIN_MAX_FAILURES failures for one e-mail, or from one IP, within
 * LOGIN_LOCKOUT_WINDOW lock further attempts until enough of them leave the window.
 */
import type { Pool, PoolClient } from '../../db/pool';

export const LOCKOUT_STATE = `SELECT email_failures, email_unlock_at, ip_failures, ip_unlock_at FROM auth_login_lockout($1, $2::inet, $3, $4::interval, $5)`;

export interface LockoutState {
  /** Failures inside the window, capped at the maximum. */
  emailFailures: number;
  ipFailures: number;
  locked: boolean;
  /** Seconds until the lock ends (0 when not locked). */
  retryAfterSec: number;
  scope: Array<'email' | 'ip'>;
}

export async function lockoutState(
  q: Pool | PoolClient,
  input: { email: string; ip: string | null; now: number; windowMs: number; maxFailures: number },
): Promise<LockoutState> {
  // Named (prepared) statement: on the login path, planned once per connection.
  const { rows } = await q.query<{ email_failures: number; email_unlock_at: Date | null; ip_failures: number; ip_unlock_at: Date | null }>({
    name: 'fleet_auth_lockout_state',
    text: LOCKOUT_STATE,
    values: [input.email, input.ip, new Date(input.now - input.windowMs), `${Math.round(input.windowMs)} milliseconds`, input.maxFailures],
  });
  const r = rows[0] ?? { email_failures: 0, email_unlock_at: null, ip_failures: 0, ip_unlock_at: null };
  const scope: Array<'email' | 'ip'> = [];
  let until = 0;
  for (const [name, at] of [['email', r.email_unlock_at], ['ip', r.ip_unlock_at]] as const) {
    if (at && at.getTime() > input.now) {
      scope.push(name);
      until = Math.max(until, at.getTime());
    }
  }
  return {
    emailFailures: r.email_failures,
    ipFailures: r.ip_failures,
    locked: scope.length > 0,
    // Never more than one window from now (the database's and this process's clocks may differ slightly).
    retryAfterSec: scope.length > 0 ? Math.min(Math.ceil(input.windowMs / 1000), Math.max(1, Math.ceil((until - input.now) / 1000))) : 0,
    scope,
  };
}
