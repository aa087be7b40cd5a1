import type http from 'node:http';
import express from 'express';
import request from 'supertest';
import { useLeanJson } from '../../src/middleware/json-response';
import { rawRequest } from '../helpers/raw';

function appWith(lean: boolean): express.Express {
  const app = express();
  app.set('etag', false);
  if (lean) useLeanJson(app);
  app.all('/obj', (_req, res) => {
    res.json({ ok: true, text: 'é 🚀 \u2028' });
  });
  app.get('/typed', (_req, res) => {
    res.setHeader('Content-Type', 'application/problem+json');
    res.status(400).json({ title: 'x' });
  });
  app.get('/empty', (_req, res) => {
    res.status(204).json({ ignored: true });
  });
  app.get('/undef', (_req, res) => {
    res.json(undefined);
  });
  return app;
}

const raw = (app: express.Express, method: string, path: string) => rawRequest(app, method, path, {}, Buffer.alloc(0));

const pick = (h: http.IncomingHttpHeaders) => ({
  type: h['content-type'],
  length: h['content-length'],
  te: h['transfer-encoding'],
});

describe('the lean res.json', () => {
  test.each([
    ['GET', '/obj'],
    ['HEAD', '/obj'],
    ['POST', '/obj'],
    ['GET', '/typed'],
    ['GET', '/empty'],
    ['GET', '/undef'],
  ])(
    'when %s %s, then status, body, Content-Type and Content-Length are what Express itself sends',
    async (method, path) => {
      const mine = await raw(appWith(true), method, path);
      const theirs = await raw(appWith(false), method, path);
      expect(mine.status).toBe(theirs.status);
      expect(mine.text).toBe(theirs.text);
      expect(pick(mine.headers)).toEqual(pick(theirs.headers));
    },
  );

  test('when the body holds multi-byte characters, then Content-Length counts bytes, not characters', async () => {
    const res = await request(appWith(true)).get('/obj');
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(Number(res.headers['content-length'])).toBe(
      Buffer.byteLength(JSON.stringify({ ok: true, text: 'é 🚀 \u2028' })),
    );
    expect(res.body).toEqual({ ok: true, text: 'é 🚀 \u2028' });
  });

  test("when one app installs it, then another Express app in the process keeps Express's own res.json", () => {
    const a = appWith(true);
    const b = express();
    expect(a.response.json).not.toBe(b.response.json);
  });
});
