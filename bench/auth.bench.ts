/**
 * Authentication benchmark (npx tsx bench/auth.bench.ts), loopback only, ~45 s.
 *
 *  1. POST /login latency, one client in sequence, with a warm JWKS cache (local OIDC issuer
 *     with a real RSA key) — against GET /api/health latency measured the same way.
 *  2. POST /login under load (autocannon, 10 connections).
 *  3. GET /user (Bearer token → session lookup → user's current role; 10 sessions opened after
 *     the login burst, one per connection) req/s against
 *     GET /api/health req/s, same server, rounds alternated.
 *  4. The per-request session lookup query alone (FIND_SESSION_FOR_AUTH) against `SELECT 1`
 *     through the same pool.
 *  5. Identity (CONTRACT §10–§11), 4 rounds of pairs run back to back (3 s each), the order
 *     swapped each round, ratio = median of the rounds' ratios (plus server CPU per request): GET
 *     /user with today's ES256 access tokens against the same sessions' pre-upgrade HS256
 *     tokens (still accepted in the upgrade window); POST /oauth/introspect (API key) against
 *     GET /user; POST /audit/log authenticated by an API key against the same with a Bearer
 *     access token.
 *
 * Database: BENCH_DATABASE_URL or TEST_DATABASE_URL (a throw-away database is created on that
 * server and dropped afterwards), else an embedded PostgreSQL in a temporary directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { openBenchDb } from './lib/db';
import { benchServerEnv, cpuMicros } from './lib/harness';
import { systemClock } from '../server/src/lib/clock';
import { FIND_SESSION_FOR_AUTH, findSessionForAuth } from '../server/src/services/auth/session-repository';
import { startIssuer, signJwt } from '../server/test/auth/oidc-issuer';
import { loadConfig, secretId } from '../server/src/config';
import { createTokenService } from '../server/src/services/auth/tokens';
import { generateSigningKey } from '../server/src/lib/jws-keys';

interface Load {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

function startApp(env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(__dirname, 'servers/real-app.ts')], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      const m = /LISTENING (http:\/\/\S+)/.exec(buf);
      if (m) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve({ url: m[1] as string, child });
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`auth-app exited early (${code})`)));
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function call(
  url: string,
  method: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method, agent, headers: body ? { 'content-type': 'application/json', ...headers } : headers },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function sequential(n: number, fn: () => Promise<number>): Promise<{ p50: number; p99: number }> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const status = await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (status !== 200) throw new Error(`unexpected status ${status}`);
  }
  times.sort((a, b) => a - b);
  return { p50: pct(times, 50), p99: pct(times, 99) };
}

async function load(opts: {
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  duration?: number;
  connections?: number;
  /** One Authorization header per connection (connection i uses entry i mod length). */
  perConnectionAuth?: string[];
  /** A new body for every request (a login's ID token is usable once). */
  bodies?: () => string;
}): Promise<Load> {
  let next = 0;
  const perConn = opts.perConnectionAuth;
  const r = await autocannon({
    url: opts.url,
    method: opts.method ?? 'GET',
    headers: opts.headers,
    body: opts.body,
    connections: opts.connections ?? 10,
    duration: opts.duration ?? 5,
    setupClient: perConn
      ? (client) => client.setHeaders({ ...opts.headers, authorization: perConn[next++ % perConn.length] as string })
      : undefined,
    requests: opts.bodies
      ? [{ setupRequest: (req) => ({ ...req, body: (opts.bodies as () => string)() }) }]
      : undefined,
  });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors };
}

const fmt = (r: Load) =>
  `${Math.round(r.rps).toString().padStart(6)} req/s  p50 ${r.p50.toFixed(1).padStart(5)} ms  p99 ${r.p99.toFixed(1).padStart(5)} ms  non2xx ${r.non2xx} errors ${r.errors}`;

async function main(): Promise<void> {
  const started = Date.now();
  const db = await openBenchDb();
  const issuer = await startIssuer();
  let child: ChildProcess | null = null;
  const owner = new pg.Pool({ connectionString: db.url, max: 2 });
  owner.on('error', () => undefined); // an idle client cut off when the database is dropped at the end
  try {
    const email = 'bench.user@example.com';
    const tenant = 'bench';
    await owner.query(
      `INSERT INTO users (tenant_id, email, role, display_name) VALUES ($1, $2, 'user', 'Bench User')`,
      [tenant, email],
    );
    const adminEmail = 'bench.admin@example.com';
    await owner.query(
      `INSERT INTO users (tenant_id, email, role, display_name) VALUES ($1, $2, 'admin', 'Bench Admin')`,
      [tenant, adminEmail],
    );

    const serverEnv = benchServerEnv(db.url, { JWT_SIGNING_KEY: generateSigningKey('ES256') });
    const app = await startApp({
      ...serverEnv,
      NODE_ENV: 'test',
      FLEET_DATA_DIR: os.tmpdir(),
      LOG_LEVEL: 'warn',
      DB_POOL_SIZE: '10',
      ...issuer.env(),
    });
    child = app.child;
    const base = app.url;
    // Every login needs its own ID token (each is accepted once, as from a real IdP). They are
    // signed here before any timing starts, so the load generator's RSA signing is not measured.
    const freshBodies = (n: number): string[] =>
      Array.from({ length: n }, () => JSON.stringify({ email, idToken: issuer.idToken(systemClock, email) }));
    // ~0.35 ms each; 15,000 cover 5 s of logins at 3,000/s. Should a run use them all, they are
    // reused: those logins are refused as replays and show as non2xx in the output.
    const loginBodies = freshBodies(15_000 + 100 + 500 + 11);
    const adminLoginBody = JSON.stringify({ email: adminEmail, idToken: issuer.idToken(systemClock, adminEmail) });
    let nextBody = 0;
    const loginBody = (): string => loginBodies[nextBody++ % loginBodies.length] as string;

    // Warm-up: discovery + JWKS fetched once, JIT warm.
    const first = await call(`${base}/api/v1/security/login`, 'POST', loginBody());
    if (first.status !== 200) throw new Error(`warm-up login failed: ${first.status} ${first.body}`);
    const token = (JSON.parse(first.body) as { token: string }).token;
    await sequential(100, async () => (await call(`${base}/api/v1/security/login`, 'POST', loginBody())).status);
    await sequential(100, async () => (await call(`${base}/api/health`, 'GET')).status);

    // Baseline for login: the raw database work of a login (one transaction: session insert +
    // audit insert, committed), through pg directly, without HTTP, token checks or the service.
    const userId = (await owner.query<{ id: string }>('SELECT id FROM users WHERE email = $1', [email])).rows[0]?.id;
    const rawPool = new pg.Pool({ connectionString: db.url, max: 2, options: '-c role=fleet_app' });
    rawPool.on('error', () => undefined);
    const rawLoginTx = async () => {
      const c = await rawPool.connect();
      try {
        await c.query('BEGIN');
        // The tenant context row-level security requires (as withTenant sets it).
        await c.query("SELECT set_config('app.tenant_id', $1, true)", [tenant]);
        await c.query(
          `INSERT INTO sessions (user_id, tenant_id, idle_expires_at, absolute_expires_at, ip_address, user_agent) VALUES ($1, $2, now() + interval '30 minutes', now() + interval '1 day', '127.0.0.1', 'raw')`,
          [userId, tenant],
        );
        await c.query(
          `INSERT INTO audit_logs (tenant_id, user_id, action, resource_type, resource_id) VALUES ($1, $2, 'auth.login.success', 'user', $3)`,
          [tenant, userId, email],
        );
        await c.query('COMMIT');
      } finally {
        c.release();
      }
      return 200;
    };
    await sequential(50, rawLoginTx);

    const healthSeq = await sequential(500, async () => (await call(`${base}/api/health`, 'GET')).status);
    const rawSeq = await sequential(500, rawLoginTx);
    const loginSeq = await sequential(
      500,
      async () => (await call(`${base}/api/v1/security/login`, 'POST', loginBody())).status,
    );
    const jwksFetches = issuer.jwksRequests;
    await rawPool.end();

    const loginLoad = await load({
      url: `${base}/api/v1/security/login`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      bodies: loginBody,
    });

    // GET /user as 10 clients would send it: one session (and token) per connection, opened
    // right after the login burst above (new rows the table statistics do not know yet), so
    // each request's session check reads a different, fresh session row.
    const sessionTokens: string[] = [];
    for (let i = 0; i < 10; i++) {
      const l = await call(`${base}/api/v1/security/login`, 'POST', loginBody());
      sessionTokens.push(`Bearer ${(JSON.parse(l.body) as { token: string }).token}`);
    }
    const health: Load[] = [];
    const user: Load[] = [];
    for (let round = 0; round < 2; round++) {
      health.push(await load({ url: `${base}/api/health` }));
      user.push(await load({ url: `${base}/api/v1/security/user`, perConnectionAuth: sessionTokens }));
    }
    const best = (xs: Load[]) => xs.reduce((a, b) => (b.rps > a.rps ? b : a));
    const h = best(health);
    const u = best(user);

    // 5. Identity. The same 10 sessions with pre-upgrade HS256 tokens (JWT_SECRET, iat before
    // the switch recorded in auth_token_upgrade): "today's" tokens, verified by the legacy path.
    const since = (
      await owner.query<{ s: Date }>('SELECT asymmetric_since AS s FROM auth_token_upgrade')
    ).rows[0]?.s.getTime() as number;
    const hsTokens = sessionTokens.map((b) => {
      const p = JSON.parse(
        Buffer.from((b.split(' ')[1] as string).split('.')[1] as string, 'base64url').toString(),
      ) as Record<string, unknown>;
      const iat = Math.floor(since / 1000) - 1;
      return `Bearer ${signJwt({ alg: 'HS256', typ: 'JWT', kid: secretId(serverEnv.JWT_SECRET as string) }, { sub: p.sub, sid: p.sid, tid: p.tid, jti: `hs-${String(p.jti)}`, iat, exp: iat + 900, iss: 'fleet-security-api', aud: 'fleet-security-api' }, serverEnv.JWT_SECRET as string)}`;
    });
    if (
      (await call(`${base}/api/v1/security/user`, 'GET', undefined, { authorization: hsTokens[0] as string }))
        .status !== 200
    )
      throw new Error('HS256 token refused');
    const adminLogin = JSON.parse((await call(`${base}/api/v1/security/login`, 'POST', adminLoginBody)).body) as {
      token: string;
    };
    const mkKey = async (scopes: string[]) => {
      const r = await call(`${base}/api/v1/security/api-keys`, 'POST', JSON.stringify({ name: 'bench', scopes }), {
        authorization: `Bearer ${adminLogin.token}`,
      });
      if (r.status !== 201) throw new Error(`api key: ${r.status} ${r.body}`);
      return `Bearer ${(JSON.parse(r.body) as { key: string }).key}`;
    };
    const introspectKey = await mkKey(['tokens:introspect']);
    const writeKey = await mkKey(['audit:write']);
    const introspectBody = `token=${encodeURIComponent((sessionTokens[0] as string).split(' ')[1] as string)}`;
    const auditBody = JSON.stringify({ action: 'bench.event', resourceType: 'bench', resourceId: 'r1' });
    // Each comparison is a pair run back to back (3 s each), the order swapped every round, 4
    // rounds; its ratio is the median of the per-round ratios (one run hit by another
    // process's burst moves it little). A ratio of bests mixes rounds: the second
    // round runs behind ~30,000 audit rows of the first (the sealer and autovacuum still at
    // work), and whichever run of a pair went second in that round looked slower (the ES256
    // ÷ HS256 "gap" of 0.83–0.89 was that: same server CPU per request for both, and the same
    // ES256 tokens measured as GET /user in the same rounds beat the HS256 runs).
    const pid = child.pid as number;
    const PAIR_SECONDS = 3;
    const PAIR_ROUNDS = 4;
    const withCpu = async (run: () => Promise<Load>): Promise<Load & { cpu: number }> => {
      const c0 = cpuMicros(pid);
      const r = await run();
      return { ...r, cpu: (cpuMicros(pid) - c0) / Math.max(1, r.rps * PAIR_SECONDS) };
    };
    type Measured = Load & { cpu: number };
    interface Pair {
      a: Measured[];
      b: Measured[];
    }
    const runPair = async (p: Pair, round: number, a: () => Promise<Load>, b: () => Promise<Load>) => {
      if (round % 2 === 0) {
        p.a.push(await withCpu(a));
        p.b.push(await withCpu(b));
      } else {
        p.b.push(await withCpu(b));
        p.a.push(await withCpu(a));
      }
    };
    const medianOf = (xs: number[]) => {
      const s = [...xs].sort((x, y) => x - y);
      const m = Math.floor(s.length / 2);
      return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
    };
    const pairRatio = (p: Pair) => medianOf(p.a.map((x, i) => x.rps / (p.b[i] as Measured).rps));
    const cpuOf = (xs: Measured[]) => medianOf(xs.map((x) => x.cpu));
    const esHs: Pair = { a: [], b: [] };
    const introUser: Pair = { a: [], b: [] };
    const keyBearer: Pair = { a: [], b: [] };
    for (let round = 0; round < PAIR_ROUNDS; round++) {
      await runPair(
        esHs,
        round,
        () => load({ url: `${base}/api/v1/security/user`, perConnectionAuth: sessionTokens, duration: PAIR_SECONDS }),
        () => load({ url: `${base}/api/v1/security/user`, perConnectionAuth: hsTokens, duration: PAIR_SECONDS }),
      );
      await runPair(
        introUser,
        round,
        () =>
          load({
            url: `${base}/oauth/introspect`,
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: introspectKey },
            body: introspectBody,
            duration: PAIR_SECONDS,
          }),
        () => load({ url: `${base}/api/v1/security/user`, perConnectionAuth: sessionTokens, duration: PAIR_SECONDS }),
      );
      await runPair(
        keyBearer,
        round,
        () =>
          load({
            url: `${base}/api/v1/security/audit/log`,
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: writeKey },
            body: auditBody,
            duration: PAIR_SECONDS,
          }),
        () =>
          load({
            url: `${base}/api/v1/security/audit/log`,
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            perConnectionAuth: sessionTokens,
            body: auditBody,
            duration: PAIR_SECONDS,
          }),
      );
    }
    const [esB, hsB, introB, user2B, keyB, bearerB] = [
      best(esHs.a),
      best(esHs.b),
      best(introUser.a),
      best(introUser.b),
      best(keyBearer.a),
      best(keyBearer.b),
    ];
    // Signature verification alone (no verified-token table: every call checks the signature),
    // in this process: ES256 with the parsed public key against HS256 with the secret.
    const benchCfg = loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: db.url,
      JWT_SECRET: serverEnv.JWT_SECRET,
      FLEET_ENCRYPTION_KEY: serverEnv.FLEET_ENCRYPTION_KEY,
      JWT_SIGNING_KEY: serverEnv.JWT_SIGNING_KEY,
    }).config;
    if (!benchCfg) throw new Error('bench config');
    const rawTokens = createTokenService(benchCfg, systemClock, { verifiedCacheMax: 0, legacyHs256Since: since });
    const esTok = (sessionTokens[0] as string).split(' ')[1] as string;
    const hsTok = (hsTokens[0] as string).split(' ')[1] as string;
    const perVerify = (tok: string) => {
      for (let i = 0; i < 2000; i++) rawTokens.verify(tok);
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 20_000; i++) if (!rawTokens.verify(tok).claims) throw new Error('verify failed');
      return Number(process.hrtime.bigint() - t0) / 20_000 / 1000;
    };
    const esUs = perVerify(esTok);
    const hsUs = perVerify(hsTok);

    // The per-request session lookup alone, as the app role, against SELECT 1 on the same pool.
    const claims = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as {
      sid: string;
      tid: string;
      sub: string;
    };
    const appPool = new pg.Pool({ connectionString: db.url, max: 1, options: '-c role=fleet_app' });
    const q = async (text: string, values: unknown[]) => {
      await appPool.query(text, values);
      return 200;
    };
    const lookupOnce = async () =>
      (await findSessionForAuth(appPool, claims.sid, claims.tid, claims.sub)) ? 200 : 404;
    await sequential(200, lookupOnce);
    await sequential(200, () => q('SELECT 1', []));
    const select1 = await sequential(3000, () => q('SELECT 1', []));
    const lookup = await sequential(3000, lookupOnce);
    const plan = await owner.query(`EXPLAIN (COSTS OFF) ${FIND_SESSION_FOR_AUTH}`, [
      claims.sid,
      claims.tid,
      claims.sub,
    ]);
    await appPool.end();

    const line = '-'.repeat(78);
    process.stdout.write(
      [
        '',
        'Authentication benchmark (loopback, server in a child process, 10 connections for load runs)',
        line,
        'Sequential, one client (500 requests each):',
        `  GET  /api/health                     p50 ${healthSeq.p50.toFixed(2)} ms   p99 ${healthSeq.p99.toFixed(2)} ms   (baseline)`,
        `  raw pg login transaction (no HTTP)   p50 ${rawSeq.p50.toFixed(2)} ms   p99 ${rawSeq.p99.toFixed(2)} ms   (baseline: BEGIN, 2 INSERTs, COMMIT)`,
        `  POST /api/v1/security/login (warm)   p50 ${loginSeq.p50.toFixed(2)} ms   p99 ${loginSeq.p99.toFixed(2)} ms   (target p99 < 25 ms)`,
        `  login p50 / raw transaction p50 = ${(loginSeq.p50 / rawSeq.p50).toFixed(2)}x; JWKS fetched ${jwksFetches} time(s) for ${700 + 1} logins`,
        line,
        `Under load (autocannon 5 s):`,
        `  POST /login        ${fmt(loginLoad)}`,
        `  GET  /api/health   ${fmt(h)}   (best of 2 rounds)`,
        `  GET  /user         ${fmt(u)}   (best of 2 rounds; 10 new sessions, one per connection)`,
        `  GET /user req/s ÷ health req/s = ${(u.rps / h.rps).toFixed(2)}   (target ≥ 0.6)`,
        line,
        'Identity (autocannon 3 s; each pair back to back, order swapped each round, 4 rounds; ratio = median of the',
        'rounds\' ratios; lines show the best round; "cpu" = median server process CPU per request, database excluded):',
        `  GET  /user ES256 token        ${fmt(esB)}  cpu ${cpuOf(esHs.a).toFixed(0)} µs`,
        `  GET  /user HS256 token (pre-upgrade)  ${fmt(hsB)}  cpu ${cpuOf(esHs.b).toFixed(0)} µs`,
        `  ES256 ÷ HS256 = ${pairRatio(esHs).toFixed(2)}   (target ≥ 0.9; ratio of bests ${(esB.rps / hsB.rps).toFixed(2)}; server CPU per request HS256 ÷ ES256 ${(cpuOf(esHs.b) / cpuOf(esHs.a)).toFixed(2)}; both keep verified tokens in the verified-token table)`,
        `  one full verification without the table: ES256 ${esUs.toFixed(1)} µs, HS256 ${hsUs.toFixed(1)} µs`,
        `  POST /oauth/introspect (API key)  ${fmt(introB)}  cpu ${cpuOf(introUser.a).toFixed(0)} µs`,
        `  GET  /user (same rounds)      ${fmt(user2B)}  cpu ${cpuOf(introUser.b).toFixed(0)} µs`,
        `  introspection ÷ GET /user = ${pairRatio(introUser).toFixed(2)}   (target ≥ 0.8; ratio of bests ${(introB.rps / user2B.rps).toFixed(2)}; server CPU per request GET /user ÷ introspection ${(cpuOf(introUser.b) / cpuOf(introUser.a)).toFixed(2)}; each introspection also commits its key.api.used audit row)`,
        `  POST /audit/log, API key      ${fmt(keyB)}  cpu ${cpuOf(keyBearer.a).toFixed(0)} µs`,
        `  POST /audit/log, Bearer       ${fmt(bearerB)}  cpu ${cpuOf(keyBearer.b).toFixed(0)} µs`,
        `  API key ÷ Bearer = ${pairRatio(keyBearer).toFixed(2)}   (target ≥ 0.9; ratio of bests ${(keyB.rps / bearerB.rps).toFixed(2)}; server CPU per request Bearer ÷ key ${(cpuOf(keyBearer.b) / cpuOf(keyBearer.a)).toFixed(2)}; the event row names the key and is its use record)`,
        `  login p99 with a warm JWKS: ${loginSeq.p99.toFixed(2)} ms   (target < 15 ms)`,
        line,
        'Per-request session lookup (one indexed, prepared query as the app runs it; 3000 sequential, pool as fleet_app):',
        `  SELECT 1                p50 ${(select1.p50 * 1000).toFixed(0)} µs   p99 ${(select1.p99 * 1000).toFixed(0)} µs   (baseline)`,
        `  FIND_SESSION_FOR_AUTH   p50 ${(lookup.p50 * 1000).toFixed(0)} µs   p99 ${(lookup.p99 * 1000).toFixed(0)} µs   ratio p50 ${(lookup.p50 / select1.p50).toFixed(2)}x`,
        `  plan: ${plan.rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN'].trim()).join(' | ')}`,
        line,
        `total ${((Date.now() - started) / 1000).toFixed(0)} s`,
        '',
      ].join('\n'),
    );
  } finally {
    if (child) {
      const c = child;
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGTERM');
      });
    }
    agent.destroy();
    await owner.end();
    await issuer.stop();
    await db.close();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`auth bench failed: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
