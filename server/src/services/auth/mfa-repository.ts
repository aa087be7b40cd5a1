/** SQL of TOTP step-up (migrations/073). Every statement names the tenant and the user. */
import type { Queryable } from '../../db/pool';

export interface TotpRow {
  userId: string;
  tenantId: string;
  secretSealed: string;
  createdAt: Date;
  activatedAt: Date | null;
  lastUsedStep: number | null;
  failedCount: number;
  lockedUntil: Date | null;
}

interface Row {
  user_id: string;
  tenant_id: string;
  secret_sealed: string;
  created_at: Date;
  activated_at: Date | null;
  last_used_step: string | null;
  failed_count: number;
  locked_until: Date | null;
}

const toRow = (r: Row): TotpRow => ({
  userId: r.user_id,
  tenantId: r.tenant_id,
  secretSealed: r.secret_sealed,
  createdAt: r.created_at,
  activatedAt: r.activated_at,
  lastUsedStep: r.last_used_step === null ? null : Number(r.last_used_step),
  failedCount: r.failed_count,
  lockedUntil: r.locked_until,
});

const COLUMNS =
  'user_id, tenant_id, secret_sealed, created_at, activated_at, last_used_step, failed_count, locked_until';

const FIND_TOTP = `SELECT ${COLUMNS} FROM mfa_totp WHERE user_id = $1 AND tenant_id = $2`;
const FIND_TOTP_FOR_UPDATE = `${FIND_TOTP} FOR UPDATE`;

export async function findTotp(
  q: Queryable,
  userId: string,
  tenantId: string,
  forUpdate = false,
): Promise<TotpRow | null> {
  const { rows } = await q.query<Row>(forUpdate ? FIND_TOTP_FOR_UPDATE : FIND_TOTP, [userId, tenantId]);
  return rows[0] ? toRow(rows[0]) : null;
}

/** Whether the user has activated TOTP (the step-up guard asks on every guarded request). */
const HAS_ACTIVE_TOTP = `SELECT 1 FROM mfa_totp WHERE user_id = $1 AND tenant_id = $2 AND activated_at IS NOT NULL`;

export async function hasActiveTotp(q: Queryable, userId: string, tenantId: string): Promise<boolean> {
  const r = await q.query({ name: 'fleet_mfa_has_totp', text: HAS_ACTIVE_TOTP, values: [userId, tenantId] });
  return (r.rowCount ?? 0) > 0;
}

/** A new pending enrollment, replacing a pending (never an active) one. */
const UPSERT_PENDING_TOTP = `
INSERT INTO mfa_totp (user_id, tenant_id, secret_sealed, created_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id) DO UPDATE SET secret_sealed = EXCLUDED.secret_sealed, created_at = EXCLUDED.created_at,
  last_used_step = NULL, failed_count = 0, locked_until = NULL
WHERE mfa_totp.activated_at IS NULL AND mfa_totp.tenant_id = EXCLUDED.tenant_id`;

/** false when TOTP is already active (nothing changed). */
export async function upsertPendingTotp(
  q: Queryable,
  userId: string,
  tenantId: string,
  sealed: string,
  now: Date,
): Promise<boolean> {
  const r = await q.query(UPSERT_PENDING_TOTP, [userId, tenantId, sealed, now]);
  return (r.rowCount ?? 0) > 0;
}

const ACCEPT_CODE = `
UPDATE mfa_totp SET last_used_step = $3, failed_count = 0, locked_until = NULL, activated_at = COALESCE(activated_at, $4)
WHERE user_id = $1 AND tenant_id = $2`;

export async function acceptCode(
  q: Queryable,
  userId: string,
  tenantId: string,
  step: number | null,
  now: Date,
): Promise<void> {
  await q.query(ACCEPT_CODE, [userId, tenantId, step, now]);
}

const RECORD_FAILURE = `
UPDATE mfa_totp SET failed_count = $3, locked_until = $4
WHERE user_id = $1 AND tenant_id = $2`;

export async function recordFailure(
  q: Queryable,
  userId: string,
  tenantId: string,
  failedCount: number,
  lockedUntil: Date | null,
): Promise<void> {
  await q.query(RECORD_FAILURE, [userId, tenantId, failedCount, lockedUntil]);
}

const DELETE_TOTP = `DELETE FROM mfa_totp WHERE user_id = $1 AND tenant_id = $2`;

export async function deleteTotp(q: Queryable, userId: string, tenantId: string): Promise<boolean> {
  const r = await q.query(DELETE_TOTP, [userId, tenantId]);
  return (r.rowCount ?? 0) > 0;
}

const DELETE_RECOVERY_CODES = `DELETE FROM mfa_recovery_codes WHERE user_id = $1 AND tenant_id = $2`;
const INSERT_RECOVERY_CODES = `
INSERT INTO mfa_recovery_codes (user_id, tenant_id, code_hash)
SELECT $1, $2, h FROM unnest($3::text[]) AS h`;

export async function replaceRecoveryCodes(
  q: Queryable,
  userId: string,
  tenantId: string,
  hashes: string[],
): Promise<void> {
  await q.query(DELETE_RECOVERY_CODES, [userId, tenantId]);
  await q.query(INSERT_RECOVERY_CODES, [userId, tenantId, hashes]);
}

const UNUSED_RECOVERY_CODES = `SELECT id, code_hash FROM mfa_recovery_codes WHERE user_id = $1 AND tenant_id = $2 AND used_at IS NULL`;

export async function unusedRecoveryCodes(
  q: Queryable,
  userId: string,
  tenantId: string,
): Promise<Array<{ id: string; codeHash: string }>> {
  const { rows } = await q.query<{ id: string; code_hash: string }>(UNUSED_RECOVERY_CODES, [userId, tenantId]);
  return rows.map((r) => ({ id: r.id, codeHash: r.code_hash }));
}

const USE_RECOVERY_CODE = `UPDATE mfa_recovery_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL`;

export async function useRecoveryCode(q: Queryable, id: string, now: Date): Promise<boolean> {
  const r = await q.query(USE_RECOVERY_CODE, [id, now]);
  return (r.rowCount ?? 0) > 0;
}
