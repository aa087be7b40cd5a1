/**
 * Checks that the listen address is free before the slow start-up steps (embedded
 * PostgreSQL, migrations), so a busy port is reported at once with what to do.
 */
import net from 'node:net';

/** null when host:port can be bound now; else a message naming the port and saying "set PORT". */
export function checkListenAddress(host: string, port: number): Promise<string | null> {
  if (port === 0) return Promise.resolve(null);
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE')
        resolve(
          `port ${port} on ${host} is already in use (another npm start, or another program): set PORT to a free port, e.g. PORT=${port === 65535 ? 3001 : port + 1} npm start`,
        );
      else if (err.code === 'EACCES')
        resolve(`port ${port} on ${host} needs privileges this process does not have: set PORT to a port above 1023`);
      else if (err.code === 'EADDRNOTAVAIL')
        resolve(`HOST ${host} is not an address of this machine: set HOST (127.0.0.1 by default)`);
      else resolve(`cannot listen on ${host}:${port} (${err.code ?? err.message}): set PORT or HOST`);
    });
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(null)));
  });
}
