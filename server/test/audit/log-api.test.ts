/** POST /api/v1/security/audit/log */
import type pg from 'pg';
import request from 'supertest';
import { buildTestApp, ownerPool, type TestApp } from '../helpers/app';
import { loginAs, type TestLogin } from '../helpers/auth';
import { uniqueTenant } from '../helpers/env';
import { requestOn, withServer } from '../helpers/raw';

const PATH = '/api/v1/security/audit/log';
let t: TestApp;
let owner: pg.Pool;
let user: TestLogin;
let admin: TestLogin;
let viewer: TestLogin;

beforeAll(async () => {
  t = await buildTestApp();
  owner = ownerPool();
  const tenantId = uniqueTenant('log');
  user = await loginAs(t, { role: 'user', tenantId });
  admin = await loginAs(t, { role: 'admin', tenantId });
  viewer = await loginAs(t, { role: 'viewer', tenantId });
});
afterAll(async () => {
  await owner.end();
  await t.close();
});

const post = (login: TestLogin | null, body: unknown) => {
  const r = request(t.app).post(PATH).set('User-Agent', 'audit-test/1.0');
  if (login) r.set('Authorization', login.authorization);
  return r.send(body as object);
};

async function rowById(id: string): Promise<Record<string, unknown>> {
  const { rows } = await owner.query(
    `SELECT tenant_id, user_id::text AS user_id, action, resource_type, resource_id, before, after, host(ip_address) AS ip,
            user_agent, result, error_message, severity, request_id
       FROM audit_logs WHERE id = $1`,
    [id],
  );
  return rows[0];
}

async function countRows(tenantId: string, action: string): Promise<number> {
  const { rows } = await owner.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1 AND action = $2',
    [tenantId, action],
  );
  return rows[0]?.n ?? -1;
}

function expectValidationError(res: request.Response, path?: string): void {
  expect(res.status).toBe(400);
  expect(res.body).toMatchObject({ success: false, error: { code: 'VALIDATION_FAILED' } });
  expect(typeof res.body.requestId).toBe('string');
  if (path) expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
}

describe('recording an event', () => {
  it('when the User-Agent is sent as UTF-8 (non-ASCII), then the row stores it as that text, not latin1 mojibake; invalid UTF-8 bytes are kept as read', async () => {
    const name = 'Flottenmanager-Ärger/2.0 (Zürich; 車両)';
    const body = Buffer.from('{"action":"vehicle.ua","resourceType":"vehicle"}');
    const send = (ua: string) =>
      withServer(t.app, (port) =>
        requestOn(
          port,
          'POST',
          PATH,
          { Authorization: user.authorization, 'User-Agent': ua, 'Content-Type': 'application/json' },
          body,
        ),
      );
    // Node's client sends each code unit of a header string as one byte: here the name's UTF-8 bytes.
    const res = await send(Buffer.from(name, 'utf8').toString('latin1'));
    expect(res.status).toBe(200);
    expect((await rowById((res.body as { id: string }).id)).user_agent).toBe(name);
    // Raw bytes that are not UTF-8 (a lone 0xE9) are kept as Node read them.
    const latin1 = 'caf\u00e9-client/1.0';
    const res2 = await send(latin1);
    expect((await rowById((res2.body as { id: string }).id)).user_agent).toBe(latin1);
  });

  it('when a user records a valid event, then 200 with the id, and the row carries identity from the request', async () => {
    const res = await post(user, {
      action: 'vehicle.updated',
      resourceType: 'vehicle',
      resourceId: 'VIN-123',
      before: { mileage: 100 },
      after: { mileage: 150 },
    }).set('X-Request-Id', 'req-log-1');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true, id: expect.stringMatching(/^\d+$/) });
    expect(await rowById(res.body.id)).toEqual({
      tenant_id: user.tenantId,
      user_id: user.userId,
      action: 'vehicle.updated',
      resource_type: 'vehicle',
      resource_id: 'VIN-123',
      before: { mileage: 100 },
      after: { mileage: 150 },
      ip: expect.stringMatching(/127\.0\.0\.1$/),
      user_agent: 'audit-test/1.0',
      result: 'success',
      error_message: null,
      severity: 'low',
      request_id: 'req-log-1',
    });
  });

  it('when an admin records an event with result and severity, then they are stored as given', async () => {
    const res = await post(admin, {
      action: 'report.export',
      resourceType: 'report',
      result: 'failure',
      errorMessage: 'disk full',
      severity: 'high',
    });
    expect(res.status).toBe(200);
    expect(await rowById(res.body.id)).toMatchObject({
      user_id: admin.userId,
      result: 'failure',
      error_message: 'disk full',
      severity: 'high',
      resource_id: null,
      before: null,
      after: null,
    });
  });

  it('when a viewer records an event, then 403 and the denial itself is audited', async () => {
    const before = await countRows(viewer.tenantId, 'access.denied');
    const res = await post(viewer, { action: 'vehicle.updated', resourceType: 'vehicle' });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('FORBIDDEN');
    expect(await countRows(viewer.tenantId, 'access.denied')).toBe(before + 1);
    const { rows } = await owner.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_logs WHERE user_id = $1 AND action = 'vehicle.updated'",
      [viewer.userId],
    );
    expect(rows[0]?.n).toBe(0);
  });

  it('when there is no token, then 401 with WWW-Authenticate and nothing is written', async () => {
    const res = await post(null, { action: 'noauth.event', resourceType: 'x' });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    const { rows } = await owner.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_logs WHERE action = 'noauth.event'",
    );
    expect(rows[0]?.n).toBe(0);
  });

  it('when secrets are sent in before/after, then the stored row has them replaced', async () => {
    const res = await post(user, {
      action: 'integration.configured',
      resourceType: 'integration',
      before: { apiKey: 'old-key-value', url: 'https://x.example' },
      after: {
        apiKey: 'new-key-value',
        nested: { password: 'hunter2', clientSecret: 's3cr3t', list: [{ token: 'tkn-abc' }] },
        authorization: 'Bearer abcdefghijklmnop',
      },
    });
    expect(res.status).toBe(200);
    const row = await rowById(res.body.id);
    expect(row.before).toEqual({ apiKey: '[REDACTED]', url: 'https://x.example' });
    expect(row.after).toEqual({
      apiKey: '[REDACTED]',
      nested: { password: '[REDACTED]', clientSecret: '[REDACTED]', list: [{ token: '[REDACTED]' }] },
      authorization: '[REDACTED]',
    });
    expect(JSON.stringify(row)).not.toMatch(/old-key-value|new-key-value|hunter2|s3cr3t|tkn-abc|abcdefghijklmnop/);
  });

  it('when a credential is pasted into errorMessage, then it is masked there too; resourceId is an identifier and stored as sent', async () => {
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXZhbHVl';
    const resourceId = 'token=alice@example.com';
    const res = await post(user, {
      action: 'integration.failed',
      resourceType: 'integration',
      resourceId,
      errorMessage: `upstream said 401 to Authorization: Bearer ${jwt}; retried with password=hunter2 and api_key=AKIA1234567`,
    });
    expect(res.status).toBe(200);
    const row = await rowById(res.body.id);
    expect(row.resource_id).toBe(resourceId);
    expect(row.error_message).toBe(
      'upstream said 401 to Authorization: Bearer [REDACTED]; retried with password=[REDACTED] and api_key=[REDACTED]',
    );
    expect(JSON.stringify(row.error_message)).not.toMatch(/hunter2|AKIA1234567|c2lnbmF0dXJl/);
  });

  it('when masking makes errorMessage longer than its column, then it is cut to fit and the row is written (never a 500)', async () => {
    const res = await post(user, {
      action: 'integration.failed',
      resourceType: 'integration',
      errorMessage: 'pwd=a '.repeat(333),
    });
    expect(res.status).toBe(200);
    const row = await rowById(res.body.id);
    expect(Array.from(row.error_message as string)).toHaveLength(2000);
    expect(row.error_message).toMatch(/^pwd=\[REDACTED\] pwd=\[REDACTED\].*…$/);
  });
});

describe('identity and naming rules', () => {
  it.each([
    'userId',
    'user_id',
    'tenantId',
    'tenant_id',
    'ipAddress',
    'ip_address',
    'userAgent',
    'user_agent',
    'requestId',
    'request_id',
  ])('when the body carries the identity field %s, then 400 names it and nothing is written', async (field) => {
    const action = `identity.${field.toLowerCase().replace('_', '-')}`;
    const res = await post(user, {
      action,
      resourceType: 'x',
      [field]: field.startsWith('ip') ? '10.0.0.1' : 'forged',
    });
    expectValidationError(res, `body.${field}`);
    expect(await countRows(user.tenantId, action)).toBe(0);
  });

  it('when the body carries an unknown key, then 400 (strict schema)', async () => {
    expectValidationError(await post(user, { action: 'a.b', resourceType: 'x', extra: 1 }));
  });

  it.each([
    'auth.login.success',
    'auth.custom',
    'session.custom',
    'security.alert.custom',
    'key.custom',
    'system.custom',
    'user.custom',
  ])('when a client uses the reserved action %s, then 400 and nothing is written', async (action) => {
    const res = await post(admin, { action, resourceType: 'x' });
    expectValidationError(res, 'body.action');
    expect(res.body.error.details[0].message).toMatch(/reserved/);
    expect(await countRows(admin.tenantId, action)).toBe(0);
  });

  it.each(['access.denied', 'audit.verify.failed', 'audit.purge'])(
    'when a client uses the server-side action %s, then 400',
    async (action) => {
      expectValidationError(await post(admin, { action, resourceType: 'x' }), 'body.action');
    },
  );

  it.each(['nodot', 'Upper.Case', 'a..b', '.a', 'a.', 'a b.c', 'x.y;DROP', `a.${'b'.repeat(130)}`])(
    'when the action is malformed (%j), then 400',
    async (action) => {
      expectValidationError(await post(user, { action, resourceType: 'x' }), 'body.action');
    },
  );

  it.each([
    [{ action: 5, resourceType: 'x' }, 'body.action'],
    [{ action: 'a.b' }, 'body.resourceType'],
    [{ action: 'a.b', resourceType: '' }, 'body.resourceType'],
    [{ action: 'a.b', resourceType: ['x'] }, 'body.resourceType'],
    [{ action: 'a.b', resourceType: 'x', resourceId: 12 }, 'body.resourceId'],
    [{ action: 'a.b', resourceType: 'x', result: 'ok' }, 'body.result'],
    [{ action: 'a.b', resourceType: 'x', severity: 'urgent' }, 'body.severity'],
    [{ action: 'a.b', resourceType: 'x', errorMessage: { m: 1 } }, 'body.errorMessage'],
    [{ action: 'a.b', resourceType: 'tab\there' }, 'body.resourceType'],
  ])('when a field has the wrong type or value (%j), then 400 names %s', async (body, path) => {
    expectValidationError(await post(user, body), path);
  });

  it('when the body is a JSON array, then 400', async () => {
    expectValidationError(await post(user, [{ action: 'a.b', resourceType: 'x' }]));
  });
});

describe('hostile and odd input', () => {
  it('when the body is malformed JSON, then 400 MALFORMED_JSON', async () => {
    const res = await request(t.app)
      .post(PATH)
      .set('Authorization', user.authorization)
      .set('Content-Type', 'application/json')
      .send('{"action": "a.b", ');
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('MALFORMED_JSON');
  });

  it('when the body is not valid UTF-8, then 400 (never 500)', async () => {
    const bytes = Buffer.concat([
      Buffer.from('{"action":"a.b","resourceType":"'),
      Buffer.from([0xc3, 0x28, 0xff]),
      Buffer.from('"}'),
    ]);
    const res = await request(t.app)
      .post(PATH)
      .set('Authorization', user.authorization)
      .set('Content-Type', 'application/json')
      .serialize((b: unknown) => b as string)
      .send(bytes as unknown as string);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'MALFORMED_JSON', message: expect.stringContaining('UTF-8') });
  });

  it.each([
    ['resourceId', { action: 'nul.test', resourceType: 'x', resourceId: 'a\u0000b' }],
    ['after (nested)', { action: 'nul.test', resourceType: 'x', after: { deep: ['ok', { v: 'x\u0000' }] } }],
    ['a key of after', { action: 'nul.test', resourceType: 'x', after: { 'k\u0000': 1 } }],
    ['errorMessage (lone surrogate)', { action: 'nul.test', resourceType: 'x', errorMessage: 'bad \ud800 text' }],
  ])(
    'when %s holds a NUL byte or a lone surrogate, then 400 (never 500) and nothing is written',
    async (_what, body) => {
      const res = await post(user, body);
      expectValidationError(res);
      expect(await countRows(user.tenantId, 'nul.test')).toBe(0);
    },
  );

  it('when the content type is not JSON, then 415', async () => {
    const res = await request(t.app)
      .post(PATH)
      .set('Authorization', user.authorization)
      .set('Content-Type', 'text/plain')
      .send('action=a.b');
    expect(res.status).toBe(415);
    expect(res.body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('when injection strings are sent, then they are stored verbatim and the table is intact', async () => {
    const payloads = {
      resourceType: "vehicle'); DROP TABLE audit_logs;--",
      resourceId: "1' OR '1'='1",
      errorMessage: '<script>alert(1)</script> ${jndi:ldap://x} {{7*7}} %s%n $(rm -rf /)',
      after: {
        q: "'; DELETE FROM audit_logs WHERE ''='",
        $where: 'sleep(1000)',
        __proto__: { isAdmin: true },
        'a.b': '../../etc/passwd',
      },
    };
    const res = await post(user, {
      action: 'inject.test',
      ...payloads,
      after: JSON.parse(JSON.stringify(payloads.after).replace('"q"', '"__proto__":{"isAdmin":true},"q"')),
    });
    expect(res.status).toBe(200);
    const row = await rowById(res.body.id);
    expect(row.resource_type).toBe(payloads.resourceType);
    expect(row.resource_id).toBe(payloads.resourceId);
    expect(row.error_message).toBe(payloads.errorMessage);
    expect(row.after).toEqual(
      JSON.parse(
        `{"__proto__":{"isAdmin":true},"q":"'; DELETE FROM audit_logs WHERE ''='","$where":"sleep(1000)","a.b":"../../etc/passwd"}`,
      ),
    );
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
    const { rows } = await owner.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM audit_logs WHERE tenant_id = $1',
      [user.tenantId],
    );
    expect(rows[0]?.n).toBeGreaterThan(1);
  });

  it('when text fields are at their limit in characters but longer in UTF-16 units (emoji), then they are stored exactly, not cut', async () => {
    const body = {
      action: 'unicode.limits',
      resourceType: '😀'.repeat(128),
      resourceId: '🚚'.repeat(256),
      errorMessage: '⚠️'.repeat(1000),
    };
    const res = await post(user, body);
    expect(res.status).toBe(200);
    const row = await rowById(res.body.id);
    expect([row.resource_type, row.resource_id, row.error_message]).toEqual([
      body.resourceType,
      body.resourceId,
      body.errorMessage,
    ]);
    const over = await post(user, { ...body, resourceType: '😀'.repeat(129) });
    expectValidationError(over, 'body.resourceType');
  });

  it('when odd Unicode is sent, then it round-trips exactly through the database and GET /audit/logs', async () => {
    const odd = {
      resourceType: 'документ',
      resourceId: '👩‍👩‍👧‍👦 e\u0301 é \u202Egnp.exe \u200B\uFEFF 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 中文 עברית',
      errorMessage: 'ﷺ ⸻ \u{1F600}\u{E0067} \u0000'.replace('\u0000', 'Ω'),
      after: { 键: 'значение', '🔑name': 'ok', nfd: 'Å', nfc: 'Å' },
    };
    const res = await post(user, { action: 'unicode.test', ...odd });
    expect(res.status).toBe(200);
    const row = await rowById(res.body.id);
    expect([row.resource_type, row.resource_id, row.error_message, row.after]).toEqual([
      odd.resourceType,
      odd.resourceId,
      odd.errorMessage,
      odd.after,
    ]);
    const list = await request(t.app)
      .get('/api/v1/security/audit/logs')
      .query({ action: 'unicode.test' })
      .set('Authorization', user.authorization);
    expect(list.status).toBe(200);
    expect(list.body.entries[0]).toMatchObject({
      id: res.body.id,
      resourceType: odd.resourceType,
      resourceId: odd.resourceId,
      errorMessage: odd.errorMessage,
      after: odd.after,
    });
  });
});

describe('size caps', () => {
  it('when after is just under 64 kB, then it is accepted and stored whole', async () => {
    const after = { blob: 'x'.repeat(64 * 1024 - 20) };
    const res = await post(user, { action: 'size.ok', resourceType: 'x', after });
    expect(res.status).toBe(200);
    expect((await rowById(res.body.id)).after).toEqual(after);
  });

  it('when after is over 64 kB (but the body is under 100 kB), then 400 names it and nothing is written', async () => {
    const res = await post(user, { action: 'size.big', resourceType: 'x', after: { blob: 'x'.repeat(70 * 1024) } });
    expectValidationError(res, 'body.after');
    expect(await countRows(user.tenantId, 'size.big')).toBe(0);
  });

  it('when before is over 64 kB counted in UTF-8 bytes, then 400', async () => {
    expectValidationError(
      await post(user, { action: 'size.big', resourceType: 'x', before: { blob: 'é'.repeat(33 * 1024) } }),
      'body.before',
    );
  });

  it('when the whole body is over 100 kB, then 413', async () => {
    const res = await post(user, {
      action: 'size.huge',
      resourceType: 'x',
      before: { a: 'x'.repeat(60 * 1024) },
      after: { b: 'y'.repeat(60 * 1024) },
    });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it.each([
    [{ action: 'size.s', resourceType: 'x'.repeat(129) }, 'body.resourceType'],
    [{ action: 'size.s', resourceType: 'x', resourceId: 'x'.repeat(257) }, 'body.resourceId'],
    [{ action: 'size.s', resourceType: 'x', errorMessage: 'x'.repeat(2001) }, 'body.errorMessage'],
  ])('when a text field is over its limit, then 400 names %s', async (body, path) => {
    expectValidationError(await post(user, body), path);
  });
});
