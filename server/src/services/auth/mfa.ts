/**
 * TOTP step-up (CONTRACT §11; RFC 6238, SHA-1, 6 digits, 30 s, ±1 step).
 *
 * - enroll: a 160-bit secret, kept only as an encryption-service envelope with AAD bound to the
 *   tenant and the user (a sealed secret moved to another user does not open); pending until
 *   activated with a valid code, which also issues ten single-use recovery codes (stored as
 *   keyed hashes).
 * - step-up: a valid code (or a recovery code) mints a fresh access token for the same session
 *   with `amr` and `auth_time`; routes marked step-up accept it for 10 minutes.
 * - every code is accepted once (the last accepted time step is kept; an older or equal step is
 *   a replay); five wrong codes in a row lock step-up for 15 minutes.
 * Every decision is audited in the transaction that records it.
 */
import { randomBytes } from 'node:crypto';
import type { Pool } from '../../db/pool';
import { withTenant } from '../../db/transaction';
import type { Clock } from '../../lib/clock';
import { DomainError, RateLimitedError, conflict, validationFailed } from '../../lib/errors';
import { base32Encode, matchTotp, otpauthUri, timeStep } from '../../lib/totp';
import type { AuthContext, RequestMeta } from '../../domain/actor';
import type { AuditService } from '../audit/service';
import type { AuditEvent } from '../audit/types';
import { DecryptionError, type EncryptionService } from '../encryption';
import {
  acceptCode,
  deleteTotp,
  findTotp,
  hasActiveTotp,
  recordFailure,
  replaceRecoveryCodes,
  unusedRecoveryCodes,
  upsertPendingTotp,
  useRecoveryCode,
  type TotpRow,
} from './mfa-repository';
import type { TokenService } from './tokens';

export const STEP_UP_MAX_AGE_MS = 10 * 60_000;
const MFA_MAX_FAILURES = 5;
const MFA_LOCK_MS = 15 * 60_000;
const RECOVERY_CODE_COUNT = 10;
const TOTP_ISSUER = 'Fleet Security';
const RECOVERY_CODE_RE = /^[a-z2-7]{5}-?[a-z2-7]{5}$/i;

export interface MfaService {
  enroll(auth: AuthContext, meta: RequestMeta): Promise<{ otpauthUri: string }>;
  activate(auth: AuthContext, code: string, meta: RequestMeta): Promise<{ recoveryCodes: string[] }>;
  stepUp(
    auth: AuthContext,
    code: string,
    meta: RequestMeta,
  ): Promise<{ token: string; expiresIn: number; amr: readonly string[]; authTime: number }>;
  /** Removes a user's TOTP and recovery codes (own, or by an admin of the tenant). */
  remove(actor: AuthContext, targetUserId: string, meta: RequestMeta): Promise<boolean>;
  hasActiveTotp(userId: string, tenantId: string): Promise<boolean>;
}

const secretAad = (tenantId: string, userId: string) => `fleet-totp:v1:${tenantId}:${userId}`;
const recoveryInput = (tenantId: string, userId: string, code: string) =>
  `fleet-mfa-recovery:v1:${tenantId}:${userId}:${code.replace('-', '').toLowerCase()}`;

function invalidCode(): DomainError {
  return validationFailed(
    [{ path: 'body.code', message: 'is not a valid code', code: 'invalid_code' }],
    'The code is not valid.',
  );
}

function locked(retryAfterSec: number): DomainError {
  return new RateLimitedError(
    'Too many wrong codes; step-up is locked. Try again later.',
    Math.max(1, retryAfterSec),
    'step-up locked',
  );
}

function newRecoveryCode(): string {
  const s = base32Encode(randomBytes(7)).toLowerCase().slice(0, 10);
  return `${s.slice(0, 5)}-${s.slice(5)}`;
}

type Verdict = { ok: true; step: number | null; recoveryId?: string } | { ok: false; error: DomainError };

export function createMfaService(deps: {
  pool: Pool;
  clock: Clock;
  audit: AuditService;
  encryption: EncryptionService;
  tokens: TokenService;
}): MfaService {
  const { pool, clock, audit, encryption, tokens } = deps;
  const ev = (auth: AuthContext, meta: RequestMeta, e: Omit<AuditEvent, 'tenantId' | 'resourceType'>): AuditEvent => ({
    tenantId: auth.tenantId,
    userId: auth.userId,
    resourceType: 'user',
    resourceId: auth.userId,
    ipAddress: meta.ip,
    userAgent: meta.userAgent,
    requestId: meta.requestId,
    ...e,
  });

  /**
   * Checks a code against a locked TOTP row and records the outcome (accept, failure, lock)
   * in the same transaction. Recovery codes only when `allowRecovery`.
   */
  async function check(
    c: import('../../db/pool').PoolClient,
    auth: AuthContext,
    row: TotpRow,
    code: string,
    meta: RequestMeta,
    allowRecovery: boolean,
  ): Promise<Verdict> {
    const now = clock.now();
    if (row.lockedUntil && now < row.lockedUntil.getTime()) {
      await audit.record(
        ev(auth, meta, {
          action: 'auth.mfa.failure',
          result: 'denied',
          severity: 'medium',
          errorMessage: 'step-up locked after too many wrong codes',
        }),
        c,
      );
      return { ok: false, error: locked(Math.ceil((row.lockedUntil.getTime() - now) / 1000)) };
    }
    let reason = 'wrong code';
    if (/^\d{6}$/.test(code)) {
      const secret = await encryption
        .decryptFromStringToBuffer(row.secretSealed, { aad: secretAad(row.tenantId, row.userId) })
        .catch((err: Error) => {
          if (err instanceof DecryptionError) return null; // altered, or moved from another user (AAD)
          throw err;
        });
      const step = secret ? matchTotp(secret, code, now) : null;
      secret?.fill(0);
      if (step !== null && (row.lastUsedStep === null || step > row.lastUsedStep)) return { ok: true, step };
      if (step !== null) reason = 'code already used (replay)';
      if (!secret) reason = "TOTP secret could not be decrypted (altered or not this user's)";
    } else if (allowRecovery && RECOVERY_CODE_RE.test(code)) {
      for (const rc of await unusedRecoveryCodes(c, row.userId, row.tenantId)) {
        if (await encryption.verifySignature(recoveryInput(row.tenantId, row.userId, code), rc.codeHash))
          return { ok: true, step: null, recoveryId: rc.id };
      }
      reason = 'wrong recovery code';
    }
    const failures = (row.lockedUntil && now >= row.lockedUntil.getTime() ? 0 : row.failedCount) + 1;
    const lock = failures >= MFA_MAX_FAILURES ? new Date(now + MFA_LOCK_MS) : null;
    await recordFailure(c, row.userId, row.tenantId, lock ? 0 : failures, lock);
    await audit.record(
      ev(auth, meta, {
        action: 'auth.mfa.failure',
        result: 'failure',
        severity: 'medium',
        errorMessage: reason,
        after: { failures },
      }),
      c,
    );
    if (lock) {
      await audit.record(
        ev(auth, meta, {
          action: 'auth.mfa.locked',
          result: 'failure',
          severity: 'high',
          errorMessage: `${MFA_MAX_FAILURES} wrong codes: step-up locked for ${MFA_LOCK_MS / 60_000} minutes`,
        }),
        c,
      );
    }
    return { ok: false, error: invalidCode() };
  }

  /** Runs `fn` in the user's tenant; a refusal commits (failure counts, audit) and is thrown after. */
  async function inTenant<T>(
    auth: AuthContext,
    fn: (c: import('../../db/pool').PoolClient) => Promise<T | DomainError>,
  ): Promise<T> {
    const r = await withTenant(pool, auth.tenantId, fn);
    if (r instanceof DomainError) throw r;
    return r;
  }

  return {
    async enroll(auth, meta) {
      const secret = randomBytes(20);
      const sealed = await encryption.encryptToString(secret, { aad: secretAad(auth.tenantId, auth.userId) });
      const uri = otpauthUri({ issuer: TOTP_ISSUER, account: auth.email, secret });
      secret.fill(0);
      return inTenant(auth, async (c) => {
        if (!(await upsertPendingTotp(c, auth.userId, auth.tenantId, sealed, new Date(clock.now())))) {
          return conflict('TOTP is already active for this user; remove it first (DELETE /mfa/totp, after a step-up).');
        }
        await audit.record(ev(auth, meta, { action: 'auth.mfa.enrolled', severity: 'medium' }), c);
        return { otpauthUri: uri };
      });
    },

    async activate(auth, code, meta) {
      const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
      const hashes = await Promise.all(
        codes.map((rc) => encryption.createSignature(recoveryInput(auth.tenantId, auth.userId, rc))),
      );
      return inTenant(auth, async (c) => {
        const row = await findTotp(c, auth.userId, auth.tenantId, true);
        if (!row) return conflict('There is no TOTP enrollment to activate; POST /mfa/totp/enroll first.');
        if (row.activatedAt) return conflict('TOTP is already active for this user.');
        const v = await check(c, auth, row, code, meta, false);
        if (!v.ok) return v.error;
        const now = new Date(clock.now());
        await acceptCode(c, auth.userId, auth.tenantId, v.step, now);
        await replaceRecoveryCodes(c, auth.userId, auth.tenantId, hashes);
        await audit.record(
          ev(auth, meta, {
            action: 'auth.mfa.activated',
            severity: 'high',
            after: { recoveryCodes: RECOVERY_CODE_COUNT },
          }),
          c,
        );
        return { recoveryCodes: codes };
      });
    },

    async stepUp(auth, code, meta) {
      return inTenant(auth, async (c) => {
        const row = await findTotp(c, auth.userId, auth.tenantId, true);
        if (!row || !row.activatedAt)
          return conflict(
            'TOTP is not active for this user: enroll with POST /mfa/totp/enroll and activate it with POST /mfa/totp/activate first.',
          );
        const v = await check(c, auth, row, code, meta, true);
        if (!v.ok) return v.error;
        const nowMs = clock.now();
        if (v.recoveryId !== undefined) {
          if (!(await useRecoveryCode(c, v.recoveryId, new Date(nowMs)))) return invalidCode();
          await acceptCode(c, auth.userId, auth.tenantId, row.lastUsedStep, new Date(nowMs));
        } else {
          await acceptCode(c, auth.userId, auth.tenantId, v.step, new Date(nowMs));
        }
        const amr = v.recoveryId !== undefined ? ['mfa'] : ['otp'];
        const authTime = Math.floor(nowMs / 1000);
        const issued = tokens.issue({
          userId: auth.userId,
          sessionId: auth.sessionId,
          tenantId: auth.tenantId,
          amr,
          authTime,
        });
        await audit.record(
          ev(auth, meta, {
            action: 'auth.mfa.step_up',
            severity: 'low',
            after: {
              method: v.recoveryId !== undefined ? 'recovery_code' : 'totp',
              sessionId: auth.sessionId,
              step: v.step ?? timeStep(nowMs),
            },
          }),
          c,
        );
        return { token: issued.token, expiresIn: issued.expiresIn, amr, authTime };
      });
    },

    async remove(actor, targetUserId, meta) {
      return withTenant(pool, actor.tenantId, async (c) => {
        const removed = await deleteTotp(c, targetUserId, actor.tenantId);
        if (removed) {
          await audit.record(
            {
              ...ev(actor, meta, {
                action: 'auth.mfa.removed',
                severity: 'high',
                after: { scope: targetUserId === actor.userId ? 'own' : 'tenant' },
              }),
              resourceId: targetUserId,
            },
            c,
          );
        }
        return removed;
      });
    },

    hasActiveTotp: (userId, tenantId) => withTenant(pool, tenantId, (c) => hasActiveTotp(c, userId, tenantId)),
  };
}
