/**
 * The store's limits and its side of the Kafka outbox, run on the writer thread (the only writer of
 * events and the outbox; see worker.ts).
 *
 * - Rows with `seq > sync_cursor` are unsent. Only they count against `max_bytes` (field note 11):
 *   delivered rows are kept for replay by age and bytes, and never make the store reject anything.
 * - When the cap or the free-space floor is reached, synced rows go first, then unsent rows are
 *   evicted kind by kind in `EVICTION_ORDER` (routine aggregates first, actions last), oldest first.
 *   Every eviction is counted per kind, persisted in `evictions`, and reported to the main thread.
 * - `commit()` is how the syncer marks a range sent: cursor, sequence ↔ partition/offset map and
 *   byte accounting move in one transaction.
 *
 * Sizes are payload characters plus a fixed per-row overhead: an estimate of the bytes on disk that
 * stays cheap to maintain incrementally.
 */
import { statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type Database from 'better-sqlite3';
import { EVENT_KINDS, type EventKind } from '../types.js';
import type { Db, EventRow } from './db.js';

export const ROW_OVERHEAD = 48;

/** Unsent rows are evicted in this order: routine first, what an auditor needs last. */
export const EVICTION_ORDER: readonly EventKind[] = ['aggregate', 'twin', 'capture', 'alarm', 'anomaly', 'audit', 'action'];

export interface KeeperLimits {
  readonly maxBytes: number;
  readonly minFreeBytes: number;
  readonly retentionAgeMs: number;
  readonly retentionBytes: number;
}

export interface MapEntry {
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly count: number;
  readonly topic: string;
  readonly partition: number;
  readonly baseOffset: number;
}

export interface KeeperStats {
  cursor: number;
  unsentEvents: number;
  unsentBytes: number;
  syncedEvents: number;
  syncedBytes: number;
  /** Unsent events evicted since the store was created, by kind. */
  evicted: Record<string, number>;
  evictedBytes: number;
  lastSuccess: number;
  storeId: string;
}

const rowBytes = (payload: string) => payload.length + ROW_OVERHEAD;

export class StoreKeeper {
  readonly stats: KeeperStats;
  private readonly evictKind: Database.Statement;
  private readonly deleteSynced: Database.Statement;
  private readonly oldestSynced: Database.Statement;
  private readonly rangeSize: Database.Statement;
  private readonly setMeta: Database.Statement;
  private readonly insertMap: Database.Statement;
  private readonly addEviction: Database.Statement;
  private readonly dir: string | undefined;
  private lastStatfs = 0;
  private free = Number.POSITIVE_INFINITY;

  constructor(
    private readonly db: Db,
    path: string,
    private readonly limits: KeeperLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.dir = path === ':memory:' ? undefined : dirname(resolve(path));
    const meta = (k: string) =>
      (db.prepare('SELECT value FROM meta WHERE key = ?').get(k) as { value: string } | undefined)?.value;
    const cursor = Number(meta('sync_cursor') ?? 0);
    const size = db.prepare(
      `SELECT COUNT(*) AS n, COALESCE(SUM(length(payload)), 0) + COUNT(*) * ${ROW_OVERHEAD} AS b FROM events WHERE seq > ? AND seq <= ?`,
    );
    this.rangeSize = size;
    const unsent = size.get(cursor, Number.MAX_SAFE_INTEGER) as { n: number; b: number };
    const synced = size.get(-1, cursor) as { n: number; b: number };
    const evicted: Record<string, number> = Object.fromEntries(EVENT_KINDS.map((k) => [k, 0]));
    let evictedBytes = 0;
    for (const r of db.prepare('SELECT kind, count, bytes FROM evictions').all() as Array<{
      kind: string;
      count: number;
      bytes: number;
    }>) {
      evicted[r.kind] = r.count;
      evictedBytes += r.bytes;
    }
    this.stats = {
      cursor,
      unsentEvents: unsent.n,
      unsentBytes: unsent.b,
      syncedEvents: synced.n,
      syncedBytes: synced.b,
      evicted,
      evictedBytes,
      lastSuccess: Number(meta('sync_last_success') ?? 0),
      storeId: meta('store_id') ?? 'unknown',
    };
    this.evictKind = db.prepare(
      `DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE kind = ? AND seq > ? ORDER BY seq LIMIT ?)
       RETURNING length(payload) AS len`,
    );
    this.deleteSynced = db.prepare(
      `DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= ? ORDER BY seq LIMIT ?) RETURNING length(payload) AS len`,
    );
    this.oldestSynced = db.prepare('SELECT seq, ingest_time FROM events WHERE seq <= ? ORDER BY seq LIMIT ?');
    this.setMeta = db.prepare(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
    );
    this.insertMap = db.prepare(
      'INSERT INTO sync_map (first_seq, last_seq, count, topic, partition, base_offset, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.addEviction = db.prepare(
      `INSERT INTO evictions (kind, count, bytes) VALUES (?, ?, ?)
       ON CONFLICT(kind) DO UPDATE SET count = count + excluded.count, bytes = bytes + excluded.bytes`,
    );
  }

  /** Accounts for rows just appended (in the same transaction as the insert). */
  appended(rows: readonly EventRow[]): void {
    let b = 0;
    for (const r of rows) b += rowBytes(r[4]);
    this.stats.unsentEvents += rows.length;
    this.stats.unsentBytes += b;
  }

  /** Free bytes on the store's filesystem (statfs is a cheap syscall: checked after every batch). */
  freeBytes(force = false): number {
    if (!this.dir) return Number.POSITIVE_INFINITY;
    const t = this.now();
    if (force || t - this.lastStatfs >= 0) {
      this.lastStatfs = t;
      try {
        const s = statfsSync(this.dir);
        this.free = s.bavail * s.bsize;
      } catch {
        this.free = Number.POSITIVE_INFINITY;
      }
    }
    return this.free;
  }

  /**
   * Applies the cap and the floor. Returns the evictions made, by kind (empty when within limits).
   * `extra` frees at least that many more bytes (used after SQLITE_FULL).
   */
  enforce(extra = 0): Record<string, number> {
    const out: Record<string, number> = {};
    const { maxBytes, minFreeBytes } = this.limits;
    let deficit = extra;
    if (minFreeBytes > 0) {
      const free = this.freeBytes(extra > 0);
      if (free < minFreeBytes) deficit = Math.max(deficit, minFreeBytes - free + 256 * 1024);
    }
    const overCap = maxBytes > 0 && this.stats.unsentBytes > maxBytes;
    if (deficit <= 0 && !overCap) return out;
    this.db.transaction(() => {
      // 1. The floor: delivered rows are the cheapest to give up.
      let freed = 0;
      while (deficit > 0 && freed < deficit && this.stats.syncedEvents > 0) {
        const rows = this.deleteSynced.all(this.stats.cursor, 2000) as Array<{ len: number }>;
        if (rows.length === 0) {
          this.stats.syncedEvents = 0;
          this.stats.syncedBytes = 0;
          break;
        }
        let b = 0;
        for (const r of rows) b += r.len + ROW_OVERHEAD;
        freed += b;
        this.stats.syncedEvents -= rows.length;
        this.stats.syncedBytes = Math.max(0, this.stats.syncedBytes - b);
      }
      // 2. Unsent rows, by priority. Hysteresis: go 5% below the cap so eviction runs in chunks.
      const capTarget = overCap ? maxBytes * 0.95 : Number.POSITIVE_INFINITY;
      const need = () => this.stats.unsentBytes > capTarget || freed < deficit;
      for (const kind of EVICTION_ORDER) {
        while (need()) {
          const rows = this.evictKind.all(kind, this.stats.cursor, 1000) as Array<{ len: number }>;
          if (rows.length === 0) break;
          let b = 0;
          for (const r of rows) b += r.len + ROW_OVERHEAD;
          freed += b;
          this.stats.unsentEvents -= rows.length;
          this.stats.unsentBytes -= b;
          this.stats.evicted[kind] = (this.stats.evicted[kind] ?? 0) + rows.length;
          this.stats.evictedBytes += b;
          out[kind] = (out[kind] ?? 0) + rows.length;
          this.addEviction.run(kind, rows.length, b);
        }
        if (!need()) break;
      }
    })();
    if (deficit > 0) this.reclaim();
    return out;
  }

  /** Marks everything up to `cursor` as delivered and records where it went. */
  commit(cursor: number, map: readonly MapEntry[], at: number): void {
    if (cursor <= this.stats.cursor) return;
    this.db.transaction(() => {
      const sent = this.rangeSize.get(this.stats.cursor, cursor) as { n: number; b: number };
      this.setMeta.run('sync_cursor', String(cursor));
      this.setMeta.run('sync_last_success', String(at));
      for (const m of map) this.insertMap.run(m.firstSeq, m.lastSeq, m.count, m.topic, m.partition, m.baseOffset, at);
      this.stats.cursor = cursor;
      this.stats.lastSuccess = at;
      this.stats.unsentEvents = Math.max(0, this.stats.unsentEvents - sent.n);
      this.stats.unsentBytes = Math.max(0, this.stats.unsentBytes - sent.b);
      this.stats.syncedEvents += sent.n;
      this.stats.syncedBytes += sent.b;
    })();
  }

  /** Deletes delivered rows past the retention age or bytes, and gives the pages back. */
  retain(): number {
    const { retentionAgeMs, retentionBytes } = this.limits;
    const cutoff = this.now() - retentionAgeMs;
    let deleted = 0;
    this.db.transaction(() => {
      for (let guard = 0; guard < 50 && this.stats.syncedEvents > 0; guard++) {
        const page = this.oldestSynced.all(this.stats.cursor, 2000) as Array<{ seq: number; ingest_time: number }>;
        if (page.length === 0) break;
        let n = 0;
        if (this.stats.syncedBytes > retentionBytes) n = page.length;
        else while (n < page.length && (page[n] as { ingest_time: number }).ingest_time < cutoff) n++;
        if (n === 0) break;
        const rows = this.deleteSynced.all(this.stats.cursor, n) as Array<{ len: number }>;
        let b = 0;
        for (const r of rows) b += r.len + ROW_OVERHEAD;
        this.stats.syncedEvents -= rows.length;
        this.stats.syncedBytes = Math.max(0, this.stats.syncedBytes - b);
        deleted += rows.length;
        if (n < page.length && this.stats.syncedBytes <= retentionBytes) break;
      }
      this.db.prepare('DELETE FROM sync_map WHERE last_seq < (SELECT COALESCE(MIN(seq), 0) FROM events)').run();
    })();
    if (deleted > 0) this.reclaim();
    return deleted;
  }

  /** Returns free pages to the filesystem (auto_vacuum=INCREMENTAL), then truncates the WAL. */
  reclaim(): void {
    try {
      this.db.pragma('incremental_vacuum');
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // Best effort: a reader may hold the WAL; the pages are reused by the next inserts anyway.
    }
  }
}
