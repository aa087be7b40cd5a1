import {
  AUDIT_VALUE_MAX_BYTES,
  isSecretLikeKey,
  sanitizeText,
  scrubAuditValue,
  truncateText,
} from '../../src/services/audit/scrub';

describe('secret scrubbing', () => {
  it('when before/after carry a session id, then it is kept (a session id is not a credential: access needs the signed token)', () => {
    expect(isSecretLikeKey('sessionId')).toBe(false);
    expect(isSecretLikeKey('session_id')).toBe(false);
  });

  it.each([
    'password',
    'Password',
    'new_password',
    'passwd',
    'passphrase',
    'clientSecret',
    'client_secret',
    'token',
    'accessToken',
    'refresh_token',
    'idToken',
    'authorization',
    'Authorization',
    'cookie',
    'set-cookie',
    'apiKey',
    'x-api-key',
    'privateKey',
    'masterKey',
    'key',
    'encryption_key',
    'credentials',
    'signature',
    'csrfToken',
    'pin',
    'otp',
  ])('when a key is named %s, then it counts as secret', (k) => {
    expect(isSecretLikeKey(k)).toBe(true);
  });

  it.each(['keyId', 'keyVersion', 'email', 'role', 'name', 'passed', 'count', 'resource', 'fingerprint'])(
    'when a key is named %s, then it is kept',
    (k) => {
      expect(isSecretLikeKey(k)).toBe(false);
    },
  );

  it('when a value has secrets at any depth, then they are replaced and everything else is kept', () => {
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlc2lnbmF0dXJl';
    const r = scrubAuditValue({
      email: 'a@example.com',
      password: 'hunter2',
      nested: { apiKey: 'k-123', list: [{ token: 'tok' }, { ok: 1 }], pin: 1234 },
      header: `Bearer ${'x'.repeat(20)}`,
      note: `copied ${jwt} here`,
      url: 'postgres://app:s3cr3t@db:5432/x',
      hasPassword: true,
      secretRef: null,
    });
    expect(r.truncated).toBe(false);
    expect(r.value).toEqual({
      email: 'a@example.com',
      password: '[REDACTED]',
      nested: { apiKey: '[REDACTED]', list: [{ token: '[REDACTED]' }, { ok: 1 }], pin: '[REDACTED]' },
      header: 'Bearer [REDACTED]',
      note: 'copied [REDACTED] here',
      url: 'postgres://app:[REDACTED]@db:5432/x',
      hasPassword: true,
      secretRef: null,
    });
    expect(r.json).not.toMatch(/hunter2|k-123|tok"|s3cr3t|1234/);
  });

  it('when a value is not plain JSON, then it is converted (dates, bigints, maps, errors, cycles, binary)', () => {
    const cyc: Record<string, unknown> = { a: 1 };
    cyc.self = cyc;
    const r = scrubAuditValue({
      when: new Date('2026-01-02T03:04:05.006Z'),
      big: 12345678901234567890n,
      map: new Map([['k', 'v']]),
      set: new Set([1, 2]),
      err: new Error('boom'),
      cyc,
      buf: Buffer.from('secret bytes'),
      fn: () => 1,
      undef: undefined,
      nan: Number.NaN,
      arr: [undefined, 1],
    });
    expect(r.value).toEqual({
      when: '2026-01-02T03:04:05.006Z',
      big: '12345678901234567890',
      map: { k: 'v' },
      set: [1, 2],
      err: { name: 'Error', message: 'boom' },
      cyc: { a: 1, self: '[CIRCULAR]' },
      buf: '[BINARY]',
      nan: null,
      arr: [null, 1],
    });
  });

  it('when a value contains a "__proto__" key, then it is stored as an ordinary key', () => {
    const input = JSON.parse('{"__proto__": {"isAdmin": true}, "x": 1}') as unknown;
    const r = scrubAuditValue(input);
    expect(r.json).toBe('{"__proto__":{"isAdmin":true},"x":1}');
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });

  it('when strings contain NUL characters or lone surrogates, then they are made storable', () => {
    expect(sanitizeText('a\u0000b')).toBe('a\uFFFDb');
    expect(sanitizeText('x\uD800y')).toBe('x\uFFFDy');
    expect(scrubAuditValue({ 'k\u0000': 'v\u0000' }).value).toEqual({ 'k\uFFFD': 'v\uFFFD' });
  });

  it('when text is truncated, then the limit counts characters (code points, as PostgreSQL does) and a surrogate pair is never split', () => {
    const s = `${'a'.repeat(9)}😀tail`;
    const out = truncateText(s, 11);
    expect(out.isWellFormed()).toBe(true);
    expect(out).toBe(`${'a'.repeat(9)}😀…`);
    expect(Array.from(out)).toHaveLength(11);
    expect(truncateText('😀'.repeat(11), 11)).toBe('😀'.repeat(11));
    expect(truncateText('😀'.repeat(12), 11)).toBe(`${'😀'.repeat(10)}…`);
  });
});

describe('size cap', () => {
  it('when a value is at most 64 kB as JSON, then it is kept whole', () => {
    const v = { blob: 'x'.repeat(AUDIT_VALUE_MAX_BYTES - 20) };
    const r = scrubAuditValue(v);
    expect(r.truncated).toBe(false);
    expect(r.value).toEqual(v);
  });

  it('when a value is over 64 kB as JSON, then a marker with its size and a short preview is stored instead', () => {
    const r = scrubAuditValue({ blob: 'é'.repeat(40_000) });
    expect(r.truncated).toBe(true);
    expect(r.value).toMatchObject({ _truncated: true, originalBytes: 80_011 });
    expect(Buffer.byteLength(r.json as string)).toBeLessThan(4096);
  });

  it('when a value is absent or null, then nothing is stored', () => {
    expect(scrubAuditValue(undefined)).toEqual({ json: null, value: null, truncated: false });
    expect(scrubAuditValue(null)).toEqual({ json: null, value: null, truncated: false });
  });
});
