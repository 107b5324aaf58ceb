/**
 * The Kafka sync against a real broker, behind a TCP proxy the tests can cut. One broker for the
 * file, a topic prefix per test. Every check is made on what an independent consumer (kcat, read
 * committed) finds in Kafka: each (gateway, seq) exactly once, in sequence order per key, with the
 * event time as the record timestamp.
 *
 * Sizes: SYNC_BACKLOG (default 100,000; `npm run test:chaos` runs 3,000,000), SYNC_KILLS (default 5;
 * chaos 30), SYNC_KILL_BACKLOG (default 40,000).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../agent/config/load.js';
import { createLogger } from '../agent/log.js';
import { openDb } from '../agent/store/db.js';
import { replay, syncStatus } from '../agent/sync/replay.js';
import { EVENT_KINDS } from '../agent/types.js';
import {
  consumeWithKcat,
  type KafkaBroker,
  kafkaAvailable,
  kafkaClient,
  kcatAvailable,
  requireOrSkip,
  startKafkaBehindProxy,
} from './helpers/kafka.js';
import { appendMany, event, kcatCheck, openStore, startSync, syncConfig } from './helpers/sync.js';
import { startFlapper, type TcpProxy } from './helpers/tcp-proxy.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const BACKLOG = Number(process.env.SYNC_BACKLOG ?? 100_000);
const KILLS = Number(process.env.SYNC_KILLS ?? 5);
const KILL_BACKLOG = Number(process.env.SYNC_KILL_BACKLOG ?? 40_000);
const DRAIN_TIMEOUT = Math.max(120_000, BACKLOG / 2);

const haveKafka = requireOrSkip(kafkaAvailable(), 'Kafka broker (java + Kafka jars or mvn)');
const haveKcat = haveKafka && requireOrSkip(kcatAvailable(), 'kcat');

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let prefixN = 0;
const newPrefix = () => `t${Date.now().toString(36)}${prefixN++}.`;

const topicsOf = (prefix: string) => EVENT_KINDS.map((k) => `${prefix}${k}`);

function unsentIn(path: string): { cursor: number; last: number } {
  const db = openDb(path, 'NORMAL', true);
  try {
    const cursor = Number((db.prepare("SELECT value FROM meta WHERE key = 'sync_cursor'").get() as { value: string }).value);
    const last =
      (db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'").get() as { seq: number } | undefined)?.seq ?? 0;
    return { cursor, last };
  } finally {
    db.close();
  }
}

/** A fresh store file with `n` events appended (removed after the test), and a topic prefix of its own. */
async function backlogOf(n: number): Promise<{ dir: string; path: string; prefix: string; store: ReturnType<typeof openStore> }> {
  const dir = tempDir();
  cleanups.push(dir.remove);
  const path = join(dir.path, 'agent.db');
  const store = openStore(path);
  await store.open();
  await appendMany(store, n, Date.now() - n);
  return { dir: dir.path, path, prefix: newPrefix(), store };
}

/**
 * After restarts of the sync process: every event of the store, its own alarms included, exactly once
 * and in order at an independent consumer, and the process's alarm raised and then cleared. Returns
 * the check and the raised alarm.
 */
async function expectDrainedAcrossRestarts(
  brokers: string,
  path: string,
  prefix: string,
): Promise<{ total: number; res: Awaited<ReturnType<typeof kcatCheck>>; raised: Record<string, unknown> | undefined }> {
  const total = unsentIn(path).last;
  const res = await kcatCheck(brokers, topicsOf(prefix), total);
  expect(res.missing).toEqual([]);
  expect(res.duplicates).toBe(0);
  expect(res.orderViolations).toBe(0);
  const alarms = (await consumeWithKcat(brokers, `${prefix}alarm`, { timeoutMs: 60_000 }))
    .map((r) => JSON.parse(r.value ?? '{}').payload)
    .filter((p) => p?.code === 'sync_process_exited');
  const raised = alarms.find((a) => a.state === 'raised');
  expect(raised).toBeDefined();
  expect(alarms.at(-1)?.state).toBe('cleared');
  return { total, res, raised };
}

describe.skipIf(!haveKcat)('Kafka sync with a real broker', () => {
  let broker: KafkaBroker | undefined;
  let proxy: TcpProxy | undefined;
  const b = () => {
    if (!broker || !proxy) throw new Error('beforeAll did not finish');
    return { broker, proxy, brokers: broker.brokers };
  };

  beforeAll(async () => {
    ({ broker, proxy } = await startKafkaBehindProxy({ partitions: 3 }));
  }, 600_000);

  afterAll(async () => {
    await broker?.destroy();
    await proxy?.close();
  });

  it(`a backlog of ${BACKLOG} events built while the broker is down drains exactly once, in order, with event times`, async () => {
    const { broker, brokers } = b();
    const dir = tempDir();
    cleanups.push(dir.remove);
    const path = join(dir.path, 'agent.db');
    const prefix = newPrefix();
    await broker.stop();
    const store = openStore(path);
    await store.open();
    const sync = startSync(store, path, syncConfig(brokers, prefix));
    cleanups.push(async () => {
      await store.close();
      await sync.stop();
    });
    const t0 = Date.now();
    const built = Date.now();
    await appendMany(store, BACKLOG, t0 - BACKLOG);
    const appendSecs = (Date.now() - built) / 1000;
    expect(store.stats.keeper?.unsentEvents).toBe(BACKLOG);
    // The syncer has been failing all along; it must resume on its own (field note 2).
    await waitFor(() => (sync.status?.failures ?? 0) > 0, { what: 'a failed send while the broker is down', timeoutMs: 30_000 });
    const back = Date.now();
    await broker.restart();
    await waitFor(() => store.stats.keeper?.unsentEvents === 0, {
      what: 'backlog drained',
      timeoutMs: DRAIN_TIMEOUT,
      intervalMs: 200,
    });
    const drainSecs = (Date.now() - back) / 1000;
    console.info(
      `sync: ${BACKLOG} events appended in ${appendSecs.toFixed(1)} s (${Math.round(BACKLOG / appendSecs)}/s), drained in ${drainSecs.toFixed(1)} s after the broker came back (${Math.round(BACKLOG / drainSecs)}/s incl. broker start)`,
    );
    const topics = topicsOf(prefix);
    const res = await kcatCheck(brokers, topics, BACKLOG);
    expect(res.missing).toEqual([]);
    expect(res.duplicates).toBe(0);
    expect(res.orderViolations).toBe(0);
    expect(res.timestampMismatches).toBe(0);
    expect(res.records).toBe(BACKLOG);
    const sample = await consumeWithKcat(brokers, `${prefix}anomaly`, { timeoutMs: 120_000, count: 1 });
    expect(sample[0]?.headers).toMatchObject({ gateway_id: 'gw-test', kind: 'anomaly', schema_version: '2' });
    expect(sample[0]?.headers.boot_id).toBeTruthy();
    expect(sample[0]?.headers.store_id).toBeTruthy();

    // Operators see it: last success, lag 0, and the sequence ↔ partition/offset map.
    const snap = sync.snapshot();
    expect(snap.lagEvents).toBe(0);
    expect(snap.lastSuccess).toBeGreaterThan(t0 / 1000 - 1);
    const status = syncStatus(path);
    expect(status.cursor).toBe(BACKLOG);
    expect(status.backlog_events).toBe(0);
    expect(status.map.length).toBeGreaterThan(0);
    const m = status.map[0] as (typeof status.map)[number];
    const [atBase] = await consumeWithKcat(brokers, m.topic, {
      timeoutMs: 120_000,
      partition: m.partition,
      offset: m.base_offset,
      count: 1,
    });
    expect(Number(atBase?.headers.seq)).toBe(m.first_seq);

    // Replay re-publishes retained events, marked as such.
    const cfg = await parseConfig(
      `gateway: { id: gw-test }\nstore: { path: ${path} }\nsync: { kafka: { brokers: ['${brokers}'], topic_prefix: '${prefix}' } }\nsources: [{ id: s, type: simulator }]\nassets: [{ id: a, sensors: [{ id: t, metric: temperature, source: s }] }]\n`,
      'replay.yaml',
    );
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
    await store.close();
    const rep = await replay(cfg.config, { fromSeq: BACKLOG - 99 }, { progress: false });
    expect(rep).toEqual({ events: 100, firstSeq: BACKLOG - 99, lastSeq: BACKLOG });
    const after = await kcatCheck(brokers, topics, BACKLOG);
    expect(after.duplicates).toBe(0);
    expect(after.replayed.sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => BACKLOG - 99 + i));
  }, 900_000);

  it('compression none, large events, topics with a small max.message.bytes: every page fits, an event too large for any record batch is refused with an alarm, the sync never wedges', async () => {
    const { brokers } = b();
    const dir = tempDir();
    cleanups.push(dir.remove);
    const path = join(dir.path, 'agent.db');
    const prefix = newPrefix();
    const LIMIT = 65_536;
    const admin = kafkaClient(brokers).admin();
    await admin.connect();
    await admin.createTopics({
      topics: [...topicsOf(prefix), `${prefix}sync-cursor`].map((topic) => ({
        topic,
        numPartitions: topic.endsWith('sync-cursor') ? 1 : 3,
        configEntries: [{ name: 'max.message.bytes', value: String(LIMIT) }],
      })),
    });
    await admin.disconnect();
    const store = openStore(path);
    await store.open();
    const N = 3000;
    const big = new Set([100, 1500, N - 1]);
    const t0 = Date.now() - N;
    for (let i = 0; i < N; i++) {
      const e = event(i, t0);
      // 2–6 KB events: a 5,000-event page is hundreds of times the limit; three 100 KB captures exceed it alone.
      store.append(
        big.has(i)
          ? { kind: 'capture', key: e.key, eventTime: e.eventTime, payload: { samples: 'x'.repeat(100_000) } }
          : { ...e, payload: { ...e.payload, pad: 'y'.repeat(2000 + (i % 5) * 1000) } },
      );
    }
    await store.flush(60_000);
    const sync = startSync(
      store,
      path,
      syncConfig(brokers, prefix, { compression: 'none', batch_max_events: 5000, batch_max_bytes: '64MB' }),
    );
    cleanups.push(async () => {
      await store.close();
      await sync.stop();
    });
    // The three refusals append three alarm events, which are synced too.
    await waitFor(() => (sync.status?.cursor ?? 0) >= N + big.size && store.stats.keeper?.unsentEvents === 0, {
      what: 'all events and the alarms synced',
      timeoutMs: 180_000,
      intervalMs: 200,
    });
    expect(sync.status?.refused).toBe(big.size);
    expect(sync.status?.failures).toBe(0);
    expect(sync.status?.batchLimit).toBeLessThan(LIMIT);
    const res = await kcatCheck(
      brokers,
      topicsOf(prefix),
      N + big.size,
      [...big].map((i) => i + 1),
    );
    expect(res.missing).toEqual([...big].map((i) => i + 1));
    expect(res.duplicates).toBe(0);
    expect(res.orderViolations).toBe(0);
    expect(res.records).toBe(N);
    const alarms = await consumeWithKcat(brokers, `${prefix}alarm`, { timeoutMs: 60_000, count: big.size });
    const refused = alarms.map((r) => JSON.parse(r.value ?? '{}') as { payload: { type: string; seq: number; limit: number } });
    expect(refused.map((a) => a.payload.type)).toEqual(['sync_refused', 'sync_refused', 'sync_refused']);
    expect(refused.map((a) => a.payload.seq).sort((x, y) => x - y)).toEqual([...big].map((i) => i + 1));
    expect(refused[0]?.payload.limit).toBe(sync.status?.batchLimit);
  }, 600_000);

  it('a crash between the Kafka commit and the local cursor write never resends (field notes 6, 7)', async () => {
    const { brokers } = b();
    const dir = tempDir();
    cleanups.push(dir.remove);
    const path = join(dir.path, 'agent.db');
    const prefix = newPrefix();
    const n = 20_000;
    const run = async (lose?: number) => {
      if (lose !== undefined) {
        // As if the process died after Kafka committed and before the writer stored the cursor.
        const db = openDb(path, 'NORMAL');
        db.prepare("UPDATE meta SET value = ? WHERE key = 'sync_cursor'").run(String(lose));
        db.close();
      }
      const store = openStore(path);
      await store.open();
      const sync = startSync(store, path, syncConfig(brokers, prefix));
      await waitFor(() => sync.status?.state === 'idle' && store.stats.keeper?.unsentEvents === 0, {
        what: 'idle and drained',
        timeoutMs: 60_000,
      });
      const recovered = sync.status?.recovered ?? 0;
      await store.close();
      await sync.stop();
      return recovered;
    };
    const store = openStore(path);
    await store.open();
    await appendMany(store, n, Date.now() - n);
    await store.close();
    expect(await run()).toBe(0); // full buffer
    expect(await run(0)).toBe(n); // local cursor lost entirely
    expect(await run(n / 2)).toBe(n / 2); // partly
    expect(await run()).toBe(0); // empty buffer: nothing to do
    const res = await kcatCheck(brokers, topicsOf(prefix), n);
    expect(res.duplicates).toBe(0);
    expect(res.missing).toEqual([]);
    expect(res.orderViolations).toBe(0);
  }, 300_000);

  it('a sync process killed -9 mid-drain is restarted with backoff, raises and clears an alarm, and the drain finishes exactly once', async () => {
    const { brokers } = b();
    const n = 60_000;
    const { path, prefix, store } = await backlogOf(n);
    // Small pages: many transactions, so every kill lands mid-drain.
    const sync = startSync(store, path, syncConfig(brokers, prefix, { batch_max_events: 1000 }));
    cleanups.push(async () => {
      await sync.stop();
      await store.close();
    });
    const cursor = () => store.stats.keeper?.cursor ?? 0;
    let kills = 0;
    let killedAt = 0;
    for (let k = 0; k < 3; k++) {
      // The (restarted) sync process commits again before the next kill.
      await waitFor(() => sync.pid !== undefined && cursor() > killedAt, {
        what: 'the sync process committing pages',
        timeoutMs: 120_000,
      });
      await new Promise((r) => setTimeout(r, Math.random() * 300));
      if ((store.stats.keeper?.unsentEvents ?? 0) === 0) break;
      killedAt = cursor();
      process.kill(sync.pid as number, 'SIGKILL');
      kills++;
      await waitFor(() => sync.snapshot().restarts === kills, { what: 'the crash noticed', timeoutMs: 10_000 });
    }
    expect(kills).toBeGreaterThanOrEqual(2);
    await waitFor(() => store.stats.keeper?.unsentEvents === 0 && sync.status?.state === 'idle', {
      what: 'backlog drained after the restarts',
      timeoutMs: 300_000,
      intervalMs: 200,
    });
    const snap = sync.snapshot();
    expect(snap.restarts).toBe(kills);
    expect(snap.process).toBe('running');
    const { total, res } = await expectDrainedAcrossRestarts(brokers, path, prefix);
    expect(total).toBeGreaterThan(n);
    console.info(`sync: ${n} events, ${kills} kills of the sync process: ${res.unique} unique, ${res.duplicates} duplicates`);
  }, 600_000);

  it('a stuck Kafka client (a librdkafka call that never returns) restarts the sync process, raises an alarm naming the call, and the drain finishes exactly once', async () => {
    const { brokers } = b();
    const { dir, path, prefix, store } = await backlogOf(20_000);
    // The third commit's result never comes back, as with librdkafka issues 3779 and 5511 (agent/sync/producer.ts).
    const flag = join(dir, 'hung');
    process.env.EDGE_AGENT_TEST_KAFKA_HANG = `commit:3:${flag}`;
    cleanups.push(async () => {
      delete process.env.EDGE_AGENT_TEST_KAFKA_HANG;
    });
    const sync = startSync(store, path, syncConfig(brokers, prefix, { batch_max_events: 1000, request_timeout: '2s' }));
    cleanups.push(async () => {
      await sync.stop();
      await store.close();
    });
    await waitFor(() => sync.snapshot().restarts === 1, { what: 'the stuck process restarted', timeoutMs: 60_000 });
    expect(existsSync(flag)).toBe(true);
    await waitFor(() => store.stats.keeper?.unsentEvents === 0 && sync.status?.state === 'idle', {
      what: 'backlog drained after the restart',
      timeoutMs: 120_000,
      intervalMs: 200,
    });
    const snap = sync.snapshot();
    expect(snap.restarts).toBe(1);
    expect(snap.process).toBe('running');
    // The hung commit went through at the broker: the new process adopts it from Kafka's cursor, not resending it.
    expect(snap.status?.recovered).toBeGreaterThan(0);
    const { raised } = await expectDrainedAcrossRestarts(brokers, path, prefix);
    expect(raised?.message).toMatch(/Kafka client was stuck \(librdkafka's commit did not return within 14000 ms/);
  }, 300_000);

  it('a broker restart mid-drain and a flapping link: exactly once, and the sender always resumes (field notes 2, 7)', async () => {
    const { broker, proxy, brokers } = b();
    const n = Math.min(BACKLOG, 60_000);
    const { path, prefix, store } = await backlogOf(n);
    // The sync's log lines, kept for a timeout's message.
    const lines: string[] = [];
    const logger = createLogger('info', { write: (line: string) => void lines.push(line.trim()) });
    const sync = startSync(store, path, syncConfig(brokers, prefix, { batch_max_events: 1000 }), 'gw-test', logger);
    cleanups.push(async () => {
      await store.close();
      await sync.stop();
    });
    // Not yet: the cursor, the syncer's status and its last log lines, so that a timeout says where the drain stood.
    const drainedPast = (to: number) => () => {
      const cursor = store.stats.keeper?.cursor ?? 0;
      if (cursor > to) return true;
      const st = sync.status;
      const snap = sync.snapshot();
      throw new Error(
        `cursor ${cursor} of ${n}; syncer ${st?.state ?? 'no status'}, ${st?.failures ?? 0} failures, last error ${st?.lastError ?? 'none'}, process ${snap.process}, ${snap.restarts} restarts; last log lines: ${lines.slice(-4).join(' | ') || 'none'}`,
      );
    };
    await waitFor(drainedPast(n / 5), { what: '20% drained', timeoutMs: 60_000 });
    await broker.restart();
    await waitFor(drainedPast(n / 2), { what: '50% drained after the broker restart', timeoutMs: 120_000 });
    // Cut every connection at random moments, sometimes refusing new ones for a while.
    const flapper = startFlapper(proxy, { minIntervalMs: 100, maxIntervalMs: 700, downMs: 150, durationMs: 60_000, seed: 7 });
    await waitFor(() => (store.stats.keeper?.cursor ?? 0) === n || flapper.cuts >= 40, {
      what: 'drain under flapping',
      timeoutMs: 120_000,
      intervalMs: 100,
    });
    const cuts = await flapper.stop();
    const successBefore = sync.status?.lastSuccess ?? 0;
    await appendMany(store, 1000, Date.now(), n);
    await waitFor(() => store.stats.keeper?.unsentEvents === 0 && (sync.status?.lastSuccess ?? 0) > successBefore, {
      what: 'resumed after the last cut',
      timeoutMs: 120_000,
      intervalMs: 100,
    });
    console.info(`sync: ${cuts} link cuts, ${sync.status?.failures} failed attempts, all resumed`);
    expect(cuts).toBeGreaterThan(0);
    const res = await kcatCheck(brokers, topicsOf(prefix), n + 1000);
    expect(res.missing).toEqual([]);
    expect(res.duplicates).toBe(0);
    expect(res.orderViolations).toBe(0);
  }, 600_000);

  it("yield_to_detection: a drain pauses while the agent's event loop is held up, and still delivers exactly once; off, it never pauses", async () => {
    const { brokers } = b();
    const N = 60_000;
    const run = async (yieldOn: boolean) => {
      const dir = tempDir();
      cleanups.push(dir.remove);
      const path = join(dir.path, 'agent.db');
      const prefix = newPrefix();
      const store = openStore(path);
      await store.open();
      const sync = startSync(
        store,
        path,
        syncConfig(brokers, prefix, { yield_to_detection: yieldOn, batch_max_events: 4000, linger: '5ms' }),
      );
      cleanups.push(async () => {
        await sync.stop();
        await store.close();
      });
      // Nothing to send yet: the pacer learns the loop's normal delay.
      await waitFor(() => sync.status?.state === 'idle', { what: 'the sync idle', timeoutMs: 60_000 });
      await new Promise((r) => setTimeout(r, 1500));
      await appendMany(store, N, Date.now() - N);
      // The detection thread held up 40 ms out of every 50 while the backlog drains.
      while (!((sync.status?.cursor ?? 0) >= N && store.stats.keeper?.unsentEvents === 0)) {
        const until = performance.now() + 40;
        while (performance.now() < until) {
          // busy: a plant's worth of readings
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      const res = await kcatCheck(brokers, topicsOf(prefix), N);
      expect(res.missing).toEqual([]);
      expect(res.duplicates).toBe(0);
      expect(res.orderViolations).toBe(0);
      return sync.status?.yieldedMs ?? -1;
    };
    const paused = await run(true);
    const unpaused = await run(false);
    console.info(`yield_to_detection: drain paused ${paused} ms with it, ${unpaused} ms without`);
    expect(paused).toBeGreaterThan(0);
    expect(unpaused).toBe(0);
  }, 300_000);

  it(`kill -9 of the writer and of the syncer at random moments, ${KILLS} times each (field notes 1, 5, 6, 8)`, async () => {
    const { proxy, brokers } = b();
    const dir = tempDir();
    cleanups.push(dir.remove);
    const path = join(dir.path, 'agent.db');
    const prefix = newPrefix();
    const children = new Set<ChildProcess>();
    cleanups.push(() => {
      for (const c of children) c.kill('SIGKILL');
    });
    const child = (args: Record<string, unknown>, onLine: (l: string) => void = () => {}) => {
      const p = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/sync-child.ts', JSON.stringify(args)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.add(p);
      let buf = '';
      p.stdout.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        for (const l of lines) onLine(l);
      });
      const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
      return { p, exited };
    };
    const rnd = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

    // Writes killed at random: every acknowledged sequence must survive, and SQLite stays consistent.
    const startedAt = Date.now();
    let acked = 0;
    let produced = 0;
    for (let k = 0; k < KILLS && produced < KILL_BACKLOG; k++) {
      // Event times must be recent: the records carry them as timestamps, and the broker deletes
      // records older than its retention (7 days) as soon as its retention check runs.
      let opened: () => void = () => {};
      const firstAck = new Promise<void>((r) => (opened = r));
      const c = child({ mode: 'produce', path, count: KILL_BACKLOG, from: produced, t0: startedAt - KILL_BACKLOG }, (l) => {
        if (l.startsWith('acked ')) acked = Math.max(acked, Number(l.slice(6)));
        opened();
      });
      // The random moment counts from the child's first committed flush: on a loaded machine its start-up
      // alone can take longer than the window, and a kill before the store exists tests nothing.
      await Promise.race([firstAck, c.exited]);
      await new Promise((r) => setTimeout(r, rnd(0, 2000)));
      c.p.kill('SIGKILL');
      await c.exited;
      const { last } = unsentIn(path);
      expect(last).toBeGreaterThanOrEqual(acked);
      produced = last;
    }
    const db = openDb(path, 'NORMAL', true);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
    const total = unsentIn(path).last;
    expect(total).toBeGreaterThan(0);

    // Kafka unreachable, the syncer killed and restarted, then Kafka back: the backlog drains (note 1).
    proxy.setDown(true);
    proxy.cutAll();
    const offline = child({ mode: 'sync', path, brokers, prefix });
    await new Promise((r) => setTimeout(r, 2000));
    offline.p.kill('SIGKILL');
    await offline.exited;
    proxy.setDown(false);

    // The syncer killed at random moments of the drain.
    let kills = 0;
    for (let k = 0; k < KILLS; k++) {
      let cursor = 0;
      const c = child({ mode: 'sync', path, brokers, prefix }, (l) => {
        const m = /^cursor (\d+)/.exec(l);
        if (m) cursor = Number(m[1]);
      });
      await waitFor(() => cursor > 0 || c.p.exitCode !== null, { what: 'sync child running', timeoutMs: 60_000 });
      await new Promise((r) => setTimeout(r, rnd(50, 1500)));
      c.p.kill('SIGKILL');
      await c.exited;
      kills++;
      if (unsentIn(path).cursor >= total) break;
    }
    const last = child({ mode: 'sync', path, brokers, prefix, exitWhenDrained: true });
    expect(await last.exited).toBe(0);
    expect(unsentIn(path).cursor).toBe(total);

    // An independent consumer counts every (gateway, seq).
    const res = await kcatCheck(brokers, topicsOf(prefix), total);
    console.info(`sync: ${total} events, ${kills} syncer kills: ${res.unique} unique, ${res.duplicates} duplicates in Kafka`);
    expect(res.missing).toEqual([]);
    expect(res.duplicates).toBe(0);
    expect(res.orderViolations).toBe(0);
  }, 900_000);
});
