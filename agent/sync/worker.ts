/**
 * The sync thread: a read-only SQLite connection for the backlog pages, the kafkajs producer, and
 * a MessagePort to the store's writer thread for cursor commits. Talks to the main thread only to
 * report status and forward log lines.
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { KeeperStats, MapEntry } from '../store/keeper.js';
import type { SyncToWriter, WriterToSync } from '../store/worker.js';
import type { KafkaSyncConfig } from './kafka.js';
import { Syncer, type SyncStatus } from './syncer.js';

export interface SyncWorkerData {
  readonly path: string;
  readonly gatewayId: string;
  readonly config: KafkaSyncConfig;
  readonly writer: MessagePort;
}

export type SyncWorkerRequest = { readonly op: 'stop' };
export type SyncWorkerReply =
  | { readonly op: 'status'; readonly status: SyncStatus }
  | { readonly op: 'log'; readonly level: 'info' | 'warn' | 'error'; readonly obj: Record<string, unknown>; readonly msg: string }
  | { readonly op: 'stopped' }
  | { readonly op: 'failed'; readonly message: string };

const { path, gatewayId, config, writer } = workerData as SyncWorkerData;
const port = parentPort;
if (!port) throw new Error('sync worker must run in a worker thread');

try {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  let nextId = 1;
  const pending = new Map<number, { resolve: (s: KeeperStats) => void; reject: (e: Error) => void }>();
  let appended: (() => void) | undefined;
  writer.on('message', (m: WriterToSync) => {
    if (m.op === 'appended') {
      appended?.();
      appended = undefined;
    } else {
      const p = pending.get(m.id);
      pending.delete(m.id);
      if (m.op === 'committed') p?.resolve(m.stats);
      else p?.reject(new Error(`local cursor commit failed: ${m.message}`));
    }
  });
  // The store closes its end at shutdown: a commit still waiting is recovered from Kafka at the next start.
  writer.on('close', () => {
    for (const p of pending.values()) p.reject(new Error('store closed'));
    pending.clear();
  });
  const syncer = new Syncer({
    db,
    gatewayId,
    config,
    commit: (cursor: number, map: readonly MapEntry[], at: number) =>
      new Promise<KeeperStats>((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        writer.postMessage({ op: 'commit', id, cursor, map, at } satisfies SyncToWriter);
      }),
    waitForRows: (ms) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        appended = () => {
          clearTimeout(t);
          resolve();
        };
      }),
    log: (level, obj, msg) => port.postMessage({ op: 'log', level, obj, msg } satisfies SyncWorkerReply),
    report: (status) => port.postMessage({ op: 'status', status: { ...status } } satisfies SyncWorkerReply),
  });
  syncer.start();
  port.on('message', (m: SyncWorkerRequest) => {
    if (m.op !== 'stop') return;
    void syncer.stop().finally(() => {
      db.close();
      writer.close();
      port.postMessage({ op: 'stopped' } satisfies SyncWorkerReply);
    });
  });
} catch (err) {
  port.postMessage({ op: 'failed', message: (err as Error).message } satisfies SyncWorkerReply);
}
