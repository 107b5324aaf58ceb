/**
 * The store's writer thread. SQLite writes and fsyncs happen here, so they never delay the
 * main thread's path from a reading to a stop command. It is the only writer of the events and the
 * outbox: appends, evictions, retention and the sync cursor (committed by the sync thread over its
 * own MessagePort) are serialised here. Two other connections open the same file writable but never
 * touch these rows: the control plane's setpoint tables (control/setpoints.ts, with busy_timeout), and
 * the read-back of latched trips at start (agent.ts), closed before this thread opens the file.
 */
import { existsSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { type EventRow, EventWriter, openDb, type Synchronous } from './db.js';
import { isCorruption, quarantine } from './file.js';
import { type KeeperLimits, type KeeperStats, type MapEntry, StoreKeeper } from './keeper.js';

export type WriterRequest =
  | { readonly op: 'append'; readonly id: number; readonly rows: readonly EventRow[] }
  | { readonly op: 'close'; readonly id: number }
  | { readonly op: 'sync-port'; readonly port: MessagePort };

export type WriterReply =
  | {
      readonly op: 'ready';
      readonly lastSeq: number;
      readonly stats: KeeperStats;
      readonly quarantined?: string;
      readonly reason?: string;
    }
  | {
      readonly op: 'appended';
      readonly id: number;
      readonly lastSeq: number;
      readonly count: number;
      readonly stats: KeeperStats;
      readonly evicted?: Record<string, number>;
    }
  | { readonly op: 'stats'; readonly stats: KeeperStats; readonly evicted?: Record<string, number> }
  | { readonly op: 'closed'; readonly id: number }
  | { readonly op: 'error'; readonly id: number; readonly message: string; readonly code?: string };

/** Between the sync thread and the writer. */
export type SyncToWriter = {
  readonly op: 'commit';
  readonly id: number;
  readonly cursor: number;
  readonly map: readonly MapEntry[];
  readonly at: number;
};
export type WriterToSync =
  | { readonly op: 'committed'; readonly id: number; readonly stats: KeeperStats }
  | { readonly op: 'commit-failed'; readonly id: number; readonly message: string }
  | { readonly op: 'appended'; readonly lastSeq: number };

export interface WriterData {
  readonly path: string;
  readonly synchronous: Synchronous;
  readonly limits: KeeperLimits;
  readonly maintainIntervalMs?: number;
}

const { path, synchronous, limits, maintainIntervalMs = 10_000 } = workerData as WriterData;
const port = parentPort;
if (!port) throw new Error('store worker must run in a worker thread');

function errorReply(id: number, err: unknown): WriterReply {
  const e = err as Error & { code?: string };
  return { op: 'error', id, message: e.message, ...(e.code ? { code: e.code } : {}) };
}

function open(): { db: ReturnType<typeof openDb>; quarantined?: string; reason?: string } {
  try {
    return { db: openDb(path, synchronous) };
  } catch (err) {
    if (!isCorruption(err) || path === ':memory:') throw err;
    const quarantined = quarantine(path);
    return { db: openDb(path, synchronous), quarantined, reason: (err as Error).message };
  }
}

try {
  const { db, quarantined, reason } = open();
  // A small WAL: a checkpoint needs the WAL's size again in the database file, so on a nearly full
  // disk a big WAL is what turns "full" into "stuck".
  db.pragma('wal_autocheckpoint = 256');
  db.pragma(`journal_size_limit = ${1024 * 1024}`);
  const writer = new EventWriter(db);
  const keeper = new StoreKeeper(db, path, limits);
  // Ballast: space given back when the disk is full, so evicting (itself a write) can still run.
  const reserve = limits.minFreeBytes > 0 && path !== ':memory:' ? `${path}.reserve` : undefined;
  const reserveBytes = Math.min(4 * 1024 * 1024, Math.floor(limits.minFreeBytes / 2));
  const fillReserve = () => {
    if (!reserve) return;
    try {
      if (!existsSync(reserve) || statSync(reserve).size < reserveBytes) writeFileSync(reserve, Buffer.alloc(reserveBytes));
    } catch {
      rmSync(reserve, { force: true });
    }
  };
  fillReserve();
  let syncPort: MessagePort | undefined;

  const append = (rows: readonly EventRow[]): number =>
    db.transaction(() => {
      const last = writer.append(rows);
      keeper.appended(rows);
      return last;
    })();

  port.postMessage({
    op: 'ready',
    lastSeq: writer.lastSeq(),
    stats: keeper.stats,
    ...(quarantined ? { quarantined, reason } : {}),
  } satisfies WriterReply);

  const maintain = setInterval(() => {
    try {
      keeper.retain();
      const evicted = keeper.enforce();
      port.postMessage({
        op: 'stats',
        stats: keeper.stats,
        ...(Object.keys(evicted).length ? { evicted } : {}),
      } satisfies WriterReply);
    } catch {
      // Reported by the next append that fails the same way.
    }
  }, maintainIntervalMs);
  maintain.unref();

  port.on('message', (msg: WriterRequest) => {
    try {
      if (msg.op === 'append') {
        let lastSeq: number;
        try {
          lastSeq = append(msg.rows);
        } catch (err) {
          if ((err as { code?: string }).code !== 'SQLITE_FULL') throw err;
          // Disk full: release the ballast, make room by the eviction policy, then try once more.
          if (reserve) rmSync(reserve, { force: true });
          keeper.reclaim();
          let bytes = 0;
          for (const r of msg.rows) bytes += r[4].length + 64;
          keeper.enforce(bytes * 2 + reserveBytes);
          lastSeq = append(msg.rows);
          fillReserve();
        }
        const evicted = keeper.enforce();
        port.postMessage({
          op: 'appended',
          id: msg.id,
          lastSeq,
          count: msg.rows.length,
          stats: keeper.stats,
          ...(Object.keys(evicted).length ? { evicted } : {}),
        } satisfies WriterReply);
        syncPort?.postMessage({ op: 'appended', lastSeq } satisfies WriterToSync);
      } else if (msg.op === 'sync-port') {
        syncPort = msg.port;
        syncPort.on('message', (m: SyncToWriter) => {
          if (m.op !== 'commit') return;
          try {
            keeper.commit(m.cursor, m.map, m.at);
            syncPort?.postMessage({ op: 'committed', id: m.id, stats: keeper.stats } satisfies WriterToSync);
            port.postMessage({ op: 'stats', stats: keeper.stats } satisfies WriterReply);
          } catch (err) {
            syncPort?.postMessage({ op: 'commit-failed', id: m.id, message: (err as Error).message } satisfies WriterToSync);
          }
        });
      } else if (msg.op === 'close') {
        clearInterval(maintain);
        syncPort?.close();
        db.pragma('wal_checkpoint(TRUNCATE)');
        db.close();
        port.postMessage({ op: 'closed', id: msg.id } satisfies WriterReply);
        port.close();
      }
    } catch (err) {
      port.postMessage(errorReply('id' in msg ? msg.id : 0, err));
    }
  });
} catch (err) {
  port.postMessage(errorReply(0, err));
}
