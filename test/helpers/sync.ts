/**
 * Helpers for the Kafka sync tests: a store + sync pair built like the agent builds them, a fast
 * synthetic backlog, and the exactly-once / order checks done on what an independent consumer read.
 */
import { configSchema } from '../../agent/config/schema.js';
import { createLogger, type Logger } from '../../agent/log.js';
import type { KeeperLimits } from '../../agent/store/keeper.js';
import { EventStore } from '../../agent/store/store.js';
import type { KafkaSyncConfig } from '../../agent/sync/kafka.js';
import { SyncService } from '../../agent/sync/service.js';
import type { AgentEvent, EventKind } from '../../agent/types.js';

export const silent: Logger = createLogger('silent');
/** The sync's own log lines in a test: silent unless SYNC_TEST_LOG=debug|info|warn|error is set (to see why a drain stalls). */
const syncLog: Logger = process.env.SYNC_TEST_LOG ? createLogger(process.env.SYNC_TEST_LOG) : silent;

export function syncConfig(brokers: string, prefix: string, over: Record<string, unknown> = {}): KafkaSyncConfig {
  const c = configSchema.parse({
    sources: [{ id: 's', type: 'simulator' }],
    assets: [{ id: 'a', sensors: [{ id: 't', metric: 'temperature', source: 's' }] }],
    sync: { kafka: { brokers: [brokers], topic_prefix: prefix, create_topics: 3, linger: '20ms', ...over } },
  });
  return c.sync.kafka as KafkaSyncConfig;
}

export function openStore(path: string, limits?: KeeperLimits, logger = silent): EventStore {
  return new EventStore({
    path,
    synchronous: 'NORMAL',
    flushInterval: 20,
    batchSize: 5000,
    logger,
    gatewayId: 'gw-test',
    ...(limits ? { limits } : {}),
  });
}

export function startSync(
  store: EventStore,
  path: string,
  cfg: KafkaSyncConfig,
  gatewayId = 'gw-test',
  logger = syncLog,
): SyncService {
  const s = new SyncService(store, path, gatewayId, cfg, logger);
  s.start();
  return s;
}

const KINDS: EventKind[] = ['aggregate', 'aggregate', 'aggregate', 'aggregate', 'anomaly', 'action', 'audit'];

/** Synthetic event i: mostly routine aggregates, some anomalies/actions/audit, on `assets` keys. */
export function event(i: number, t0: number, assets = 8, kinds: readonly EventKind[] = KINDS): AgentEvent {
  return {
    kind: kinds[i % kinds.length] as EventKind,
    key: `asset-${i % assets}`,
    eventTime: t0 + i,
    payload: { sensor: 'temp', n: i, mean: 20 + (i % 100) / 10, min: 19.5, max: 21.2, count: 10 },
  };
}

/** Appends `n` events as fast as the store accepts them, yielding now and then so writes proceed. */
export async function appendMany(store: EventStore, n: number, t0: number, from = 0): Promise<void> {
  for (let i = from; i < from + n; i++) {
    store.append(event(i, t0));
    if (i % 20_000 === 19_999) await new Promise((r) => setImmediate(r));
  }
  await store.flush(120_000);
}

export interface DeliveryCheck {
  readonly unique: number;
  readonly duplicates: number;
  readonly missing: number[];
}

export interface StreamCheck extends DeliveryCheck {
  readonly records: number;
  readonly replayed: number[];
  readonly orderViolations: number;
  readonly timestampMismatches: number;
}

/**
 * The delivery check done while kcat streams the topics (read_committed), so millions of records
 * never sit in memory: every seq in 1..n once (replays excluded and listed), per-key order, and
 * record timestamp = event time.
 */
export async function kcatCheck(
  brokers: string,
  topics: readonly string[],
  n: number,
  notSent: readonly number[] = [],
): Promise<StreamCheck> {
  // A commit returns before its markers reach every partition: a read right after it can end at a
  // partition's last stable offset and miss that transaction's records. While a seq other than
  // `notSent` (events the sync refused on purpose) is missing, the topics are read again (up to 10
  // times, 500 ms apart); duplicates and order are judged on the last, whole read.
  const expected = new Set(notSent);
  let res = await kcatCheckOnce(brokers, topics, n);
  for (let i = 1; res.missing.some((s) => !expected.has(s)) && i < 10; i++) {
    await new Promise((r) => setTimeout(r, 500));
    res = await kcatCheckOnce(brokers, topics, n);
  }
  return res;
}

async function kcatCheckOnce(brokers: string, topics: readonly string[], n: number): Promise<StreamCheck> {
  const { spawn } = await import('node:child_process');
  const { createInterface } = await import('node:readline');
  const seen = new Uint8Array(n + 1);
  const lastByKey = new Map<string, number>();
  let duplicates = 0;
  let records = 0;
  let orderViolations = 0;
  let timestampMismatches = 0;
  const replayed: number[] = [];
  for (const topic of topics) {
    const p = spawn(
      'kcat',
      ['-C', '-b', brokers, '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%p\\t%k\\t%T\\t%h\\t%s\\n'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let err = '';
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const rl = createInterface({ input: p.stdout });
    for await (const line of rl) {
      if (!line) continue;
      const [partition, key, ts, headers, value] = line.split('\t') as [string, string, string, string, string];
      records++;
      const h = Object.fromEntries(headers.split(',').map((kv) => kv.split('=') as [string, string]));
      const seq = Number(h.seq);
      if (h.replay === '1') {
        replayed.push(seq);
        continue;
      }
      const eventTime = Number(/"event_time":(\d+)/.exec(value)?.[1]);
      if (Number(ts) !== eventTime) timestampMismatches++;
      if (seq >= 1 && seq <= n) {
        if (seen[seq]) duplicates++;
        seen[seq] = 1;
      } else duplicates++;
      const k = `${topic}/${partition}/${key}`;
      if ((lastByKey.get(k) ?? 0) >= seq) orderViolations++;
      lastByKey.set(k, seq);
    }
    const code = await new Promise<number | null>((r) => (p.exitCode !== null ? r(p.exitCode) : p.once('exit', r)));
    if (code !== 0 && !/Unknown topic|UNKNOWN_TOPIC/i.test(err)) throw new Error(`kcat ${topic} exited ${code}: ${err}`);
  }
  const missing: number[] = [];
  for (let s = 1; s <= n && missing.length < 20; s++) if (!seen[s]) missing.push(s);
  let unique = 0;
  for (let s = 1; s <= n; s++) unique += seen[s] as number;
  return { records, unique, duplicates, missing, replayed, orderViolations, timestampMismatches };
}
