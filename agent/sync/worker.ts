/**
 * The sync process: a read-only SQLite connection for the backlog pages, the librdkafka producer
 * (kafkajs only administers), and, relayed by the main thread, the store's writer thread for
 * cursor commits. A child process, not a worker thread: the native Kafka client delivers its
 * callbacks on the process's main event loop (libuv default loop), which a worker thread does not
 * run. Talks to the main thread only over IPC: status, log lines, writer messages.
 * It exits when the main process goes away (the IPC channel closes).
 */
import { setPriority } from 'node:os';
import Database from 'better-sqlite3';
import type { KeeperStats, MapEntry } from '../store/keeper.js';
import type { SyncToWriter, WriterToSync } from '../store/worker.js';
import type { KafkaSyncConfig } from './kafka.js';
import { type RefusedEvent, Syncer, type SyncStatus } from './syncer.js';

export interface SyncWorkerData {
  readonly path: string;
  readonly gatewayId: string;
  readonly config: KafkaSyncConfig;
}

export type SyncWorkerRequest =
  | { readonly op: 'start'; readonly data: SyncWorkerData }
  | { readonly op: 'stop' }
  | { readonly op: 'writer'; readonly m: WriterToSync }
  | { readonly op: 'writer-closed' }
  /** Pause between the parts of a page (ms; 0: none), from the agent's pacer (agent/sync/pacer.ts). */
  | { readonly op: 'pace'; readonly pauseMs: number };
export type SyncWorkerReply =
  | { readonly op: 'status'; readonly status: SyncStatus }
  | { readonly op: 'log'; readonly level: 'info' | 'warn' | 'error'; readonly obj: Record<string, unknown>; readonly msg: string }
  | { readonly op: 'refused'; readonly event: RefusedEvent }
  | { readonly op: 'writer'; readonly m: SyncToWriter }
  | { readonly op: 'stopped' }
  /** A librdkafka call outlived its deadline: this process exits right after, to be started anew. */
  | { readonly op: 'stuck'; readonly message: string }
  | { readonly op: 'failed'; readonly message: string };

/** Exit code of a sync process that gave up on a stuck Kafka client (EX_SOFTWARE). */
const STUCK_EXIT_CODE = 70;

const send = (m: SyncWorkerReply) => process.send?.(m);
if (!process.send) throw new Error('the sync process must be started by the agent (child_process.fork)');
process.once('disconnect', () => process.exit(0));
// A terminal's Ctrl-C or systemd's SIGTERM reach the whole process group / cgroup: the agent's process
// stops this one in order (the transaction in flight finishes), or its exit closes the IPC channel.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});

const data = await new Promise<SyncWorkerData>((resolve) => {
  const first = (m: SyncWorkerRequest) => {
    if (m.op !== 'start') return;
    process.off('message', first);
    resolve(m.data);
  };
  process.on('message', first);
});
const { path, gatewayId, config } = data;
// Background work: under CPU contention the agent's process (detection, stops) goes first. Set
// before librdkafka starts its threads, which inherit it.
try {
  if (config.nice > 0) setPriority(config.nice);
} catch {
  // Not permitted (a seccomp filter, a container): the drain runs at normal priority.
}

try {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  let nextId = 1;
  const pending = new Map<number, { resolve: (s: KeeperStats) => void; reject: (e: Error) => void }>();
  let appended: (() => void) | undefined;
  const fromWriter = (m: WriterToSync) => {
    if (m.op === 'appended') {
      appended?.();
      appended = undefined;
    } else {
      const p = pending.get(m.id);
      pending.delete(m.id);
      if (m.op === 'committed') p?.resolve(m.stats);
      else p?.reject(new Error(`local cursor commit failed: ${m.message}`));
    }
  };
  // The store closes its end at shutdown: a commit still waiting is recovered from Kafka at the next start.
  const writerClosed = () => {
    for (const p of pending.values()) p.reject(new Error('store closed'));
    pending.clear();
  };
  const syncer = new Syncer({
    db,
    gatewayId,
    config,
    commit: (cursor: number, map: readonly MapEntry[], at: number) =>
      new Promise<KeeperStats>((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        send({ op: 'writer', m: { op: 'commit', id, cursor, map, at } satisfies SyncToWriter });
      }),
    waitForRows: (ms) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        appended = () => {
          clearTimeout(t);
          resolve();
        };
      }),
    log: (level, obj, msg) => send({ op: 'log', level, obj, msg }),
    report: (status) => send({ op: 'status', status: { ...status } }),
    refused: (event) => send({ op: 'refused', event }),
    // The stuck call holds a pool thread and the client: exit once the agent has the reason, and it
    // starts a new process (the backlog stays in the store; Kafka's cursor says what was committed).
    stuck: (err) => {
      const exit = () => process.exit(STUCK_EXIT_CODE);
      setTimeout(exit, 2000).unref();
      if (process.send) process.send({ op: 'stuck', message: err.message } satisfies SyncWorkerReply, undefined, {}, exit);
      else exit();
    },
  });
  syncer.start();
  process.on('message', (m: SyncWorkerRequest) => {
    if (m.op === 'writer') fromWriter(m.m);
    else if (m.op === 'writer-closed') writerClosed();
    else if (m.op === 'pace') syncer.pace(m.pauseMs);
    else if (m.op === 'stop')
      void syncer.stop().finally(() => {
        db.close();
        send({ op: 'stopped' });
        process.disconnect();
      });
  });
} catch (err) {
  send({ op: 'failed', message: (err as Error).message });
}
