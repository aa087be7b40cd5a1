/**
 * A worker thread of the offline verifier: reads blocks of archived rows (offline-rows.ts)
 * while the main thread hashes the chain, and (the first thread) keeps the Merkle trees the
 * main thread feeds it the chain hashes for (offline-trees.ts). Messages are handled in the
 * order they come; "rows" and "sync" are answered, in that order.
 */
import { parentPort } from 'node:worker_threads';
import { readRows } from './offline-rows';
import { Trees, type TreeTenant } from './offline-trees';

export type ReaderMessage =
  | { type: 'rows'; block: Uint8Array; final: boolean }
  | { type: 'trees'; tenants: TreeTenant[] }
  | { type: 'add'; count: number; tenant: Int32Array; hashes: Uint8Array }
  | { type: 'sync' };

const port = parentPort;
if (port) {
  let trees: Trees | null = null;
  port.on('message', (m: ReaderMessage) => {
    switch (m.type) {
      case 'rows': {
        const b = readRows(m.block, m.final);
        port.postMessage(b, [
          b.body.buffer,
          b.bodyEnd.buffer,
          b.key.buffer,
          b.line.buffer,
          b.tenant.buffer,
        ] as ArrayBuffer[]);
        break;
      }
      case 'trees':
        trees = new Trees(m.tenants);
        break;
      case 'add':
        for (let i = 0; i < m.count && trees; i += 1)
          if (!trees.add(m.tenant[i] as number, m.hashes.subarray(i * 32, i * 32 + 32))) break;
        break;
      case 'sync':
        port.postMessage(trees?.state() ?? null);
        break;
    }
  });
  port.postMessage('ready');
}
