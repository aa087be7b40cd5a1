/** Which database the operations scripts use (server/src/ops/db-target.ts and the db-url CLI). */
import fs from 'node:fs';
import path from 'node:path';
import { clusterDir } from '../../src/db/embedded';
import { DbTargetError, describe as describeTarget, resolveDbTarget, toPgEnv, toUrl } from '../../src/ops/db-target';
import { ROOT, run, tmpDir } from './helpers';

const cwd = '/srv/fleet';

describe('resolveDbTarget', () => {
  test('when DATABASE_URL is set, then its parts are decoded (user, password, IPv6 host, port, database, sslmode)', () => {
    // sslrootcert must name a readable file, as the server requires.
    const ca = path.join(tmpDir(), 'ca.pem');
    fs.writeFileSync(ca, 'not checked here');
    const t = resolveDbTarget(
      {
        DATABASE_URL: `postgresql://ops%40corp:p%40ss%3Aw%2Fo rd@[::1]:6543/fleet%20db?sslmode=require&sslrootcert=${ca}`,
      },
      { cwd },
    );
    expect(t).toEqual({
      source: 'DATABASE_URL',
      host: '::1',
      port: 6543,
      database: 'fleet db',
      user: 'ops@corp',
      password: 'p@ss:w/o rd',
      sslmode: 'require',
      sslrootcert: ca,
    });
    expect(toPgEnv(t)).toEqual({
      PGHOST: '::1',
      PGPORT: '6543',
      PGDATABASE: 'fleet db',
      PGUSER: 'ops@corp',
      PGPASSWORD: 'p@ss:w/o rd',
      PGSSLMODE: 'require',
      PGSSLROOTCERT: ca,
    });
    expect(resolveDbTarget({ DATABASE_URL: toUrl(t) }, { cwd })).toEqual(t);
    expect(describeTarget(t)).toBe('ops@corp@[::1]:6543/fleet db (DATABASE_URL)');
    expect(describeTarget(t)).not.toContain('p@ss');
  });

  test('when DATABASE_URL and DATABASE_* parts are both set, then DATABASE_URL wins; DATABASE_SSL applies, and a contradicting sslmode is refused as by the server', () => {
    const t = resolveDbTarget(
      { DATABASE_URL: 'postgres://a@db.internal/x', DATABASE_HOST: 'other', DATABASE_SSL: 'verify-full' },
      { cwd },
    );
    expect(t).toMatchObject({ host: 'db.internal', port: 5432, user: 'a', password: null, sslmode: 'verify-full' });
    expect(toPgEnv(t)).not.toHaveProperty('PGPASSWORD');
    // (This used to let DATABASE_SSL override the URL silently; the server refuses the contradiction, so the scripts do too.)
    expect(() =>
      resolveDbTarget(
        { DATABASE_URL: 'postgres://a@db.internal/x?sslmode=disable', DATABASE_SSL: 'verify-full' },
        { cwd },
      ),
    ).toThrow('DATABASE_SSL: is verify-full but DATABASE_URL says sslmode=disable');
  });

  test('when MIGRATION_DATABASE_URL is set, then the scripts use the owner login; alone (a backup job) it is enough', () => {
    const env = {
      DATABASE_URL: 'postgres://fleet_api:x1-Runtime-Pw@db.internal/fleet',
      MIGRATION_DATABASE_URL: 'postgres://fleet_owner:x1-Owner-Pw@db.internal/fleet',
      DATABASE_SSL: 'require',
    };
    expect(resolveDbTarget(env, { cwd })).toMatchObject({
      source: 'MIGRATION_DATABASE_URL',
      user: 'fleet_owner',
      password: 'x1-Owner-Pw',
      sslmode: 'require',
    });
    expect(
      resolveDbTarget({ NODE_ENV: 'production', MIGRATION_DATABASE_URL: env.MIGRATION_DATABASE_URL }, { cwd }),
    ).toMatchObject({ source: 'MIGRATION_DATABASE_URL', user: 'fleet_owner', sslmode: 'verify-full' });
  });

  test('when only DATABASE_* parts are set, then they are used; production defaults to verify-full for a remote host', () => {
    const parts = {
      DATABASE_HOST: 'db.example.net',
      DATABASE_PORT: '5433',
      DATABASE_NAME: 'fleet',
      DATABASE_USER: 'owner',
      DATABASE_PASSWORD: 'pw',
    };
    expect(resolveDbTarget(parts, { cwd })).toMatchObject({
      source: 'DATABASE_HOST',
      host: 'db.example.net',
      port: 5433,
      database: 'fleet',
      user: 'owner',
      password: 'pw',
      sslmode: 'disable',
    });
    expect(resolveDbTarget({ ...parts, NODE_ENV: 'production' }, { cwd }).sslmode).toBe('verify-full');
    expect(resolveDbTarget({ ...parts, DATABASE_HOST: '127.0.0.1', NODE_ENV: 'production' }, { cwd }).sslmode).toBe(
      'disable',
    );
  });

  test('when the settings are unusable, then the error names the variable and the fix', () => {
    // The server's messages (config.ts parseDatabaseSettings): the scripts accept exactly what it accepts.
    const cases: Array<[Record<string, string>, string]> = [
      [{ DATABASE_URL: 'mysql://a@b/c' }, 'DATABASE_URL: must be a postgres:// or postgresql:// URL'],
      [{ DATABASE_URL: 'not a url' }, 'DATABASE_URL: must be a postgres:// or postgresql:// URL'],
      [{ DATABASE_URL: 'postgres://a@b' }, 'DATABASE_URL: names no database'],
      [{ DATABASE_URL: 'postgres://a@b/c?sslmode=maybe' }, 'sslmode must be disable, require or verify-full'],
      [{ DATABASE_URL: 'postgres://a@b:99999/c' }, 'DATABASE_URL: must be a postgres:// or postgresql:// URL'],
      [{ DATABASE_HOST: 'h', DATABASE_USER: 'u' }, 'DATABASE_NAME: is required'],
      [{ DATABASE_HOST: 'h', DATABASE_NAME: 'n' }, 'DATABASE_USER: is required'],
      [
        { DATABASE_HOST: 'h', DATABASE_NAME: 'n', DATABASE_USER: 'u', DATABASE_PORT: 'x' },
        'DATABASE_PORT: must be a whole number',
      ],
      [
        { DATABASE_URL: 'postgres://a@b/c', DATABASE_SSL: 'on' },
        'DATABASE_SSL: must be disable, require or verify-full',
      ],
      [{ NODE_ENV: 'production' }, 'DATABASE_URL: is required in production'],
      // Weaker than the server: refused now (they were accepted before).
      [
        { DATABASE_URL: 'postgres://a@b/c?host=/var/run/postgresql' },
        'DATABASE_URL: query parameter "host" is not supported',
      ],
      [{ DATABASE_URL: 'postgres://a@b/c?sslmode=prefer' }, 'sslmode must be disable, require or verify-full'],
      [{ DATABASE_URL: 'postgres://a@b/c?sslmode=allow' }, 'sslmode must be disable, require or verify-full'],
      [{ DATABASE_URL: 'postgres://a@b/c?sslmode=verify-ca' }, 'sslmode must be disable, require or verify-full'],
      [
        {
          NODE_ENV: 'production',
          DATABASE_URL: 'postgres://a:Zx81-kLq0-pW3m@db.example.net/c',
          DATABASE_SSL: 'disable',
        },
        'DATABASE_SSL: must be require or verify-full in production',
      ],
      [{ NODE_ENV: 'production', DATABASE_URL: 'postgres://a@db.example.net/c' }, 'DATABASE_URL: has no password'],
    ];
    for (const [env, message] of cases) {
      expect(() => resolveDbTarget(env, { cwd })).toThrow(DbTargetError);
      expect(() => resolveDbTarget(env, { cwd })).toThrow(message);
    }
  });

  test('when nothing is configured outside production, then the running embedded database is found like npm start finds it', () => {
    const project = tmpDir();
    fs.chmodSync(project, 0o755);
    const dataDir = path.join(project, '.data');
    fs.mkdirSync(dataDir);
    expect(() => resolveDbTarget({}, { cwd: project })).toThrow('run `npm start` once');
    fs.writeFileSync(
      path.join(dataDir, 'dev-secrets.json'),
      JSON.stringify({ EMBEDDED_PG_PASSWORD: 'emb+ed/ded pw' }),
      { mode: 0o600 },
    );
    expect(() => resolveDbTarget({}, { cwd: project })).toThrow('it is not running');
    // A live postmaster.pid (this test process stands in for the postmaster) in the cluster folder.
    const cluster = clusterDir(path.join(dataDir, 'pg'));
    fs.mkdirSync(cluster, { recursive: true });
    fs.writeFileSync(
      path.join(cluster, 'postmaster.pid'),
      `${process.pid}\n${cluster}\n1700000000\n54444\n\n127.0.0.1\n`,
    );
    try {
      const t = resolveDbTarget({ NODE_ENV: 'development' }, { cwd: project });
      expect(t).toEqual({
        source: 'embedded',
        host: '127.0.0.1',
        port: 54444,
        database: 'fleet_security',
        user: 'postgres',
        password: 'emb+ed/ded pw',
        sslmode: 'disable',
        sslrootcert: null,
      });
      expect(resolveDbTarget({ FLEET_DATA_DIR: dataDir }, { cwd: '/elsewhere' }).port).toBe(54444);
    } finally {
      fs.rmSync(cluster, { recursive: true, force: true });
      fs.rmSync(project, { recursive: true, force: true });
    }
  });
});

describe('db-url CLI', () => {
  const tsx = path.join(ROOT, 'node_modules/.bin/tsx');
  const cli = path.join(ROOT, 'server/src/cli/db-url.ts');
  const base = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' };

  test('when asked for pgenv, then it prints shell-quoted libpq variables that eval sets and exports, whatever the password holds', async () => {
    const r = await run(tsx, [cli, '--format', 'pgenv'], {
      ...base,
      DATABASE_URL: "postgres://ops:it's=a%20%24(touch%20x)%60y%60@db:5432/fleet",
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^PGHOST='db'\n/);
    const sh = await run('/bin/bash', ['-c', `eval "$1"; env | grep -E '^PG' | sort`, 'bash', r.stdout], base);
    expect(sh.stdout.trim().split('\n')).toEqual([
      'PGDATABASE=fleet',
      'PGHOST=db',
      "PGPASSWORD=it's=a $(touch x)`y`",
      'PGPORT=5432',
      'PGSSLMODE=disable',
      'PGUSER=ops',
    ]);
  });

  test('when asked for pgenv-b64 (the scripts), then it prints base64 libpq variables and a description without the password', async () => {
    const r = await run(tsx, [cli, '--format', 'pgenv-b64'], {
      ...base,
      DATABASE_URL: "postgres://ops:it's=a%20secret@db:5432/fleet",
    });
    expect(r.code).toBe(0);
    const vars = Object.fromEntries(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), Buffer.from(l.slice(l.indexOf('=') + 1), 'base64').toString('utf8')]),
    );
    expect(vars).toEqual({
      PGHOST: 'db',
      PGPORT: '5432',
      PGDATABASE: 'fleet',
      PGUSER: 'ops',
      PGPASSWORD: "it's=a secret",
      PGSSLMODE: 'disable',
      FLEET_DB_DESCRIPTION: 'ops@db:5432/fleet (DATABASE_URL)',
    });
    expect(r.stdout).not.toContain('secret');
  });

  test('when no database is configured in production, then it exits 1 naming DATABASE_URL; a bad flag exits 2', async () => {
    const r = await run(tsx, [cli], { ...base, NODE_ENV: 'production' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('DATABASE_URL: is required in production');
    const bad = await run(tsx, [cli, '--format', 'yaml'], { ...base, DATABASE_URL: 'postgres://a@b/c' });
    expect(bad.code).toBe(2);
    const twice = await run(tsx, [cli, '--format', 'url', '--format', 'describe'], {
      ...base,
      DATABASE_URL: 'postgres://a@b/c',
    });
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain('--format given more than once');
    const bare = await run(tsx, [cli, '--format'], { ...base, DATABASE_URL: 'postgres://a@b/c' });
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('--format needs a value');
  });
});
