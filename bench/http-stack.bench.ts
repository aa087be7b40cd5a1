/**
 * Full middleware stack on GET /api/health vs bare Express 5, same machine, same run.
 * Usage: npx tsx bench/http-stack.bench.ts [seconds-per-round=5] [rounds=3]
 */
import { openBenchDb } from './lib/db';
import { benchServerEnv, fmt, load, loadWithCpu, median, startServer, type LoadResult } from './lib/harness';

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 5);
  const rounds = Number(process.argv[3] ?? 3);
  const db = await openBenchDb();
  const env = benchServerEnv(db.url, {
    NODE_ENV: 'production',
    DATABASE_SSL: 'disable',
    // Never contacted by GET /api/health; the start-up warm-up only logs that it is unreachable.
    AUTH0_DOMAIN: 'bench.invalid',
    AUTH0_CLIENT_ID: 'bench',
    CORS_ORIGINS: 'https://app.example.com',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
  });
  const bare = await startServer('servers/bare-express.ts');
  const full = await startServer('servers/real-app.ts', env).catch(async (e: Error) => {
    await bare.stop();
    await db.close();
    throw e;
  });
  const results: { bare: LoadResult[]; full: LoadResult[] } = { bare: [], full: [] };
  try {
    // Warm-up (JIT) for both.
    await load({ url: `${bare.url}/api/health`, duration: 2 });
    await load({ url: `${full.url}/api/health`, duration: 2 });
    for (let i = 0; i < rounds; i++) {
      results.bare.push(await loadWithCpu(bare.child.pid as number, { url: `${bare.url}/api/health`, duration: seconds }));
      results.full.push(await loadWithCpu(full.child.pid as number, { url: `${full.url}/api/health`, duration: seconds }));
    }
  } finally {
    await bare.stop();
    await full.stop();
    await db.close();
  }
  for (const [name, rs] of Object.entries(results)) for (const r of rs) console.log(`${name.padEnd(5)} ${fmt(r)}`);
  const b = median(results.bare.map((r) => r.rps));
  const f = median(results.full.map((r) => r.rps));
  const bp99 = median(results.bare.map((r) => r.p99));
  const fp99 = median(results.full.map((r) => r.p99));
  console.log(`\nGET /api/health, 20 connections, ${rounds} rounds x ${seconds} s (medians)`);
  console.log(`bare express : ${Math.round(b)} req/s, p99 ${bp99} ms`);
  console.log(`full stack   : ${Math.round(f)} req/s, p99 ${fp99} ms`);
  const bc = median(results.bare.map((r) => r.cpuPerReq ?? 0));
  const fc = median(results.full.map((r) => r.cpuPerReq ?? 0));
  console.log(`server CPU per request: bare ${bc.toFixed(0)} µs, full ${fc.toFixed(0)} µs (CPU ratio bare/full = ${(bc / fc).toFixed(3)}: the throughput ratio on an idle core)`);
  console.log(`ratio full/bare = ${(f / b).toFixed(3)}  (target >= 0.75)`);
}
main().catch((e: Error) => {
  console.error(e);
  process.exit(1);
});
