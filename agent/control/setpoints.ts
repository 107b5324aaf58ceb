/**
 * Persistence of run-time overrides (the `setpoints` table) and of the ids of applied control
 * messages (`control_seen`, kept until each message expires, so a captured message cannot be
 * replayed after a restart). Its own connection on the main thread, used only when a control
 * message arrives, when an override expires, and at start. synchronous=NORMAL in WAL mode: a commit
 * is a write to the WAL without fsync (microseconds), so a control message never stalls the hot
 * path on the disk; it survives an agent crash, and a power cut can at worst revert the last
 * updates before the next checkpoint (the audit events, written FULL, still record them).
 *
 * The columns added after the table first shipped (by, expires_at, file_params, meta) are added
 * here when missing, so an older store keeps its rows; a row without file_params predates conflict
 * detection.
 */
import { type Db, openDb } from '../store/db.js';

/** Who set one parameter, and when. */
export interface ParamOrigin {
  readonly by: string;
  readonly message_id: string;
  readonly applied_at: number;
}

export interface StoredSetpoint {
  readonly detector: string;
  /** The overridden parameters and their values. */
  readonly params: Record<string, unknown>;
  readonly updatedAt: number;
  readonly messageId: string | null;
  readonly origin: string;
  readonly by: string | null;
  /** When the file's values return (ms), or null for an override without expiry. */
  readonly expiresAt: number | null;
  /** The file's values of the overridden parameters when the override was made; null for old rows. */
  readonly fileParams: Record<string, unknown> | null;
  readonly meta: Record<string, ParamOrigin>;
}

const ADDED_COLUMNS: ReadonlyArray<[string, string]> = [
  ['by', 'TEXT'],
  ['expires_at', 'INTEGER'],
  ['file_params', 'TEXT'],
  ['meta', 'TEXT'],
];

export class SetpointStore {
  private constructor(private readonly db: Db) {}

  static open(path: string): SetpointStore {
    const db = openDb(path, 'NORMAL');
    db.pragma('busy_timeout = 2000');
    db.transaction(() => {
      const have = new Set((db.prepare('PRAGMA table_info(setpoints)').all() as Array<{ name: string }>).map((c) => c.name));
      for (const [name, type] of ADDED_COLUMNS) if (!have.has(name)) db.exec(`ALTER TABLE setpoints ADD COLUMN ${name} ${type}`);
      db.exec('CREATE TABLE IF NOT EXISTS control_seen (id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)');
    })();
    return new SetpointStore(db);
  }

  all(): StoredSetpoint[] {
    const rows = this.db
      .prepare(
        'SELECT detector, params, updated_at, message_id, origin, by, expires_at, file_params, meta FROM setpoints ORDER BY detector',
      )
      .all() as Array<{
      detector: string;
      params: string;
      updated_at: number;
      message_id: string | null;
      origin: string;
      by: string | null;
      expires_at: number | null;
      file_params: string | null;
      meta: string | null;
    }>;
    return rows.map((r) => ({
      detector: r.detector,
      params: JSON.parse(r.params) as Record<string, unknown>,
      updatedAt: r.updated_at,
      messageId: r.message_id,
      origin: r.origin,
      by: r.by,
      expiresAt: r.expires_at,
      fileParams: r.file_params === null ? null : (JSON.parse(r.file_params) as Record<string, unknown>),
      meta: r.meta === null ? {} : (JSON.parse(r.meta) as Record<string, ParamOrigin>),
    }));
  }

  /**
   * Saves a detector's override and, in the same transaction, remembers the message id until
   * `seenUntil` (replay protection).
   */
  save(s: StoredSetpoint, seenUntil?: number): void {
    this.db.transaction(() => {
      if (s.messageId !== null && seenUntil !== undefined) this.remember(s.messageId, seenUntil);
      this.db
        .prepare(
          `INSERT INTO setpoints (detector, params, updated_at, message_id, origin, by, expires_at, file_params, meta)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(detector) DO UPDATE SET params = excluded.params, updated_at = excluded.updated_at,
             message_id = excluded.message_id, origin = excluded.origin, by = excluded.by,
             expires_at = excluded.expires_at, file_params = excluded.file_params, meta = excluded.meta`,
        )
        .run(
          s.detector,
          JSON.stringify(s.params),
          s.updatedAt,
          s.messageId,
          s.origin,
          s.by,
          s.expiresAt,
          s.fileParams === null ? null : JSON.stringify(s.fileParams),
          JSON.stringify(s.meta),
        );
    })();
  }

  /** Removes overrides (all when `detector` is undefined); remembers the message id when given. Returns the detectors reset. */
  remove(detector: string | undefined, seen?: { id: string; until: number }): string[] {
    return this.db.transaction(() => {
      if (seen) this.remember(seen.id, seen.until);
      const rows = (
        detector === undefined
          ? this.db.prepare('DELETE FROM setpoints RETURNING detector').all()
          : this.db.prepare('DELETE FROM setpoints WHERE detector = ? RETURNING detector').all(detector)
      ) as Array<{ detector: string }>;
      return rows.map((r) => r.detector);
    })();
  }

  /** Records an applied message id (a message that changed nothing in the table, e.g. relearn). */
  markSeen(id: string, until: number): void {
    this.remember(id, until);
  }

  /** Whether a message with this id was applied and has not expired yet. */
  seen(id: string, now: number): boolean {
    return this.db.prepare('SELECT 1 FROM control_seen WHERE id = ? AND expires_at > ?').get(id, now) !== undefined;
  }

  /** Forgets ids whose messages have expired (they are refused as expired anyway). */
  prune(now: number): void {
    this.db.prepare('DELETE FROM control_seen WHERE expires_at <= ?').run(now);
  }

  private remember(id: string, until: number): void {
    this.db
      .prepare(
        'INSERT INTO control_seen (id, expires_at) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)',
      )
      .run(id, until);
  }

  close(): void {
    this.db.close();
  }
}
