/**
 * Baseline: bare Express 5 answering the same JSON as GET /api/health, on Express's own
 * server (app.listen), or with BARE_SERVER=app on the server the API itself runs on
 * (createHttpServer: requests born with the app's prototypes), for a like-for-like ratio.
 */
import express from 'express';
import { createHttpServer } from '../../server/src/app';

const app = express();
const startedAt = Date.now();
app.get('/api/health', (_req, res) => {
  res.json({
    success: true,
    status: 'ok',
    version: '1.0.0',
    uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000),
  });
});
const onListening = (): void => {
  const a = server.address() as { port: number };
  process.stdout.write(`LISTENING http://127.0.0.1:${a.port}\n`);
};
const server =
  process.env.BARE_SERVER === 'app'
    ? createHttpServer(app).listen(0, '127.0.0.1', onListening)
    : app.listen(0, '127.0.0.1', onListening);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
