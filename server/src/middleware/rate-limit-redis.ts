import type { Store } from 'express-rate-limit';
import type { Logger } from '../lib/logger';

export interface RedisStores {
  make: (prefix: string) => Store;
  close: () => Promise<void>;
}

/** Rate-limit stores in Redis (rate-limit-redis), so several instances share one count. */
export async function createRedisStores(url: string, logger?: Pick<Logger, 'warn' | 'info'>): Promise<RedisStores> {
  const { createClient } = await import('redis');
  const { RedisStore } = await import('rate-limit-redis');
  const client = createClient({
    url,
    socket: { connectTimeout: 5000, reconnectStrategy: (n: number) => Math.min(n * 200, 5000) },
  });
  // Failures surface through failed commands: the rate limiter then fails closed with 503.
  // The listener is what keeps a lost connection from ending the process; the client
  // reconnects by itself. Logged once per outage (not once per reconnect attempt).
  let down = false;
  client.on('error', (err: Error) => {
    if (down) return;
    down = true;
    logger?.warn('rate-limit store (Redis) connection lost; reconnecting', {
      err: { message: err.message, code: (err as { code?: string }).code },
    });
  });
  client.on('ready', () => {
    if (!down) return;
    down = false;
    logger?.info('rate-limit store (Redis) connection restored');
  });
  await client.connect();
  return {
    make: (prefix) =>
      new RedisStore({ prefix: `fleet-rl:${prefix}`, sendCommand: (...args: string[]) => client.sendCommand(args) }),
    close: async () => {
      await client.quit().catch(() => undefined);
    },
  };
}
