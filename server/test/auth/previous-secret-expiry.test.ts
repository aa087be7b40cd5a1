/**
 * JWT_PREVIOUS_SECRETS entries with an expiry verify until it and are refused after it.
 * Since the switch to asymmetric access tokens (issue 19) the service issues ES256 only; HS256
 * secrets (JWT_SECRET, JWT_PREVIOUS_SECRETS) verify only tokens minted before the switch, so
 * these tests present such pre-switch HS256 tokens, as a client holding one would.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { loadConfig, secretId, type Config } from '../../src/config';
import { ManualClock } from '../../src/lib/clock';
import { createTokenService } from '../../src/services/auth/tokens';
import { testEnv } from '../helpers/env';
import { signJwt } from './oidc-issuer';

function config(env: Record<string, string>, now: number): Config {
  const loaded = loadConfig(testEnv(env), { now });
  if (!loaded.config) throw new Error(`test config invalid: ${JSON.stringify(loaded.errors)}`);
  return loaded.config;
}

/** An HS256 access token as the service issued them before the switch (iat a minute ago). */
function preSwitchToken(secret: string, nowMs: number): { token: string; claims: Record<string, unknown> } {
  const iat = Math.floor(nowMs / 1000) - 60;
  const claims = { sub: randomUUID(), sid: randomUUID(), tid: 'tokens-test', jti: randomUUID(), iat, exp: iat + 900 };
  const token = signJwt(
    { alg: 'HS256', typ: 'JWT', kid: secretId(secret) },
    { ...claims, iss: 'fleet-security-api', aud: 'fleet-security-api' },
    secret,
  );
  return { token, claims };
}

describe('previous JWT secrets with an expiry', () => {
  test('when a token signed with the old secret is verified before the entry expires, then it is accepted; after the expiry (even while remembered), it is refused', () => {
    const clock = new ManualClock(Date.now());
    const oldSecret = randomBytes(48).toString('base64');
    const issued = preSwitchToken(oldSecret, clock.now());
    const until = new Date(clock.now() + 5 * 60_000).toISOString();
    const after = createTokenService(
      config(
        {
          JWT_SECRET: randomBytes(48).toString('base64'),
          JWT_PREVIOUS_SECRETS: `${oldSecret}@${until}`,
          JWT_EXPIRES_IN: '15m',
        },
        clock.now(),
      ),
      clock,
      { legacyHs256Since: clock.now() - 30_000 },
    );
    expect(after.verify(issued.token).claims).toEqual(issued.claims);
    expect(after.verify(issued.token).claims).toEqual(issued.claims);
    clock.advance(5 * 60_000);
    expect(after.verify(issued.token)).toEqual({
      claims: null,
      reason: 'key id retired (its JWT_PREVIOUS_SECRETS entry expired)',
    });
  });

  test('when the entry has no expiry, then tokens signed with it keep verifying (as before; warned about at start-up)', () => {
    const clock = new ManualClock(Date.now());
    const oldSecret = randomBytes(48).toString('base64');
    const issued = preSwitchToken(oldSecret, clock.now());
    const after = createTokenService(
      config(
        { JWT_SECRET: randomBytes(48).toString('base64'), JWT_PREVIOUS_SECRETS: oldSecret, JWT_EXPIRES_IN: '15m' },
        clock.now(),
      ),
      clock,
      { legacyHs256Since: clock.now() - 30_000 },
    );
    clock.advance(10 * 60_000);
    expect(after.verify(issued.token).claims).toEqual(issued.claims);
  });
});
