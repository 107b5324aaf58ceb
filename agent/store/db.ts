/**
 * The SQLite event store: schema, migrations and the statements used by the writer thread and the CLI.
 * Sequence numbers come from an AUTOINCREMENT key, so they never go backwards and are never reused,
 * even after rows are evicted.
 */

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { EVENT_PRIORITY, type EventKind } from '../types.js';

export type Db = Database.Database;
export type Synchronous = 'FULL' | 'NORMAL' | 'OFF';

/** Migrations in order; `user_version` records how many have run. Never edit one that shipped. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE events (
     seq         INTEGER PRIMARY KEY AUTOINCREMENT,
     kind        TEXT    NOT NULL,
     key         TEXT    NOT NULL,
     event_time  INTEGER NOT NULL,
     ingest_time INTEGER NOT NULL,
     priority    INTEGER NOT NULL,
     payload     TEXT    NOT NULL
   );
   CREATE INDEX events_kind_seq ON events(kind, seq);
   CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
  // Setpoints changed at run time through the control stream, on top of the config file (issue #4).
  `CREATE TABLE setpoints (
     detector   TEXT PRIMARY KEY,
     params     TEXT    NOT NULL,
     updated_at INTEGER NOT NULL,
     message_id TEXT,
     origin     TEXT    NOT NULL
   );`,
  // Kafka sync (issue #7): which sequence ranges went to which partition/offsets, and evictions.
  // The sync cursor, the store id and the last successful send live in meta.
  `CREATE TABLE sync_map (
     first_seq   INTEGER NOT NULL,
     last_seq    INTEGER NOT NULL,
     count       INTEGER NOT NULL,
     topic       TEXT    NOT NULL,
     partition   INTEGER NOT NULL,
     base_offset INTEGER NOT NULL,
     sent_at     INTEGER NOT NULL
   );
   CREATE INDEX sync_map_last_seq ON sync_map(last_seq);
   CREATE TABLE evictions (
     kind   TEXT PRIMARY KEY,
     count  INTEGER NOT NULL,
     bytes  INTEGER NOT NULL
   );
   INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(8))));
   INSERT OR IGNORE INTO meta (key, value) VALUES ('sync_cursor', '0');`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export function openDb(path: string, synchronous: Synchronous = 'FULL', readonly = false): Db {
  if (!readonly && path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { readonly, fileMustExist: readonly });
  if (readonly) return db;
  // Only a fresh file can take auto_vacuum without a full VACUUM; it lets the store give space back after sync.
  if ((db.pragma('user_version', { simple: true }) as number) === 0) db.pragma('auto_vacuum = INCREMENTAL');
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

export function migrate(db: Db): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    throw new Error(`database schema version ${version} is newer than this agent (${MIGRATIONS.length}); upgrade the agent`);
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v] as string);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

/** An event on its way into the store: [kind, key, eventTime, ingestTime, payloadJson]. */
export type EventRow = readonly [EventKind, string, number, number, string];

export class EventWriter {
  private readonly insert: Database.Statement;
  private readonly insertMany: (rows: readonly EventRow[]) => number;

  constructor(private readonly db: Db) {
    this.insert = db.prepare(
      'INSERT INTO events (kind, key, event_time, ingest_time, priority, payload) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.insertMany = db.transaction((rows: readonly EventRow[]) => {
      let last = 0;
      for (const r of rows) {
        last = Number(this.insert.run(r[0], r[1], r[2], r[3], EVENT_PRIORITY[r[0]], r[4]).lastInsertRowid);
      }
      return last;
    });
  }

  /** Appends rows in one transaction; returns the last sequence number written. */
  append(rows: readonly EventRow[]): number {
    return rows.length === 0 ? this.lastSeq() : this.insertMany(rows);
  }

  lastSeq(): number {
    const row = this.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'").get() as { seq: number } | undefined;
    return row?.seq ?? 0;
  }
}

export interface StoredEventRow {
  seq: number;
  kind: EventKind;
  key: string;
  event_time: number;
  ingest_time: number;
  payload: string;
}
