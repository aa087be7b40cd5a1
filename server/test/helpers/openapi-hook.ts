/**
 * Every response a test receives from the real app (buildTestApp) through supertest is checked
 * against the OpenAPI document (server/src/openapi): its route and method must be described,
 * its status listed for that operation, the headers the document requires present, and a JSON
 * body valid against the schema for that status. A route, status or field without a
 * description fails the test that met it. Installed once, by importing this module
 * (server/test/helpers/app.ts does).
 */
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { ValidateFunction } from 'ajv';
import { Test } from 'supertest';
import { buildOpenApiDocument } from '../../src/openapi/document';

type Doc = ReturnType<typeof buildOpenApiDocument>;
interface Operation {
  responses: Record<
    string,
    {
      headers?: Record<string, { required?: boolean; schema?: { const?: string; pattern?: string } }>;
      content?: Record<string, unknown>;
    }
  >;
}

const documented = new WeakSet<object>();

/** Marks an app whose responses are checked against the document. */
export function checkResponsesOf(app: object): void {
  documented.add(app);
}

let state: {
  doc: Doc;
  ajv: Ajv2020;
  templates: { re: RegExp; path: string }[];
  cache: Map<string, ValidateFunction>;
} | null = null;

function load(): NonNullable<typeof state> {
  if (state) return state;
  const doc = buildOpenApiDocument();
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema(doc as object, 'openapi');
  const templates = Object.keys(doc.paths ?? {}).map((p) => ({
    path: p,
    re: new RegExp(
      `^${p
        .replace(/[.*+?^$()|[\]\\]/g, '\\$&')
        .replace(/\\?\{[^}]+\\?\}/g, '[^/]+')
        .replace(/\{[^}]+\}/g, '[^/]+')}$`,
    ),
  }));
  state = { doc, ajv, templates, cache: new Map() };
  return state;
}

const pointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

function validator(ref: string): ValidateFunction {
  const s = load();
  let v = s.cache.get(ref);
  if (!v) {
    v = s.ajv.compile({ $ref: `openapi#${ref}` });
    s.cache.set(ref, v);
  }
  return v;
}

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  text?: string;
}

/** null when the response matches the document, else what is wrong. */
export function checkResponse(method: string, url: string, res: Res): string | null {
  const m = method.toLowerCase();
  if (m === 'options' || m === 'head') return null;
  const { doc, templates } = load();
  const path = new URL(url, 'http://x').pathname;
  const where = `${method.toUpperCase()} ${path} → ${res.status}`;
  const template = templates.find((t) => t.re.test(path) && (doc.paths?.[t.path] as Record<string, unknown>)[m]);
  const contentType = String(res.headers['content-type'] ?? '');
  const validateJson = (ref: string): string | null => {
    if (!contentType.startsWith('application/json'))
      return `${where}: content-type ${contentType || '(none)'} is not application/json`;
    const v = validator(ref);
    if (v(res.body)) return null;
    return `${where}: body does not match the OpenAPI schema: ${JSON.stringify(v.errors?.slice(0, 5))}\nbody: ${JSON.stringify(res.body).slice(0, 1000)}`;
  };
  if (!template) {
    // Unknown routes answer the documented error shape.
    if (
      res.status === 404 ||
      res.status === 400 ||
      res.status === 413 ||
      res.status === 415 ||
      res.status === 429 ||
      res.status === 403
    )
      return validateJson('/components/schemas/ErrorResponse');
    return `${where}: no operation for this route in the OpenAPI document (describe it with describeRoute next to its schemas)`;
  }
  const op = (doc.paths?.[template.path] as Record<string, Operation>)[m] as Operation;
  const response = op.responses[String(res.status)];
  if (!response)
    return `${where}: status ${res.status} is not documented for ${m.toUpperCase()} ${template.path} (documented: ${Object.keys(op.responses).join(', ')})`;
  for (const [name, h] of Object.entries(response.headers ?? {})) {
    const got = res.headers[name.toLowerCase()];
    if (got === undefined) {
      if (h.required) return `${where}: required header ${name} is missing`;
      continue;
    }
    const value = Array.isArray(got) ? got.join(', ') : got;
    if (h.schema?.const !== undefined && value !== h.schema.const)
      return `${where}: header ${name} is ${JSON.stringify(value)}, the document says ${JSON.stringify(h.schema.const)}`;
    if (h.schema?.pattern !== undefined && !new RegExp(h.schema.pattern).test(value))
      return `${where}: header ${name} ${JSON.stringify(value)} does not match ${h.schema.pattern}`;
  }
  const media = Object.keys(response.content ?? {});
  if (media.length === 0) return null;
  const base = `/paths/${pointer(template.path)}/${m}/responses/${res.status}/content`;
  if (media.includes('application/json')) return validateJson(`${base}/${pointer('application/json')}/schema`);
  if (!media.some((t) => contentType.startsWith(t)))
    return `${where}: content-type ${contentType} is not one of ${media.join(', ')}`;
  return null;
}

// The hook: supertest calls assert() with every response before the test sees it.
const proto = Test.prototype as unknown as {
  assert(
    this: Test & { app: unknown; method: string; url: string; _asserts: ((res: unknown) => unknown)[] },
    err: unknown,
    res: Res | undefined,
    fn: unknown,
  ): unknown;
  __openapiHook?: boolean;
};
if (!proto.__openapiHook) {
  proto.__openapiHook = true;
  const original = proto.assert;
  proto.assert = function assertWithOpenApi(err, res, fn) {
    const server = this.app as { listeners?: (e: string) => unknown[] } | undefined;
    const app = typeof server?.listeners === 'function' ? server.listeners('request')[0] : server;
    if (res && app && documented.has(app as object)) {
      const problem = checkResponse(this.method, this.url, res);
      if (problem) this._asserts.unshift(() => new Error(`OpenAPI: ${problem}`));
    }
    return original.call(this, err, res, fn);
  };
}
