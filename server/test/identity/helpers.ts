import request from 'supertest';
import { base32Decode, totp } from '../../src/lib/totp';
import type { TestApp } from '../helpers/app';
import type { TestLogin } from '../helpers/auth';

export const SECURITY = '/api/v1/security';

export function secretOf(otpauthUri: string): Buffer {
  return base32Decode(new URL(otpauthUri).searchParams.get('secret') as string);
}

export interface TotpUser {
  secret: Buffer;
  recoveryCodes: string[];
  /** The code for the app clock now. */
  code(ms?: number): string;
}

/** Enrolls and activates TOTP for a logged-in user through the API (at the app clock). */
export async function enableTotp(t: TestApp, l: TestLogin): Promise<TotpUser> {
  const e = await request(t.app).post(`${SECURITY}/mfa/totp/enroll`).set('Authorization', l.authorization).send({});
  if (e.status !== 200) throw new Error(`enroll: ${e.status} ${JSON.stringify(e.body)}`);
  const secret = secretOf(e.body.otpauthUri);
  const a = await request(t.app)
    .post(`${SECURITY}/mfa/totp/activate`)
    .set('Authorization', l.authorization)
    .send({ code: totp(secret, t.clock.now()) });
  if (a.status !== 200) throw new Error(`activate: ${a.status} ${JSON.stringify(a.body)}`);
  return { secret, recoveryCodes: a.body.recoveryCodes, code: (ms?: number) => totp(secret, ms ?? t.clock.now()) };
}

/** A step-up token (the next 30 s step, so the activation code is not replayed). */
export async function stepUp(
  t: TestApp & { clock: { advance(ms: number): void } },
  l: TestLogin,
  u: TotpUser,
): Promise<string> {
  t.clock.advance(30_000);
  const r = await request(t.app)
    .post(`${SECURITY}/mfa/step-up`)
    .set('Authorization', l.authorization)
    .send({ code: u.code() });
  if (r.status !== 200) throw new Error(`step-up: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.token as string;
}
