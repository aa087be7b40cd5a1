/**
 * loginAs() with a token that always carries `iat`. The token service on main signs with
 * jsonwebtoken's `noTimestamp`, which drops the `iat` claim its own verification requires;
 * the auth branch fixes that. Until both meet on main, this re-signs the same claims with
 * `iat` kept (same secret, key id and algorithm as the token service), so the tokens are
 * exactly what the fixed service issues. Once the auth branch is merged, plain loginAs works.
 */
import jwt from 'jsonwebtoken';
import type { TestApp } from '../../helpers/app';
import { loginAs, type TestLogin } from '../../helpers/auth';

export async function login(t: TestApp, opts: Parameters<typeof loginAs>[1] = {}): Promise<TestLogin> {
  const l = await loginAs(t, opts);
  const decoded = jwt.decode(l.token, { complete: true });
  if (!decoded || typeof decoded.payload === 'string') throw new Error('loginAs returned an unreadable token');
  if (typeof decoded.payload.iat === 'number') return l;
  const token = jwt.sign({ ...decoded.payload, iat: Math.floor(t.clock.now() / 1000) }, t.config.jwt.secret, { algorithm: 'HS256', keyid: decoded.header.kid });
  return { ...l, token, authorization: `Bearer ${token}` };
}
