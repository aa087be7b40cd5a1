/**
 * The OpenAPI document (CONTRACT §12): valid against the OpenAPI 3.1 JSON Schema (vendored in
 * server/test/fixtures/openapi-3.1, validated with Ajv 2020), served at GET /api/openapi.json
 * without authentication, the same as the committed docs/openapi.json, and complete: every
 * route the app answers is described, and the hook on supertest
 * (server/test/helpers/openapi-hook.ts) catches an undocumented route, status or field.
 */
import fs from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import express from 'express';
import request from 'supertest';
import { buildOpenApiDocument, openApiJson } from '../../src/openapi/document';
import { buildTestApp, type TestApp } from '../helpers/app';
import { checkResponse } from '../helpers/openapi-hook';

const ROOT = path.resolve(__dirname, '../../..');
let t: TestApp;

beforeAll(async () => {
  t = await buildTestApp();
});
afterAll(async () => {
  await t.close();
});

/** Every method+path the Express app routes (the security router's layers included). */
function expressRoutes(app: express.Express): string[] {
  const out: string[] = [];
  const walk = (stack: unknown[], prefix: string) => {
    for (const layer of stack as {
      route?: { path: string; methods: Record<string, boolean> };
      handle?: { stack?: unknown[] };
      matchers?: unknown;
      name?: string;
      regexp?: RegExp;
    }[]) {
      if (layer.route) {
        for (const m of Object.keys(layer.route.methods))
          out.push(`${m} ${prefix}${layer.route.path.replace(/:(\w+)/g, '{$1}')}`);
      } else if (layer.handle?.stack) {
        walk(layer.handle.stack, prefix === '' && layer.name === 'router' ? '/api/v1/security' : prefix);
      }
    }
  };
  walk((app as unknown as { router: { stack: unknown[] } }).router.stack, '');
  return out.sort();
}

describe('the OpenAPI document', () => {
  test('when validated against the OpenAPI 3.1 JSON Schema (Ajv 2020), then it has no errors', () => {
    // Ajv supports $dynamicAnchor only at a schema's root; the OAS schema declares its `meta`
    // anchor in $defs/schema (any object or boolean), so its $dynamicRef "#meta" is resolved
    // here to that definition: the same constraint, as the schema means without a dialect.
    const text = fs.readFileSync(path.join(__dirname, '../fixtures/openapi-3.1/schema.json'), 'utf8');
    const schema = JSON.parse(text.replace(/"\$dynamicRef": "#meta"/g, '"$ref": "#/$defs/schema"')) as object;
    expect(text).toContain('"$dynamicAnchor": "meta"');
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    const validate = ajv.compile(schema);
    const ok = validate(JSON.parse(openApiJson()));
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
    // And the check bites: info without a title, or an unknown field in a response.
    const broken = JSON.parse(openApiJson()) as { info: { title?: string } };
    delete broken.info.title;
    expect(validate(broken)).toBe(false);
    const broken2 = JSON.parse(openApiJson()) as {
      paths: Record<string, Record<string, { responses: Record<string, Record<string, unknown>> }>>;
    };
    (broken2.paths['/api/health']?.get?.responses['200'] as Record<string, unknown>).contents = {};
    expect(validate(broken2)).toBe(false);
  });

  test('when GET /api/openapi.json is asked without authentication, then it answers the document, the same as docs/openapi.json', async () => {
    const res = await request(t.app).get('/api/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body.openapi).toBe('3.1.0');
    expect(res.text).toBe(fs.readFileSync(path.join(ROOT, 'docs/openapi.json'), 'utf8'));
  });

  test('when the app routes are listed, then every one is described with responses, and nothing is described that the app does not route', () => {
    const doc = buildOpenApiDocument();
    const described = Object.entries(doc.paths ?? {})
      .flatMap(([p, item]) => Object.keys(item as object).map((m) => `${m} ${p}`))
      .sort();
    expect(expressRoutes(t.app)).toEqual(described);
    for (const [p, item] of Object.entries(doc.paths ?? {})) {
      for (const [m, op] of Object.entries(
        item as Record<string, { responses: Record<string, unknown>; operationId?: string; summary?: string }>,
      )) {
        expect({
          route: `${m} ${p}`,
          ok: Object.keys(op.responses).some((s) => s.startsWith('2')) && !!op.operationId && !!op.summary,
        }).toEqual({ route: `${m} ${p}`, ok: true });
      }
    }
  });

  test('when the document is checked for the security schemes and the error envelope, then Bearer, the refresh cookie, API keys and ErrorResponse are there', () => {
    const doc = buildOpenApiDocument();
    expect(Object.keys(doc.components?.securitySchemes ?? {}).sort()).toEqual([
      'apiKey',
      'bearerAuth',
      'metricsToken',
      'refreshCookie',
    ]);
    expect(doc.components?.schemas?.ErrorResponse).toBeDefined();
    const login = (
      doc.paths?.['/api/v1/security/login'] as {
        post: {
          requestBody: {
            content: Record<string, { schema: { properties: Record<string, unknown> }; example?: unknown }>;
          };
        };
      }
    ).post;
    expect(Object.keys(login.requestBody.content['application/json']?.schema.properties ?? {}).sort()).toEqual([
      'email',
      'idToken',
      'refreshTokenDelivery',
    ]);
    expect(login.requestBody.content['application/json']?.example).toBeDefined();
  });
});

describe('the response check (every supertest response of the real app)', () => {
  const ok = { status: 200, headers: { 'content-type': 'application/json; charset=utf-8' } };

  test('when a reply has a field the document does not describe, then it is refused naming the route', () => {
    expect(
      checkResponse('GET', 'http://127.0.0.1/api/health', {
        ...ok,
        body: { success: true, status: 'ok', version: '1.0.0', uptimeSeconds: 1 },
      }),
    ).toBeNull();
    expect(
      checkResponse('GET', 'http://127.0.0.1/api/health', {
        ...ok,
        body: { success: true, status: 'ok', version: '1.0.0', uptimeSeconds: 1, extra: 1 },
      }),
    ).toMatch(/^GET \/api\/health → 200: body does not match the OpenAPI schema: .*additionalProperties/);
  });

  test('when a route or a status is not described, then it is refused saying so', () => {
    expect(checkResponse('GET', 'http://127.0.0.1/api/v1/security/not-described', { ...ok, body: {} })).toMatch(
      /no operation for this route/,
    );
    expect(checkResponse('GET', 'http://127.0.0.1/api/health', { ...ok, status: 418, body: {} })).toMatch(
      /status 418 is not documented/,
    );
    expect(
      checkResponse('DELETE', 'http://127.0.0.1/api/v1/security/sessions/8c2f4719-6615-4129-aae1-ee319ad76287?x=1', {
        ...ok,
        body: { success: true },
      }),
    ).toBeNull();
  });

  test('when a required header is missing or wrong, then it is refused', () => {
    const body = {
      success: true,
      key: {
        keyId: 'k',
        version: 'v',
        algorithm: 'AES-256-GCM',
        source: 'environment',
        fingerprint: 'f',
        cachedUntil: null,
      },
    };
    expect(checkResponse('GET', '/api/v1/security/master-key', { ...ok, body })).toMatch(
      /required header Cache-Control is missing/,
    );
    expect(
      checkResponse('GET', '/api/v1/security/master-key', {
        ...ok,
        headers: { ...ok.headers, 'cache-control': 'max-age=60' },
        body,
      }),
    ).toMatch(/header Cache-Control is "max-age=60"/);
    expect(
      checkResponse('GET', '/api/v1/security/master-key', {
        ...ok,
        headers: { ...ok.headers, 'cache-control': 'no-store' },
        body,
      }),
    ).toBeNull();
  });

  test('when the OAuth endpoints answer, then their RFC 6749 error bodies are the documented shape and the envelope is not', () => {
    const json = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', pragma: 'no-cache' };
    const oauthErr = { error: 'invalid_request', error_description: 'the token parameter is missing' };
    expect(checkResponse('POST', '/oauth/revoke', { status: 400, headers: json, body: oauthErr })).toBeNull();
    expect(
      checkResponse('POST', '/oauth/revoke', { status: 400, headers: json, body: { ...oauthErr, extra: 1 } }),
    ).toMatch(/additionalProperties/);
    expect(
      checkResponse('POST', '/oauth/introspect', {
        status: 401,
        headers: json,
        body: { error: 'invalid_client', error_description: 'x' },
      }),
    ).toMatch(/required header WWW-Authenticate is missing/);
    expect(
      checkResponse('POST', '/oauth/introspect', { status: 200, headers: json, body: { active: false } }),
    ).toBeNull();
    expect(
      checkResponse('POST', '/oauth/introspect', { status: 200, headers: json, body: { active: false, sub: 'leak' } }),
    ).toMatch(/does not match/);
    expect(
      checkResponse('POST', '/oauth/revoke', {
        status: 200,
        headers: { 'cache-control': 'no-store', pragma: 'no-cache' },
        body: {},
      }),
    ).toBeNull();
  });

  test('when the new statuses are checked, then Idempotency-Key, step-up, platform admin, API-key security and the JWKS are described', () => {
    const doc = buildOpenApiDocument();
    type Op = {
      security: Record<string, unknown>[];
      parameters?: { in: string; name: string }[];
      responses: Record<string, { description: string; headers?: Record<string, unknown> }>;
    };
    const op = (p: string, m: string) => (doc.paths?.[p] as Record<string, Op>)[m] as Op;
    for (const [p, m] of [
      ['/api/v1/security/audit/log', 'post'],
      ['/api/v1/security/audit/siem', 'post'],
      ['/api/v1/security/api-keys', 'post'],
    ] as const) {
      const o = op(p, m);
      expect({ p, header: o.parameters?.some((x) => x.in === 'header' && x.name === 'Idempotency-Key') }).toEqual({
        p,
        header: true,
      });
      expect(Object.keys(o.responses)).toEqual(expect.arrayContaining(['409', '422']));
      expect(o.responses['409']?.headers?.['Retry-After']).toBeDefined();
    }
    for (const [p, m] of [
      ['/api/v1/security/audit/log', 'post'],
      ['/api/v1/security/audit/logs', 'get'],
      ['/api/v1/security/audit/siem', 'post'],
      ['/oauth/introspect', 'post'],
    ] as const) {
      expect({ p, apiKey: op(p, m).security.some((s) => 'apiKey' in s) }).toEqual({ p, apiKey: true });
    }
    for (const [p, m] of [
      ['/api/v1/security/master-key/rotate', 'post'],
      ['/api/v1/security/api-keys', 'post'],
      ['/api/v1/security/mfa/totp', 'delete'],
      ['/api/v1/security/audit/streams/{name}', 'put'],
    ] as const) {
      expect({ p, stepUp: op(p, m).responses['403']?.description }).toEqual({
        p,
        stepUp: expect.stringContaining('STEP_UP_REQUIRED'),
      });
    }
    expect(op('/api/v1/security/master-key', 'get').responses['403']?.description).toMatch(/platform tenant/);
    expect(op('/api/v1/security/master-key/rotate', 'post').responses['429']?.headers?.['Retry-After']).toBeDefined();
    const jwks = {
      status: 200,
      headers: { 'content-type': 'application/jwk-set+json; charset=utf-8', 'cache-control': 'public, max-age=300' },
      body: {},
    };
    expect(checkResponse('GET', '/.well-known/jwks.json', jwks)).toBeNull();
    expect(
      checkResponse('GET', '/.well-known/jwks.json', {
        ...jwks,
        headers: { ...jwks.headers, 'content-type': 'application/json' },
      }),
    ).toMatch(/not one of application\/jwk-set\+json/);
  });

  test('when the hook sees a real response that breaks the document, then the supertest request fails', async () => {
    // A response of the real app, checked: an unknown route answers the error envelope (passes).
    const res = await request(t.app).get('/api/v1/security/no-such-route');
    expect(res.status).toBe(404);
    // Only apps built by buildTestApp are checked; a bare app is not.
    const bare = express();
    bare.get('/api/health', (_req, r) => void r.json({ anything: true }));
    expect((await request(bare).get('/api/health')).status).toBe(200);
  });
});
