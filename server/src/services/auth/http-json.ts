/**
 * A small, strict JSON GET for the identity provider (OIDC discovery and JWKS): one overall
 * deadline (connect + headers + body), a response size cap, no redirects, 200 only.
 */
import http from 'node:http';
import https from 'node:https';

class IdpFetchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdpFetchError';
  }
}

export interface FetchJsonOptions {
  timeoutMs: number;
  /** Default 512 KiB: far above any real discovery document or key set. */
  maxBytes?: number;
}

export function fetchJson(url: string, opts: FetchJsonOptions): Promise<unknown> {
  const maxBytes = opts.maxBytes ?? 512 * 1024;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.reject(new IdpFetchError('invalid URL'));
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    return Promise.reject(new IdpFetchError(`unsupported protocol ${u.protocol}`));
  const lib = u.protocol === 'https:' ? https : http;
  return new Promise<unknown>((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | null, value?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(value);
    };
    const req = lib.request(
      u,
      { method: 'GET', agent: false, headers: { accept: 'application/json', 'user-agent': 'fleet-security-api' } },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          finish(new IdpFetchError(`HTTP ${res.statusCode ?? 0} from ${u.host}${u.pathname}`));
          req.destroy();
          return;
        }
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > maxBytes) {
          finish(new IdpFetchError(`response larger than ${maxBytes} bytes`));
          req.destroy();
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            finish(new IdpFetchError(`response larger than ${maxBytes} bytes`));
            req.destroy();
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          try {
            finish(null, JSON.parse(Buffer.concat(chunks).toString('utf8')));
          } catch {
            finish(new IdpFetchError(`invalid JSON from ${u.host}${u.pathname}`));
          }
        });
        res.on('error', (err) => finish(new IdpFetchError(err.message)));
      },
    );
    const timer = setTimeout(() => {
      finish(new IdpFetchError(`no complete answer from ${u.host} within ${opts.timeoutMs} ms`));
      req.destroy();
    }, opts.timeoutMs);
    req.on('error', (err) => finish(new IdpFetchError(err.message)));
    req.end();
  });
}
