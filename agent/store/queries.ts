/** Read-side queries over the event store, used by `edge-agent status` and at startup. */
import type { Db, StoredEventRow } from './db.js';

export interface StoreSummary {
  readonly countsByKind: Record<string, number>;
  readonly lastSeq: number;
  readonly latest: StoredEventRow[];
  readonly activeTrips: Array<{ asset: string; seq: number; event_time: number; detector: string }>;
}

/** Assets whose latest trip has no later acknowledgement. */
export function activeTrips(db: Db): StoreSummary['activeTrips'] {
  const rows = db
    .prepare(
      `SELECT seq, key, event_time, payload FROM events
       WHERE (kind = 'action' AND json_extract(payload, '$.type') = 'trip')
          OR (kind = 'audit' AND json_extract(payload, '$.type') = 'ack')
       ORDER BY seq`,
    )
    .all() as Array<Pick<StoredEventRow, 'seq' | 'key' | 'event_time' | 'payload'>>;
  const open = new Map<string, StoreSummary['activeTrips'][number]>();
  for (const r of rows) {
    const p = JSON.parse(r.payload) as { type: string; detector?: string };
    if (p.type === 'trip') open.set(r.key, { asset: r.key, seq: r.seq, event_time: r.event_time, detector: p.detector ?? '' });
    else open.delete(r.key);
  }
  return [...open.values()];
}

export function summarize(db: Db, latest = 10): StoreSummary {
  const counts = db.prepare('SELECT kind, COUNT(*) AS n FROM events GROUP BY kind').all() as Array<{ kind: string; n: number }>;
  const last = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'").get() as { seq: number } | undefined;
  return {
    countsByKind: Object.fromEntries(counts.map((c) => [c.kind, c.n])),
    lastSeq: last?.seq ?? 0,
    latest: db.prepare('SELECT * FROM events ORDER BY seq DESC LIMIT ?').all(latest) as StoredEventRow[],
    activeTrips: activeTrips(db),
  };
}
