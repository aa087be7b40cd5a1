import type { Store } from 'express-rate-limit';

export interface RedisStores {
  make: (prefix: string) => Store;
  close: () => Promise<void>;
}

/** Rate-limit stores in Redis (rate-limit-redis), so several instances share one count. */
export async function createRedisStores(url: string): Promise<RedisStores> {
  const { createClient } = await import('redis');
  const { RedisStore } = await import('rate-limit-redis');
  const client = createClient({ url, socket: { connectTimeout: 5000, reconnectStrategy: (n: number) => Math.min(n * 200, 5000) } });
  // Failures surface through failed commands: the rate limiter then fails closed with 503.
  client.on('error', () => undefined);
  await client.connect();
  return {
    make: (prefix) => new RedisStore({ prefix: `fleet-rl:${prefix}`, sendCommand: (...args: string[]) => client.sendCommand(args) }),
    close: async () => {
      await client.quit().catch(() => undefined);
    },
  };
}
