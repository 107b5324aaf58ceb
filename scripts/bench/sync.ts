import { join } from 'node:path';
import Database from 'better-sqlite3';
import { EVENT_PRIORITY } from '../../agent/types.js';
import { event, openStore } from '../../test/helpers/sync.js';
import { tempDir } from '../../test/helpers/tmp.js';
import { type BenchRow, type BenchSection, round } from './types.js';

const APPEND_EVENTS = 500_000;
const LIMITS = { maxBytes: 1e9, minFreeBytes: 100e6, retentionAgeMs: 86_400_000, retentionBytes: 256e6 };

async function appendRate(path: string, n: number, t0: number, from = 0): Promise<number> {
  const store = openStore(path, LIMITS);
  await store.open();
  const start = performance.now();
  for (let i = from; i < from + n; i++) {
    store.append(event(i, t0));
    if (i % 20_000 === 19_999) await new Promise((r) => setImmediate(r));
  }
  await store.flush(600_000);
  const secs = (performance.now() - start) / 1000;
  await store.close();
  return n / secs;
}

function rawInsertRate(path: string, n: number, t0: number): number {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(
    'CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, key TEXT, event_time INTEGER, ingest_time INTEGER, priority INTEGER, payload TEXT)',
  );
  const ins = db.prepare('INSERT INTO events (kind, key, event_time, ingest_time, priority, payload) VALUES (?, ?, ?, ?, ?, ?)');
  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const e = event(i, t0);
      ins.run(e.kind, e.key, e.eventTime, Date.now(), EVENT_PRIORITY[e.kind], JSON.stringify(e.payload));
    }
  });
  const start = performance.now();
  for (let i = 0; i < n; i += 5000) batch(i, Math.min(n, i + 5000));
  const secs = (performance.now() - start) / 1000;
  db.close();
  return n / secs;
}

export const sync: BenchSection = {
  name: 'sync',
  async run(): Promise<BenchRow[]> {
    const rows: BenchRow[] = [];
    const dir = tempDir('edge-agent-bench-sync-');
    try {
      const t0 = Date.now() - APPEND_EVENTS;
      // 1. Append rate.
      const raw = rawInsertRate(join(dir.path, 'raw.db'), APPEND_EVENTS, t0);
      const store = await appendRate(join(dir.path, 'append.db'), APPEND_EVENTS, t0);
      rows.push({
        section: 'sync',
        name: `store append, EventStore (writer thread, limits on, synchronous=NORMAL), ${APPEND_EVENTS} events`,
        value: Math.round(store),
        unit: 'events/s',
        baseline: { name: 'raw better-sqlite3 batched insert (5000/txn)', value: Math.round(raw), ratio: round(store / raw) },
      });
    } finally {
      dir.remove();
    }
    return rows;
  },
};
