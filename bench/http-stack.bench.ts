/**
 * Full middleware stack on GET /api/health vs bare Express 5, same machine, same run: bare
 * Express on its own server (app.listen, the baseline), and bare Express on the server the
 * API runs on (createHttpServer), so the second ratio is the middleware's cost alone.
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
  const same = await startServer('servers/bare-express.ts', { BARE_SERVER: 'app' });
  const full = await startServer('servers/real-app.ts', env).catch(async (e: Error) => {
    await bare.stop();
    await same.stop();
    await db.close();
    throw e;
  });
  const servers = { bare, same, full };
  const results: Record<keyof typeof servers, LoadResult[]> = { bare: [], same: [], full: [] };
  try {
    // Warm-up (JIT) for each.
    for (const s of Object.values(servers)) await load({ url: `${s.url}/api/health`, duration: 2 });
    for (let i = 0; i < rounds; i++) {
      for (const [name, s] of Object.entries(servers) as Array<[keyof typeof servers, typeof bare]>) {
        results[name].push(await loadWithCpu(s.child.pid as number, { url: `${s.url}/api/health`, duration: seconds }));
      }
    }
  } finally {
    for (const s of Object.values(servers)) await s.stop();
    await db.close();
  }
  for (const [name, rs] of Object.entries(results)) for (const r of rs) console.log(`${name.padEnd(5)} ${fmt(r)}`);
  const b = median(results.bare.map((r) => r.rps));
  const sm = median(results.same.map((r) => r.rps));
  const f = median(results.full.map((r) => r.rps));
  const p99 = (rs: LoadResult[]): number => median(rs.map((r) => r.p99));
  console.log(`\nGET /api/health, 20 connections, ${rounds} rounds x ${seconds} s (medians)`);
  console.log(`bare express (app.listen)       : ${Math.round(b)} req/s, p99 ${p99(results.bare)} ms`);
  console.log(`bare express (createHttpServer) : ${Math.round(sm)} req/s, p99 ${p99(results.same)} ms`);
  console.log(`full stack   (createHttpServer) : ${Math.round(f)} req/s, p99 ${p99(results.full)} ms`);
  const bc = median(results.bare.map((r) => r.cpuPerReq ?? 0));
  const fc = median(results.full.map((r) => r.cpuPerReq ?? 0));
  console.log(
    `server CPU per request: bare ${bc.toFixed(0)} µs, full ${fc.toFixed(0)} µs (CPU ratio bare/full = ${(bc / fc).toFixed(3)}: the throughput ratio on an idle core)`,
  );
  console.log(
    `ratio full/bare = ${(f / b).toFixed(3)}  (target >= 0.75); like for like, full/bare on the same server = ${(f / sm).toFixed(3)}`,
  );
}
main().catch((e: Error) => {
  console.error(e);
  process.exit(1);
});
