/** The inference worker thread: a SessionHost driven by messages from WorkerRunner (runner.ts). */
import { parentPort } from 'node:worker_threads';
import { ModelCardError } from './card.js';
import { SessionHost } from './host.js';
import type { WorkerReply, WorkerRequest } from './runner.js';

const host = new SessionHost();
const port = parentPort;
if (!port) throw new Error('model worker must run in a worker thread');

port.on('message', (m: WorkerRequest) => {
  const fail = (err: unknown) =>
    port.postMessage({
      op: 'error',
      req: m.req,
      field: err instanceof ModelCardError ? err.field : undefined,
      message: err instanceof ModelCardError ? err.detail : (err as Error).message,
    } satisfies WorkerReply);
  switch (m.op) {
    case 'load':
      host.load(m.slot, m.card, new Uint8Array(m.bytes), m.file).then(() => port.postMessage({ op: 'ok', req: m.req }), fail);
      break;
    case 'run': {
      const data = new Float32Array(m.data);
      host.run(m.slot, data, m.rows).then((scores) => {
        // Copy: the runtime's output buffer is not ours to transfer.
        const copy = Float32Array.from(scores);
        port.postMessage({ op: 'scores', req: m.req, scores: copy.buffer } satisfies WorkerReply, [copy.buffer]);
      }, fail);
      break;
    }
    case 'release':
      host.release(m.slot).then(() => port.postMessage({ op: 'ok', req: m.req }), fail);
      break;
  }
});
