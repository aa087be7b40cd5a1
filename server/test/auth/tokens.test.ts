import { randomBytes, randomUUID } from 'node:crypto';
import { loadConfig, secretId, type Config } from '../../src/config';
import { ManualClock } from '../../src/lib/clock';
import { createTokenService } from '../../src/services/auth/tokens';
import { testEnv } from '../helpers/env';
import { signJwt } from './oidc-issuer';

function config(env: Record<string, string> = {}): Config {
  const loaded = loadConfig(testEnv(env));
  if (!loaded.config) throw new Error('test config invalid');
  return loaded.config;
}

const ids = () => ({ userId: randomUUID(), sessionId: randomUUID(), tenantId: 'tokens-test' });
const segments = (token: string) => token.split('.') as [string, string, string];
const payloadOf = (token: string) =>
  JSON.parse(Buffer.from(segments(token)[1], 'base64url').toString()) as Record<string, unknown>;

describe('access token verification and the verified-token table', () => {
  test('when the same genuine token is verified again, then the claims are the same and the token is remembered once', () => {
    const tokens = createTokenService(config(), new ManualClock(Date.now()));
    const issued = tokens.issue(ids());
    const first = tokens.verify(issued.token);
    const second = tokens.verify(issued.token);
    expect(first.claims).toEqual(issued.claims);
    expect(second.claims).toEqual(issued.claims);
    expect(tokens.cachedCount()).toBe(1);
    expect(Object.isFrozen(second.claims)).toBe(true);
  });

  test('when a remembered token runs past exp (+5 s skew), then it is refused as expired, exactly as on first sight', () => {
    const clock = new ManualClock(Date.now());
    const tokens = createTokenService(config({ JWT_EXPIRES_IN: '1m' }), clock);
    const issued = tokens.issue(ids());
    expect(tokens.verify(issued.token).claims).not.toBeNull();
    clock.advance((issued.claims.exp - Math.floor(clock.now() / 1000)) * 1000 + 4_000);
    expect(tokens.verify(issued.token).claims).not.toBeNull(); // inside the skew
    clock.advance(2_000);
    expect(tokens.verify(issued.token)).toEqual({ claims: null, reason: 'access token expired', expired: true });
    expect(tokens.cachedCount()).toBe(0);
  });

  test('when a remembered token is altered (payload, signature or one character appended), then the change is verified in full and refused', () => {
    const c = config();
    const tokens = createTokenService(c, new ManualClock(Date.now()));
    const issued = tokens.issue(ids());
    expect(tokens.verify(issued.token).claims).not.toBeNull();
    const [h, p, s] = segments(issued.token);
    const otherTenant = Buffer.from(JSON.stringify({ ...payloadOf(issued.token), tid: 'someone-else' })).toString(
      'base64url',
    );
    expect(tokens.verify(`${h}.${otherTenant}.${s}`)).toMatchObject({
      claims: null,
      reason: 'verification failed: invalid signature',
    });
    const flipped = s.slice(0, -2) + (s.at(-2) === 'A' ? 'B' : 'A') + s.slice(-1);
    expect(tokens.verify(`${h}.${p}.${flipped}`).claims).toBeNull();
    expect(tokens.verify(`${issued.token}A`).claims).toBeNull();
    expect(tokens.cachedCount()).toBe(1);
  });

  test('when forged tokens are presented many times, then none of them is remembered', () => {
    const secret = randomBytes(48).toString('base64');
    const tokens = createTokenService(config({ JWT_SECRET: secret }), new ManualClock(Date.now()));
    const payload = { ...tokens.issue(ids()).claims, iss: 'x', aud: 'y' };
    for (let i = 0; i < 50; i++) {
      expect(
        tokens.verify(
          signJwt(
            { alg: 'HS256', typ: 'JWT', kid: secretId(secret) },
            { ...payload, jti: `f${i}` },
            randomBytes(48).toString('base64'),
          ),
        ).claims,
      ).toBeNull();
      expect(
        tokens.verify(
          signJwt({ alg: 'none', typ: 'JWT', kid: secretId(secret) }, { ...payload, jti: `n${i}` }, '', 'none'),
        ).claims,
      ).toBeNull();
    }
    expect(tokens.cachedCount()).toBe(0);
  });

  test('when more distinct tokens are verified than the table holds, then it stays at its bound and evicted tokens still verify in full', () => {
    const tokens = createTokenService(config(), new ManualClock(Date.now()), { verifiedCacheMax: 3 });
    const issued = Array.from({ length: 5 }, () => tokens.issue(ids()));
    for (const t of issued) expect(tokens.verify(t.token).claims).toEqual(t.claims);
    expect(tokens.cachedCount()).toBe(3);
    expect(tokens.verify((issued[0] as { token: string }).token).claims).toEqual(
      (issued[0] as { claims: unknown }).claims,
    );
    expect(tokens.cachedCount()).toBe(3);
  });
});
