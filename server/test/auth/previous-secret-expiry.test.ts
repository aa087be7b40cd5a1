/** JWT_PREVIOUS_SECRETS entries with an expiry verify until it and are refused after it. */
import { randomBytes, randomUUID } from 'node:crypto';
import { loadConfig, type Config } from '../../src/config';
import { ManualClock } from '../../src/lib/clock';
import { createTokenService } from '../../src/services/auth/tokens';
import { testEnv } from '../helpers/env';

function config(env: Record<string, string>, now: number): Config {
  const loaded = loadConfig(testEnv(env), { now });
  if (!loaded.config) throw new Error(`test config invalid: ${JSON.stringify(loaded.errors)}`);
  return loaded.config;
}

const ids = () => ({ userId: randomUUID(), sessionId: randomUUID(), tenantId: 'tokens-test' });

describe('previous JWT secrets with an expiry', () => {
  test('when a token signed with the old secret is verified before the entry expires, then it is accepted; after the expiry (even while remembered), it is refused', () => {
    const clock = new ManualClock(Date.now());
    const oldSecret = randomBytes(48).toString('base64');
    const before = createTokenService(config({ JWT_SECRET: oldSecret, JWT_EXPIRES_IN: '15m' }, clock.now()), clock);
    const issued = before.issue(ids());
    const until = new Date(clock.now() + 5 * 60_000).toISOString();
    const after = createTokenService(config({ JWT_SECRET: randomBytes(48).toString('base64'), JWT_PREVIOUS_SECRETS: `${oldSecret}@${until}`, JWT_EXPIRES_IN: '15m' }, clock.now()), clock);
    expect(after.verify(issued.token).claims).toEqual(issued.claims);
    expect(after.verify(issued.token).claims).toEqual(issued.claims);
    clock.advance(5 * 60_000);
    expect(after.verify(issued.token)).toEqual({ claims: null, reason: 'key id retired (its JWT_PREVIOUS_SECRETS entry expired)' });
  });

  test('when the entry has no expiry, then tokens signed with it keep verifying (as before; warned about at start-up)', () => {
    const clock = new ManualClock(Date.now());
    const oldSecret = randomBytes(48).toString('base64');
    const issued = createTokenService(config({ JWT_SECRET: oldSecret }, clock.now()), clock).issue(ids());
    const after = createTokenService(config({ JWT_SECRET: randomBytes(48).toString('base64'), JWT_PREVIOUS_SECRETS: oldSecret }, clock.now()), clock);
    clock.advance(10 * 60_000);
    expect(after.verify(issued.token).claims).toEqual(issued.claims);
  });
});
