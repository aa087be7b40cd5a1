/**
 * A local HTTPS stand-in for Microsoft Sentinel's ingestion path, for driving the real
 * @azure/identity ClientSecretCredential and @azure/monitor-ingestion client in tests:
 *   GET  /{tenant}/v2.0/.well-known/openid-configuration     Entra ID metadata (MSAL)
 *   POST /{tenant}/oauth2/v2.0/token                           client credentials grant: checks
 *        client_id / client_secret, issues a signed JWT whose `aud` is the requested scope's resource
 *   POST /dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01
 *        the Logs Ingestion API: bearer JWT verified (signature, issuer, expiry and audience
 *        https://monitor.azure.com, else 401), gzip JSON array ≤ 1 MB (else 413), unknown DCR or
 *        stream 404, 204 on success; programmable failures (429 + Retry-After, 503, …).
 * TLS uses a self-signed certificate for 127.0.0.1/localhost written to `caFile`.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { generate } from 'selfsigned';

export const MONITOR_AUDIENCE = 'https://monitor.azure.com';

export interface IngestionRequest {
  path: string;
  status: number;
  rows: number;
  bytes: number;
  /** `aud` of the bearer token presented, when it parsed. */
  audience: string | null;
}

export interface FakeLogsIngestion {
  /** Data collection endpoint (and Entra ID authority host): https://127.0.0.1:<port>. */
  url: string;
  caFile: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  dcrId: string;
  streamName: string;
  rows: Array<Record<string, unknown>>;
  requests: IngestionRequest[];
  tokenRequests: Array<{ scope: string; ok: boolean }>;
  failNext(n: number, reply: { status: number; headers?: Record<string, string>; body?: unknown }): void;
  reset(): void;
  close(): Promise<void>;
}

/** HS256 JWT (the stand-in is issuer and verifier, so a shared key is enough). */
function signJwt(claims: Record<string, unknown>, key: Buffer): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc(claims)}`;
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
}

function verifyJwt(token: string, key: Buffer, issuer: string): Record<string, unknown> | null {
  const [h, p, sig] = token.split('.');
  if (!h || !p || !sig) return null;
  const expected = Buffer.from(createHmac('sha256', key).update(`${h}.${p}`).digest('base64url'));
  const got = Buffer.from(sig);
  if (got.length !== expected.length || !timingSafeEqual(got, expected)) return null;
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
  if (claims.iss !== issuer || typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) return null;
  return claims;
}

export async function startFakeLogsIngestion(): Promise<FakeLogsIngestion> {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
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
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-dce-'));
  const caFile = path.join(dir, 'ca.pem');
  fs.writeFileSync(caFile, pems.cert);
  const signingKey = randomBytes(32);
  const tenantId = '0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a00';
  const clientId = '11111111-aaaa-4bbb-8ccc-222222222222';
  const clientSecret = randomBytes(18).toString('base64url');
  const dcrId = `dcr-${randomBytes(16).toString('hex')}`;
  const streamName = 'Custom-FleetSecurityEvents';
  const rows: FakeLogsIngestion['rows'] = [];
  const requests: IngestionRequest[] = [];
  const tokenRequests: FakeLogsIngestion['tokenRequests'] = [];
  const failures: Array<{ status: number; headers?: Record<string, string>; body?: unknown }> = [];
  let base = '';

  function send(
    res: import('node:http').ServerResponse,
    status: number,
    body?: unknown,
    headers: Record<string, string> = {},
  ): void {
    res.writeHead(status, {
      ...(body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }),
      ...headers,
    });
    res.end(body === undefined ? '' : JSON.stringify(body));
  }

  function issueToken(form: URLSearchParams): { status: number; body: unknown } {
    const scope = form.get('scope') ?? '';
    const ok =
      form.get('grant_type') === 'client_credentials' &&
      form.get('client_id') === clientId &&
      form.get('client_secret') === clientSecret;
    tokenRequests.push({ scope, ok });
    if (!ok)
      return {
        status: 401,
        body: { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.' },
      };
    const resource = scope.split(' ')[0]?.replace(/\/\.default$/, '') ?? '';
    const iat = Math.floor(Date.now() / 1000);
    const jwt = signJwt(
      {
        appid: clientId,
        tid: tenantId,
        roles: ['Monitoring Metrics Publisher'],
        iss: `${base}/${tenantId}/v2.0`,
        aud: resource,
        iat,
        exp: iat + 3600,
      },
      signingKey,
    );
    return { status: 200, body: { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: jwt } };
  }

  async function ingest(
    req: import('node:http').IncomingMessage,
    body: Buffer,
  ): Promise<{ status: number; body?: unknown; headers?: Record<string, string>; record: IngestionRequest }> {
    const url = new URL(req.url ?? '/', base);
    const record: IngestionRequest = { path: url.pathname, status: 0, rows: 0, bytes: 0, audience: null };
    const done = (status: number, b?: unknown, headers?: Record<string, string>) => {
      record.status = status;
      return { status, body: b, headers, record };
    };
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer '))
      return done(401, { error: { code: 'InvalidToken', message: 'Missing bearer token.' } });
    let payload: Record<string, unknown> | null;
    try {
      payload = verifyJwt(auth.slice(7), signingKey, `${base}/${tenantId}/v2.0`);
    } catch {
      payload = null;
    }
    if (!payload) return done(401, { error: { code: 'InvalidToken', message: 'The token is not valid.' } });
    record.audience = typeof payload.aud === 'string' ? payload.aud : null;
    if (payload.aud !== MONITOR_AUDIENCE)
      return done(401, {
        error: {
          code: 'InvalidAudience',
          message: `Token audience ${String(payload.aud)} is not ${MONITOR_AUDIENCE}.`,
        },
      });
    if (url.searchParams.get('api-version') !== '2023-01-01')
      return done(400, { error: { code: 'InvalidApiVersion', message: 'api-version is missing or unsupported.' } });
    const m = /^\/dataCollectionRules\/([^/]+)\/streams\/([^/]+)$/.exec(url.pathname);
    if (!m || m[1] !== dcrId || decodeURIComponent(m[2] as string) !== streamName)
      return done(404, { error: { code: 'NotFound', message: 'Data collection rule or stream not found.' } });
    const failure = failures.shift();
    if (failure)
      return done(
        failure.status,
        failure.body ?? { error: { code: 'Failure', message: 'programmed failure' } },
        failure.headers,
      );
    let text: string;
    try {
      text = (req.headers['content-encoding'] === 'gzip' ? zlib.gunzipSync(body) : body).toString('utf8');
    } catch {
      return done(400, { error: { code: 'InvalidContentEncoding', message: 'The body is not valid gzip.' } });
    }
    record.bytes = Buffer.byteLength(text);
    if (record.bytes > 1_000_000)
      return done(413, {
        error: { code: 'ContentLengthLimitExceeded', message: 'Maximum request body size is 1 MB.' },
      });
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return done(400, { error: { code: 'InvalidJson', message: 'The body is not JSON.' } });
    }
    if (!Array.isArray(parsed))
      return done(400, { error: { code: 'InvalidPayload', message: 'The body must be a JSON array.' } });
    record.rows = parsed.length;
    rows.push(...(parsed as Array<Record<string, unknown>>));
    return done(204);
  }

  const server = https.createServer({ cert: pems.cert, key: pems.private }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const p = new URL(req.url ?? '/', 'https://x').pathname;
      if (req.method === 'GET' && p === `/${tenantId}/v2.0/.well-known/openid-configuration`) {
        const t = `${base}/${tenantId}`;
        return send(res, 200, {
          token_endpoint: `${t}/oauth2/v2.0/token`,
          authorization_endpoint: `${t}/oauth2/v2.0/authorize`,
          end_session_endpoint: `${t}/oauth2/v2.0/logout`,
          issuer: `${t}/v2.0`,
          jwks_uri: `${t}/discovery/v2.0/keys`,
          response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
          token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
        });
      }
      if (req.method === 'POST' && p === `/${tenantId}/oauth2/v2.0/token`) {
        const r = issueToken(new URLSearchParams(body.toString('utf8')));
        return send(res, r.status, r.body);
      }
      if (req.method === 'POST' && p.startsWith('/dataCollectionRules/')) {
        void ingest(req, body).then((r) => {
          requests.push(r.record);
          send(res, r.status, r.body, r.headers);
        });
        return;
      }
      send(res, 404, { error: { code: 'NotFound', message: 'not found' } });
    });
  });
  server.on('clientError', (_e, s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: base,
    caFile,
    tenantId,
    clientId,
    clientSecret,
    dcrId,
    streamName,
    rows,
    requests,
    tokenRequests,
    failNext(n, reply) {
      for (let i = 0; i < n; i++) failures.push(reply);
    },
    reset() {
      rows.length = 0;
      requests.length = 0;
      tokenRequests.length = 0;
      failures.length = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
