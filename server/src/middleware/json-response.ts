import type { Express, Response } from 'express';

/**
 * res.json for this JSON API: serialize once, set type and length, end. Express's res.json
 * hands the text to res.send, which parses the Content-Type again to add a charset, looks
 * the type up in the MIME table and runs the ETag/freshness checks (ETags are off here), on
 * every response. Same output: `application/json; charset=utf-8` (a type already set gets the charset), a
 * Content-Length, no body for HEAD, and none (nor entity headers) for 204 and 304.
 */
function json(this: Response, value: unknown): Response {
  const text = JSON.stringify(value) as string | undefined;
  const type = this.getHeader('Content-Type');
  if (type === undefined) this.setHeader('Content-Type', 'application/json; charset=utf-8');
  else if (typeof type === 'string' && !/;\s*charset=/i.test(type))
    this.setHeader('Content-Type', `${type}; charset=utf-8`);
  if (this.statusCode === 204 || this.statusCode === 304) {
    this.removeHeader('Content-Type');
    this.removeHeader('Content-Length');
    this.removeHeader('Transfer-Encoding');
    this.end();
    return this;
  }
  const body = text ?? '';
  this.setHeader('Content-Length', Buffer.byteLength(body, 'utf8'));
  if (this.req.method === 'HEAD') this.end();
  else this.end(body, 'utf8');
  return this;
}

/** Installs the lean res.json on this app's responses (app.response, not Express globally). */
export function useLeanJson(app: Express): void {
  (app.response as Response).json = json as Response['json'];
}
