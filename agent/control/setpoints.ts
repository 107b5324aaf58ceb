/**
 * Persistence of run-time setpoint overrides (the `setpoints` table). Its own connection on the
 * main thread, used only when a control message arrives and at start. synchronous=NORMAL in WAL
 * mode: a commit is a write to the WAL without fsync (microseconds), so a control message never
 * stalls the hot path on the disk; it survives an agent crash, and a power cut can at worst revert
 * the last updates before the next checkpoint (the audit events, written FULL, still record them).
 */
import { type Db, openDb } from '../store/db.js';

export interface StoredSetpoint {
  readonly detector: string;
  readonly params: Record<string, unknown>;
  readonly updatedAt: number;
  readonly messageId: string | null;
  readonly origin: string;
}

export class SetpointStore {
  private constructor(private readonly db: Db) {}

  static open(path: string): SetpointStore {
    const db = openDb(path, 'NORMAL');
    db.pragma('busy_timeout = 2000');
    return new SetpointStore(db);
  }

  all(): StoredSetpoint[] {
    const rows = this.db
      .prepare('SELECT detector, params, updated_at, message_id, origin FROM setpoints ORDER BY detector')
      .all() as Array<{
      detector: string;
      params: string;
      updated_at: number;
      message_id: string | null;
      origin: string;
    }>;
    return rows.map((r) => ({
      detector: r.detector,
      params: JSON.parse(r.params) as Record<string, unknown>,
      updatedAt: r.updated_at,
      messageId: r.message_id,
      origin: r.origin,
    }));
  }

  save(detector: string, params: Record<string, unknown>, at: number, messageId: string | undefined, origin: string): void {
    this.db
      .prepare(
        `INSERT INTO setpoints (detector, params, updated_at, message_id, origin) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(detector) DO UPDATE SET params = excluded.params, updated_at = excluded.updated_at,
           message_id = excluded.message_id, origin = excluded.origin`,
      )
      .run(detector, JSON.stringify(params), at, messageId ?? null, origin);
  }

  remove(detector: string): void {
    this.db.prepare('DELETE FROM setpoints WHERE detector = ?').run(detector);
  }

  close(): void {
    this.db.close();
  }
}
