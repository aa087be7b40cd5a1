import express, { type NextFunction, type Request, type Response } from 'express';
import request from 'supertest';
import { series } from '../../src/middleware/series';

function appWith(...handlers: Parameters<typeof series>): express.Express {
  const app = express();
  app.use(series(...handlers));
  app.get('/', (_req, res) => {
    res.json({ reached: true, trail: (res.locals.trail as string[] | undefined) ?? [] });
  });
  app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
    res.status(418).json({ error: err.message, trail: (res.locals.trail as string[] | undefined) ?? [] });
  });
  return app;
}

const mark = (name: string) => (_req: Request, res: Response, next: NextFunction) => {
  res.locals.trail = [...((res.locals.trail as string[] | undefined) ?? []), name];
  next();
};

describe('series()', () => {
  it('runs every handler in order (arrays flattened), then the routes', async () => {
    const r = await request(appWith(mark('a'), [mark('b'), mark('c')], mark('d'))).get('/');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ reached: true, trail: ['a', 'b', 'c', 'd'] });
  });

  it('next(err) stops the chain and reaches the error handler', async () => {
    const r = await request(appWith(mark('a'), (_q, _s, next) => next(new Error('stop')), mark('never'))).get('/');
    expect(r.status).toBe(418);
    expect(r.body).toEqual({ error: 'stop', trail: ['a'] });
  });

  it('a synchronous throw reaches the error handler', async () => {
    const r = await request(
      appWith(
        mark('a'),
        () => {
          throw new Error('thrown');
        },
        mark('never'),
      ),
    ).get('/');
    expect(r.body).toEqual({ error: 'thrown', trail: ['a'] });
  });

  it('a rejected promise reaches the error handler', async () => {
    const r = await request(appWith(mark('a'), async () => Promise.reject(new Error('rejected')), mark('never'))).get(
      '/',
    );
    expect(r.body).toEqual({ error: 'rejected', trail: ['a'] });
  });

  it('an asynchronous next() continues the chain', async () => {
    const r = await request(appWith(mark('a'), (_q, _s, next) => setImmediate(() => next()), mark('b'))).get('/');
    expect(r.body).toEqual({ reached: true, trail: ['a', 'b'] });
  });

  it('calling next twice does not run the rest twice or answer twice', async () => {
    let runs = 0;
    const r = await request(
      appWith(
        (_q, _s, next) => {
          next(new Error('first'));
          next(new Error('second'));
        },
        () => {
          runs++;
        },
      ),
    ).get('/');
    expect(r.body.error).toBe('first');
    expect(runs).toBe(0);
  });
});
