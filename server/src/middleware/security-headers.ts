import type { Request, Response } from 'express';
import helmet from 'helmet';

/**
 * Headers that only matter to HTML documents or retired browsers; a JSON API drops them
 * (fewer bytes and header validations on every response).
 */
const DOCUMENT_ONLY = new Set([
  'origin-agent-cluster',
  'x-dns-prefetch-control',
  'x-download-options',
  'x-permitted-cross-domain-policies',
  'x-xss-protection',
  'cross-origin-opener-policy',
]);

/**
 * helmet tuned for a JSON API, computed once: helmet runs a single time at start-up against a
 * recording response, and the resulting header list is applied per request (nothing computed
 * per request). Nothing may be rendered, framed or sniffed; responses are not cached.
 */
export function securityHeaderList(): ReadonlyArray<readonly [string, string]> {
  const h = helmet({
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true },
    crossOriginResourcePolicy: { policy: 'same-origin' },
    referrerPolicy: { policy: 'no-referrer' },
    xFrameOptions: { action: 'deny' },
  });
  const headers = new Map<string, string>();
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers.set(name, String(value));
    },
    removeHeader(name: string) {
      headers.delete(name);
    },
  };
  let called = false;
  h({} as Request, recorder as unknown as Response, () => {
    called = true;
  });
  if (!called) throw new Error('helmet did not complete synchronously');
  const list: Array<readonly [string, string]> = [...headers.entries()].filter(
    ([n]) => !DOCUMENT_ONLY.has(n.toLowerCase()),
  );
  list.push(['Cache-Control', 'no-store']);
  return Object.freeze(list);
}
