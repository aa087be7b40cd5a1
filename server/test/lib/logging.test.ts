import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { createAccessLogWriter, createLogger } from '../../src/lib/logger';
import { redact, redactString } from '../../src/lib/redact';
import { buildTestApp, captureTransport } from '../helpers/app';
import { loginAs } from '../helpers/auth';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';

describe('log redaction', () => {
  test('when a log entry carries tokens, passwords, keys, cookies or an Authorization header, then none reach the transport', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', console: false, transports: [captureTransport(lines)] });
    log.info(`user sent ${JWT}`, {
      password: 'hunter2-password',
      headers: { authorization: `Bearer ${JWT}`, cookie: 'fleet_refresh=abcdef123456', 'x-api-key': 'k-123456789' },
      nested: { refreshToken: 'rt-abcdefghijkl', apiKey: 'ak-abcdefghijkl', privateKey: '-----BEGIN' },
      dsn: 'postgres://app:SuperSecretPw1@db:5432/fleet',
      note: `Authorization: Bearer ${JWT}`,
    });
    const out = lines.join('\n');
    for (const secret of [
      JWT,
      'hunter2-password',
      'fleet_refresh=abcdef123456',
      'k-123456789',
      'rt-abcdefghijkl',
      'ak-abcdefghijkl',
      '-----BEGIN',
      'SuperSecretPw1',
    ]) {
      expect(out).not.toContain(secret);
    }
    expect(out).toContain('[REDACTED]');
  });

  test('when free text carries name=value secrets (query strings, messages, env dumps), then their values are masked and the names kept', () => {
    expect(redactString('GET /hook?token=tkn-9f8e7d&page=2')).toBe('GET /hook?token=[REDACTED]&page=2');
    expect(redactString('login retried with password="two words" then PASSWORD=x9')).toBe(
      'login retried with password=[REDACTED] then PASSWORD=[REDACTED]',
    );
    expect(redactString('client_secret=abc; api-key=k1 access_token=t1')).toBe(
      'client_secret=[REDACTED]; api-key=[REDACTED] access_token=[REDACTED]',
    );
    expect(redactString('DB_PASSWORD=s3cret csrf_token=abc aws_secret_access_key=AKIA1')).toBe(
      'DB_PASSWORD=[REDACTED] csrf_token=[REDACTED] aws_secret_access_key=[REDACTED]',
    );
    expect(redactString('redis://:pw-only@cache:6379')).toBe('redis://:[REDACTED]@cache:6379');
    for (const plain of [
      'access token expired',
      'unknown key id',
      'role user lacks audit:read:tenant',
      'keyId=kv-1 rotated',
      'token reuse detected',
      'Invalid password: too short',
      'tests pass: 10',
      'secret:prod/db',
    ]) {
      expect(redactString(plain)).toBe(plain);
    }
  });

  test('when redacting, then ordinary fields stay readable', () => {
    expect(redact({ action: 'auth.login.success', count: 3, ok: true, keyVersion: 'v1' })).toEqual({
      action: 'auth.login.success',
      count: 3,
      ok: true,
      keyVersion: 'v1',
    });
  });

  test('when a request carries a Bearer token and cookies, then the app log never contains them', async () => {
    const t = await buildTestApp({ logLevel: 'debug' });
    try {
      const login = await loginAs(t);
      await request(t.app)
        .get('/api/v1/security/nope')
        .set('Authorization', login.authorization)
        .set('Cookie', `fleet_refresh=${JWT}`);
      await request(t.app)
        .post('/api/v1/security/nope')
        .set('Authorization', `Bearer ${JWT}`)
        .set('Content-Type', 'application/json')
        .send('{bad json');
      t.app.flushAccessLog();
      const out = t.logs.join('\n');
      expect(t.logs.length).toBeGreaterThan(0);
      expect(out).not.toContain(login.token);
      expect(out).not.toContain(JWT);
      expect(out).not.toContain(t.config.jwt.secret);
    } finally {
      await t.close();
    }
  });

  test('when several requests finish close together, then their access lines are held briefly and written together, one JSON object per line', async () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', console: false, transports: [captureTransport(lines)] });
    const write = createAccessLogWriter(log, { flushMs: 20 });
    expect(write).not.toBeNull();
    for (let i = 0; i < 3; i++)
      write?.({ requestId: `r${i}`, method: 'GET', path: '/x', status: 200, durationMs: 1, ip: '127.0.0.1' });
    await new Promise((r) => setImmediate(r));
    expect(lines).toHaveLength(0);
    await new Promise((r) => setTimeout(r, 60));
    expect(lines).toHaveLength(1);
    expect(
      lines[0]
        ?.trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { requestId: string }).requestId),
    ).toEqual(['r0', 'r1', 'r2']);
    expect(createAccessLogWriter(createLogger({ level: 'warn', console: false }))).toBeNull();
  });

  test('when the line cap is reached or flush() is called, then the held lines are written at once', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', console: false, transports: [captureTransport(lines)] });
    const write = createAccessLogWriter(log, { maxLines: 2 });
    const entry = (id: string) => ({
      requestId: id,
      method: 'GET',
      path: '/x',
      status: 200,
      durationMs: 1,
      ip: '127.0.0.1',
    });
    write?.(entry('a'));
    expect(lines).toHaveLength(0);
    write?.(entry('b'));
    expect(lines).toHaveLength(1);
    write?.(entry('c'));
    write?.flush();
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[1] as string)).toMatchObject({ requestId: 'c' });
    write?.flush();
    expect(lines).toHaveLength(2);
  });

  test('when fields carry quotes, control characters, odd Unicode or a token, then the access line is still one valid JSON object with those values', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', console: false, transports: [captureTransport(lines)] });
    const write = createAccessLogWriter(log, { service: 'svc "x"' });
    const path = `/a"b\\c\n\u2028\u0001é😀/${JWT}`;
    write?.({ requestId: 'r"1', method: 'GET', path, status: 404, durationMs: 0.125, ip: '::ffff:10.0.0.1' });
    write?.({ requestId: 'r2', method: 'POST', path: '/x', status: 200, durationMs: Number.NaN, ip: null });
    write?.flush();
    const parsed = (lines[0] as string)
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed[0]).toMatchObject({
      requestId: 'r"1',
      method: 'GET',
      status: 404,
      durationMs: 0.125,
      ip: '::ffff:10.0.0.1',
      service: 'svc "x"',
      level: 'info',
      message: 'request',
    });
    expect(parsed[0]?.path).toBe(`/a"b\\c\n\u2028\u0001é😀/[REDACTED]`);
    expect(parsed[1]).toMatchObject({ requestId: 'r2', ip: null, durationMs: 0, status: 200 });
    expect(Object.keys(parsed[0] as object)).toEqual([
      'durationMs',
      'ip',
      'level',
      'message',
      'method',
      'path',
      'requestId',
      'service',
      'status',
      'timestamp',
    ]);
  });

  test('when the process exits with access lines still held, then they are written before it ends', () => {
    const logger = path.resolve(__dirname, '../../src/lib/logger');
    const script = `const { createAccessLogWriter, createLogger } = require(${JSON.stringify(logger)});
      const w = createAccessLogWriter(createLogger({ level: 'info' }));
      w({ requestId: 'exit-1', method: 'GET', path: '/x', status: 200, durationMs: 1, ip: null });
      process.exit(0);`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(JSON.parse(out.trim())).toMatchObject({ message: 'request', requestId: 'exit-1', status: 200 });
  });

  test('when a request completes, then one JSON access line records method, path, status, duration, ip and request id, with tokens in the path masked', async () => {
    const t = await buildTestApp({ logLevel: 'info' });
    try {
      await request(t.app).get('/api/health').set('X-Request-Id', 'access-line-1');
      await request(t.app).get(`/api/v1/security/${JWT}`).set('X-Request-Id', 'access-line-2');
      t.app.flushAccessLog(); // access lines are held up to 100 ms, then written together
      const lines = t.logs
        .flatMap((chunk) => chunk.split('\n'))
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.message === 'request');
      const first = lines.find((l) => l.requestId === 'access-line-1');
      expect(first).toMatchObject({
        level: 'info',
        method: 'GET',
        path: '/api/health',
        status: 200,
        service: 'fleet-security-api',
      });
      expect(typeof first?.durationMs).toBe('number');
      expect(String(first?.timestamp)).toMatch(/^\d{4}-\d\d-\d\dT/);
      const second = lines.find((l) => l.requestId === 'access-line-2');
      expect(second).toMatchObject({ status: 404, path: '/api/v1/security/[REDACTED]' });
      expect(t.logs.join('\n')).not.toContain(JWT);
    } finally {
      await t.close();
    }
  });
});

describe('LOG_DIR', () => {
  test('when the directory cannot be made, then createLogger fails naming LOG_DIR (and returns: no endless mkdir under /proc)', () => {
    expect(() => createLogger({ level: 'info', console: false, dir: '/proc/fleet-no-such/logs' })).toThrow(
      /^LOG_DIR: cannot write log files in \/proc\/fleet-no-such\/logs \(ENOENT\)$/,
    );
  });

  test('when the directory is missing under a writable one, then it is made, several levels deep', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-logdir-'));
    try {
      const target = path.join(dir, 'a', 'b', 'c');
      const logger = createLogger({ level: 'info', console: false, dir: target });
      expect(fs.statSync(target).isDirectory()).toBe(true);
      logger.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
