/** Baseline: bare Express 5 answering the same JSON as GET /api/health. */
import express from 'express';

const app = express();
const startedAt = Date.now();
app.get('/api/health', (_req, res) => {
  res.json({ success: true, status: 'ok', version: '1.0.0', uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000) });
});
const server = app.listen(0, '127.0.0.1', () => {
  const a = server.address() as { port: number };
  process.stdout.write(`LISTENING http://127.0.0.1:${a.port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
