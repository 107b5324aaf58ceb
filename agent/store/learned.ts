/**
 * Learned baselines that survive restarts (contract E): the `learned_state` table of the event store's
 * SQLite file, one row per detector id, holding the detector's `snapshot()` and a hash of the
 * detector's configuration. At start a row whose hash matches the configured detector is restored; a
 * changed configuration relearns (and its row is deleted). Its own connection on the main thread,
 * written only when a detector finishes learning, relearns, and at shutdown; synchronous=NORMAL in
 * WAL mode (as the setpoints table): a commit is a WAL write without fsync.
 */
import { createHash } from 'node:crypto';
import type { LearnedState } from '../detectors/common.js';
import { type Db, openDb } from './db.js';

export interface StoredLearnedState {
  readonly detector: string;
  readonly configHash: string;
  readonly state: LearnedState;
  readonly savedAt: number;
}

/** A stable hash of a detector's configuration: key order does not matter, every value does. */
export function configHash(config: unknown): string {
  const canon = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canon)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v as object)
              .sort()
              .map((k) => [k, canon((v as Record<string, unknown>)[k])]),
          )
        : v;
  return createHash('sha256')
    .update(JSON.stringify(canon(config)))
    .digest('hex')
    .slice(0, 32);
}

export class LearnedStateStore {
  private constructor(private readonly db: Db) {}

  static open(path: string): LearnedStateStore {
    const db = openDb(path, 'NORMAL');
    db.pragma('busy_timeout = 2000');
    db.exec(
      `CREATE TABLE IF NOT EXISTS learned_state (
         detector TEXT PRIMARY KEY,
         config_hash TEXT NOT NULL,
         state TEXT NOT NULL,
         learned_at INTEGER NOT NULL,
         saved_at INTEGER NOT NULL
       )`,
    );
    return new LearnedStateStore(db);
  }

  all(): StoredLearnedState[] {
    const rows = this.db.prepare('SELECT detector, config_hash, state, saved_at FROM learned_state').all() as Array<{
      detector: string;
      config_hash: string;
      state: string;
      saved_at: number;
    }>;
    const out: StoredLearnedState[] = [];
    for (const r of rows) {
      try {
        out.push({
          detector: r.detector,
          configHash: r.config_hash,
          state: JSON.parse(r.state) as LearnedState,
          savedAt: r.saved_at,
        });
      } catch {
        // A garbled row is as good as none: that detector learns again.
      }
    }
    return out;
  }

  save(detector: string, hash: string, state: LearnedState, at: number): void {
    this.db
      .prepare(
        `INSERT INTO learned_state (detector, config_hash, state, learned_at, saved_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(detector) DO UPDATE SET config_hash = excluded.config_hash, state = excluded.state,
           learned_at = excluded.learned_at, saved_at = excluded.saved_at`,
      )
      .run(detector, hash, JSON.stringify(state), Math.round(state.learned_at), at);
  }

  delete(detector: string): void {
    this.db.prepare('DELETE FROM learned_state WHERE detector = ?').run(detector);
  }

  close(): void {
    this.db.close();
  }
}
