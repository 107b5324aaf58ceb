/**
 * The store's writer thread. SQLite writes and fsyncs happen here, so they never delay the
 * main thread's path from a reading to a stop command.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type EventRow, EventWriter, openDb, type Synchronous } from './db.js';

export type WriterRequest =
  | { readonly op: 'append'; readonly id: number; readonly rows: readonly EventRow[] }
  | { readonly op: 'close'; readonly id: number };

export type WriterReply =
  | { readonly op: 'ready'; readonly lastSeq: number }
  | { readonly op: 'appended'; readonly id: number; readonly lastSeq: number; readonly count: number }
  | { readonly op: 'closed'; readonly id: number }
  | { readonly op: 'error'; readonly id: number; readonly message: string; readonly code?: string };

const { path, synchronous } = workerData as { path: string; synchronous: Synchronous };
const port = parentPort;
if (!port) throw new Error('store worker must run in a worker thread');

try {
  const db = openDb(path, synchronous);
  const writer = new EventWriter(db);
  port.postMessage({ op: 'ready', lastSeq: writer.lastSeq() } satisfies WriterReply);
  port.on('message', (msg: WriterRequest) => {
    try {
      if (msg.op === 'append') {
        const lastSeq = writer.append(msg.rows);
        port.postMessage({ op: 'appended', id: msg.id, lastSeq, count: msg.rows.length } satisfies WriterReply);
      } else if (msg.op === 'close') {
        db.pragma('wal_checkpoint(TRUNCATE)');
        db.close();
        port.postMessage({ op: 'closed', id: msg.id } satisfies WriterReply);
        port.close();
      }
    } catch (err) {
      const e = err as Error & { code?: string };
      port.postMessage({
        op: 'error',
        id: msg.id,
        message: e.message,
        ...(e.code ? { code: e.code } : {}),
      } satisfies WriterReply);
    }
  });
} catch (err) {
  const e = err as Error & { code?: string };
  port.postMessage({ op: 'error', id: 0, message: e.message, ...(e.code ? { code: e.code } : {}) } satisfies WriterReply);
}
