/**
 * A local HTTPS server speaking the Azure Key Vault secrets REST API, for driving the real
 * @azure/keyvault-secrets SDK in tests:
 *   GET  /secrets/{name}/                latest version
 *   GET  /secrets/{name}/{version}       one version (403 when disabled, 404 when unknown)
 *   PUT  /secrets/{name}                 new version
 *   GET  /secrets/{name}/versions        list (pages of `maxresults`, default 25, with nextLink)
 * Every request needs `api-version`. A request without the expected bearer token is answered
 * 401 with the challenge the SDK expects (WWW-Authenticate: Bearer authorization="…",
 * resource="…"), so the SDK's challenge flow runs for real. TLS uses a self-signed certificate
 * for `vault.localhost`; `agent` trusts it and connects to 127.0.0.1 (the SDK verifies that the
 * vault host ends with the challenge resource host, `localhost`).
 */
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { generate } from 'selfsigned';
import type { SecretClientOptions } from '@azure/keyvault-secrets';
import type { TokenCredential } from '../../../src/services/encryption';

export const VAULT_HOST = 'vault.localhost';
export const VAULT_TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47';
export const CHALLENGE_RESOURCE = 'https://localhost';

interface StoredVersion {
  version: string;
  value: string;
  enabled: boolean;
  contentType?: string;
  tags?: Record<string, string>;
  created: number;
}

export interface VaultRequest {
  method: string;
  path: string;
  kind: 'get-latest' | 'get-version' | 'set' | 'list' | 'other';
  authorized: boolean;
}

export type Outage = null | 'unavailable' | 'reset';

export interface FakeKeyVault {
  url: string;
  ca: string;
  /** Trusts the server's certificate and connects to 127.0.0.1 for vault.localhost. */
  agent: https.Agent;
  credential: TokenCredential & { calls: Array<{ scopes: string[]; tenantId?: string }> };
  /** SDK options for tests: the agent, no SDK retries (the tests drive failures). */
  clientOptions: SecretClientOptions;
  requests: VaultRequest[];
  /** Authorized requests of a kind. */
  count(kind: VaultRequest['kind']): number;
  resetCounts(): void;
  /** Stores a new version directly (as an operator would); returns the version. */
  put(name: string, value: string, opts?: { enabled?: boolean }): string;
  versionsOf(name: string): StoredVersion[];
  disable(name: string, version: string): void;
  outage: Outage;
  /** Added latency per request (ms): makes concurrent callers overlap. */
  delayMs: number;
  close(): Promise<void>;
}

let certPromise: Promise<{ cert: string; key: string }> | null = null;
function certificate(): Promise<{ cert: string; key: string }> {
  certPromise ??= generate([{ name: 'commonName', value: VAULT_HOST }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyCertSign: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: VAULT_HOST },
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  }).then((p) => ({ cert: p.cert, key: p.private }));
  return certPromise;
}

function send(
  res: import('node:http').ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'x-ms-keyvault-service-version': '1.9.0.0',
    ...headers,
  });
  res.end(text);
}

export async function startFakeKeyVault(opts: { token?: string } = {}): Promise<FakeKeyVault> {
  const { cert, key } = await certificate();
  const token = opts.token ?? `kv-test-token-${randomBytes(8).toString('hex')}`;
  const secrets = new Map<string, StoredVersion[]>();
  const requests: VaultRequest[] = [];
  let clock = Math.floor(Date.now() / 1000);
  let baseUrl = '';

  const vault: FakeKeyVault = {
    url: '',
    ca: cert,
    agent: null as unknown as https.Agent,
    credential: null as unknown as FakeKeyVault['credential'],
    clientOptions: {},
    requests,
    count: (kind) => requests.filter((r) => r.kind === kind && r.authorized).length,
    resetCounts: () => void requests.splice(0, requests.length),
    put(name, value, o = {}) {
      const version = randomBytes(16).toString('hex');
      const list = secrets.get(name) ?? [];
      clock += 1;
      list.push({ version, value, enabled: o.enabled ?? true, created: clock });
      secrets.set(name, list);
      return version;
    },
    versionsOf: (name) => [...(secrets.get(name) ?? [])],
    disable(name, version) {
      const v = secrets.get(name)?.find((s) => s.version === version);
      if (v) v.enabled = false;
    },
    outage: null,
    delayMs: 0,
    close: async () => undefined,
  };

  function bundle(name: string, v: StoredVersion, withValue: boolean): Record<string, unknown> {
    return {
      ...(withValue ? { value: v.value } : {}),
      id: `${baseUrl}/secrets/${name}/${v.version}`,
      ...(v.contentType ? { contentType: v.contentType } : {}),
      ...(v.tags ? { tags: v.tags } : {}),
      attributes: {
        enabled: v.enabled,
        created: v.created,
        updated: v.created,
        recoveryLevel: 'Recoverable+Purgeable',
        recoverableDays: 90,
      },
    };
  }

  const server = https.createServer({ cert, key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', baseUrl);
      const segs = url.pathname.split('/').slice(1); // ['secrets', name, version?]
      const method = req.method ?? 'GET';
      let kind: VaultRequest['kind'] = 'other';
      if (segs[0] === 'secrets' && segs[1]) {
        if (method === 'PUT' && segs.length === 2) kind = 'set';
        else if (method === 'GET' && segs[2] === 'versions' && segs.length === 3) kind = 'list';
        else if (method === 'GET' && (segs.length === 2 || (segs.length === 3 && segs[2] === ''))) kind = 'get-latest';
        else if (method === 'GET' && segs.length === 3) kind = 'get-version';
      }
      const authorized = req.headers.authorization === `Bearer ${token}`;
      requests.push({ method, path: url.pathname, kind, authorized });

      const respond = (): void => {
        if (vault.outage === 'reset') {
          req.socket.destroy();
          return;
        }
        if (vault.outage === 'unavailable') {
          send(res, 503, { error: { code: 'ServiceUnavailable', message: 'The service is temporarily unavailable.' } });
          return;
        }
        if (!url.searchParams.get('api-version')) {
          send(res, 400, {
            error: { code: 'BadParameter', message: 'The request URI contains an invalid api-version' },
          });
          return;
        }
        if (!authorized) {
          send(
            res,
            401,
            { error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } },
            {
              'www-authenticate': `Bearer authorization="https://login.microsoftonline.com/${VAULT_TENANT_ID}", resource="${CHALLENGE_RESOURCE}"`,
            },
          );
          return;
        }
        const name = decodeURIComponent(segs[1] ?? '');
        const list = secrets.get(name) ?? [];
        const notFound = (): void =>
          send(res, 404, {
            error: {
              code: 'SecretNotFound',
              message: `A secret with (name/id) ${name} was not found in this key vault.`,
            },
          });
        switch (kind) {
          case 'get-latest': {
            const latest = list.at(-1);
            if (!latest) return notFound();
            if (!latest.enabled)
              return send(res, 403, {
                error: { code: 'Forbidden', message: 'Operation get is not allowed on a disabled secret.' },
              });
            return send(res, 200, bundle(name, latest, true));
          }
          case 'get-version': {
            const v = list.find((s) => s.version === segs[2]);
            if (!v) return notFound();
            if (!v.enabled)
              return send(res, 403, {
                error: { code: 'Forbidden', message: 'Operation get is not allowed on a disabled secret.' },
              });
            return send(res, 200, bundle(name, v, true));
          }
          case 'set': {
            let body: { value?: unknown; contentType?: string; tags?: Record<string, string> };
            try {
              body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
            } catch {
              return send(res, 400, { error: { code: 'BadParameter', message: 'Invalid JSON' } });
            }
            if (typeof body.value !== 'string')
              return send(res, 400, { error: { code: 'BadParameter', message: 'Property value is required' } });
            const version = vault.put(name, body.value);
            const stored = secrets.get(name)?.at(-1) as StoredVersion;
            stored.contentType = body.contentType;
            stored.tags = body.tags;
            return send(res, 200, bundle(name, { ...stored, version }, true));
          }
          case 'list': {
            if (list.length === 0) return notFound();
            const max = Math.min(Number(url.searchParams.get('maxresults') ?? 25) || 25, 25);
            const skip = Number(url.searchParams.get('$skiptoken') ?? 0) || 0;
            const page = list.slice(skip, skip + max);
            const next =
              skip + max < list.length
                ? `${baseUrl}/secrets/${name}/versions?api-version=${url.searchParams.get('api-version')}&$skiptoken=${skip + max}&maxresults=${max}`
                : null;
            return send(res, 200, { value: page.map((v) => bundle(name, v, false)), nextLink: next });
          }
          default:
            return send(res, 405, { error: { code: 'MethodNotAllowed', message: 'not supported by the test vault' } });
        }
      };
      if (vault.delayMs > 0) setTimeout(respond, vault.delayMs);
      else respond();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  baseUrl = `https://${VAULT_HOST}:${port}`;
  vault.url = baseUrl;

  const agent = new https.Agent({ ca: cert, keepAlive: false });
  const base = agent.createConnection.bind(agent) as (o: tls.ConnectionOptions, cb?: unknown) => unknown;
  (agent as unknown as { createConnection: unknown }).createConnection = (o: tls.ConnectionOptions, cb?: unknown) =>
    base({ ...o, host: '127.0.0.1', servername: VAULT_HOST }, cb);
  vault.agent = agent;

  const calls: Array<{ scopes: string[]; tenantId?: string }> = [];
  vault.credential = {
    calls,
    async getToken(scopes: string | string[], options?: { tenantId?: string }) {
      calls.push({ scopes: Array.isArray(scopes) ? scopes : [scopes], tenantId: options?.tenantId });
      return { token, expiresOnTimestamp: Date.now() + 3_600_000, tokenType: 'Bearer' as const };
    },
  } as FakeKeyVault['credential'];
  vault.clientOptions = { agent, retryOptions: { maxRetries: 0 } };
  vault.close = () =>
    new Promise<void>((resolve) => {
      agent.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return vault;
}

/** Base64 of 32 random bytes: a master key as stored in the vault. */
export function newVaultKey(): { value: string; material: Buffer } {
  const material = randomBytes(32);
  return { value: material.toString('base64'), material };
}
