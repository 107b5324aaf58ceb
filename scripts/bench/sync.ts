/**
 * Sync figures, each beside its baseline from the same run:
 * - store append rate through EventStore (writer thread, limits on) vs a raw better-sqlite3 batched insert;
 * - drain of a backlog (default 1,000,000 events; SYNC_BENCH_EVENTS; sync options can be overridden
 *   with SYNC_BENCH_OVERRIDES='{"compression":"lz4"}') to a local broker through the
 *   transactional syncer vs kcat producing the same records (acks=all, idempotent, gzip) from a file;
 * - the main thread while the backlog drains: event-loop delay p99 and the store's append rate,
 *   idle vs draining (field note 12).
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { openDb } from '../../agent/store/db.js';
import { EVENT_PRIORITY } from '../../agent/types.js';
import { createTopic, kafkaAvailable, kcatAvailable, startKafka } from '../../test/helpers/kafka.js';
import { event, openStore, startSync, syncConfig } from '../../test/helpers/sync.js';
import { tempDir } from '../../test/helpers/tmp.js';
import { type BenchRow, type BenchSection, round } from './types.js';

const EVENTS = Number(process.env.SYNC_BENCH_EVENTS ?? 1_000_000);
const APPEND_EVENTS = 500_000;
const LIMITS = { maxBytes: 1e9, minFreeBytes: 100e6, retentionAgeMs: 86_400_000, retentionBytes: 256e6 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  requires: ['kafka', 'kcat'],
  async run(): Promise<BenchRow[]> {
    const k = kafkaAvailable();
    if (!k.ok) throw new Error(`Kafka unavailable: ${k.reason}`);
    if (!kcatAvailable().ok) throw new Error('kcat unavailable');
    const rows: BenchRow[] = [];
    const dir = tempDir('edge-agent-bench-sync-');
    const broker = await startKafka({ partitions: 3, logLevel: 'WARN' });
    try {
      const t0 = Date.now() - EVENTS;
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

      // 2. Drain of a backlog built while no syncer runs.
      const path = join(dir.path, 'backlog.db');
      await appendRate(path, EVENTS, t0);
      const db = openDb(path, 'NORMAL', true);
      const bytes = (db.prepare('SELECT SUM(length(payload)) AS b FROM events').get() as { b: number }).b;
      db.close();
      const drainStore = openStore(path, LIMITS);
      await drainStore.open();
      const prefix = 'bench.';
      const cfg = syncConfig(broker.brokers, prefix, {
        linger: '100ms',
        ...JSON.parse(process.env.SYNC_BENCH_OVERRIDES ?? '{}'),
      });
      const lag = monitorEventLoopDelay({ resolution: 5 });
      // Idle reference for the main thread.
      lag.enable();
      await sleep(2000);
      lag.disable();
      const idleP99 = lag.percentile(99) / 1e6;
      lag.reset();
      const start = performance.now();
      const service = startSync(drainStore, path, cfg);
      lag.enable();
      // Live appends while draining (what the pipeline would do), timed.
      let liveRate = 0;
      const live = (async () => {
        await sleep(1000);
        const n = 100_000;
        const s = performance.now();
        for (let i = 0; i < n; i++) {
          drainStore.append(event(EVENTS + i, Date.now()));
          if (i % 5000 === 4999) await new Promise((r) => setImmediate(r));
        }
        await drainStore.flush(600_000);
        liveRate = n / ((performance.now() - s) / 1000);
      })();
      while ((drainStore.stats.keeper?.unsentEvents ?? 1) > 0 || liveRate === 0) await sleep(100);
      const drainSecs = (performance.now() - start) / 1000;
      lag.disable();
      await live;
      const drainedEvents = EVENTS + 100_000;
      const valueBytes = (service.status?.sentBytes ?? bytes) * 1.0;
      await drainStore.close();
      await service.stop();

      // kcat with the same records, from a file.
      const file = join(dir.path, 'records.txt');
      const out = createWriteStream(file);
      for (let i = 0; i < drainedEvents; i++) {
        const e = event(i, t0);
        const ok = out.write(
          `${e.key}\t{"gateway":"gw-test","seq":${i + 1},"kind":"${e.kind}","key":"${e.key}","event_time":${e.eventTime},"payload":${JSON.stringify(e.payload)}}\n`,
        );
        if (!ok) await new Promise<void>((r) => out.once('drain', () => r()));
      }
      await new Promise<void>((r) => out.end(() => r()));
      await createTopic(broker.brokers, 'bench-kcat', 3);
      const ks = performance.now();
      await new Promise<void>((resolve, reject) => {
        const p = spawn(
          'kcat',
          [
            '-P',
            '-b',
            broker.brokers,
            '-t',
            'bench-kcat',
            '-K',
            '\t',
            '-z',
            'gzip',
            '-X',
            'acks=all',
            '-X',
            'enable.idempotence=true',
            '-l',
            file,
          ],
          { stdio: ['ignore', 'ignore', 'inherit'] },
        );
        p.once('error', reject);
        p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`kcat exited ${code}`))));
      });
      const kcatSecs = (performance.now() - ks) / 1000;
      const ours = drainedEvents / drainSecs;
      const theirs = drainedEvents / kcatSecs;
      rows.push({
        section: 'sync',
        name: `drain ${drainedEvents} events to a local broker (transactional, acks=all, gzip, 3 partitions)`,
        value: Math.round(ours),
        unit: 'events/s',
        baseline: {
          name: 'kcat -P (acks=all, idempotent, gzip) same records',
          value: Math.round(theirs),
          ratio: round(ours / theirs),
        },
        note: `${round(drainSecs, 1)} s vs ${round(kcatSecs, 1)} s`,
      });
      rows.push({
        section: 'sync',
        name: 'drain payload throughput',
        value: round(valueBytes / drainSecs / 1e6),
        unit: 'MB/s',
        baseline: {
          name: 'kcat same payloads',
          value: round(valueBytes / kcatSecs / 1e6),
          ratio: round(kcatSecs > 0 ? drainSecs ** -1 / kcatSecs ** -1 : 0),
        },
      });
      rows.push({
        section: 'sync',
        name: 'main thread event-loop delay p99 while draining',
        value: round(lag.percentile(99) / 1e6),
        unit: 'ms',
        baseline: { name: 'idle', value: round(idleP99), ratio: round(lag.percentile(99) / 1e6 / idleP99) },
      });
      rows.push({
        section: 'sync',
        name: 'store append rate while draining (100,000 live events)',
        value: Math.round(liveRate),
        unit: 'events/s',
        baseline: { name: 'store append idle (above)', value: Math.round(store), ratio: round(liveRate / store) },
      });
    } finally {
      await broker.destroy();
      dir.remove();
    }
    return rows;
  },
};
