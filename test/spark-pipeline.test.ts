/**
 * The reference Spark pipeline (examples/spark/) against real components: two agents (gw-a, gw-b,
 * same asset ids, simulator) sync to a real Kafka; PySpark (local[2]) with the Kafka connector jars
 * from Maven Central reads the topics and merges them into its idempotent sink.
 *
 * - gw-b is cut off from Kafka from its start until the pipeline's watermark is well past its first
 *   events, then drains its backlog: every one of its events is counted in its event-time window,
 *   as late, none dropped or unplaced.
 * - The Spark driver is killed with SIGKILL mid-stream and restarted from its checkpoint; a replay
 *   re-publishes events: the counts stay exact (per gateway, kind and window, against the stores).
 *
 * Tools: examples/spark/setup.sh (PySpark venv + connector jars; .ci/run runs it).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../agent/config/load.js';
import type { AgentConfig } from '../agent/config/schema.js';
import { Service } from '../agent/ops/service.js';
import { replay } from '../agent/sync/replay.js';
import { testSigner } from './helpers/control.js';
import {
  committedSyncCursor,
  consumeAll,
  type KafkaBroker,
  kafkaAvailable,
  kafkaClient,
  requireOrSkip,
  startKafka,
  type ToolCheck,
} from './helpers/kafka.js';
import { startProxy, type TcpProxy } from './helpers/tcp-proxy.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const SPARK_DIR = fileURLToPath(new URL('../examples/spark/', import.meta.url));
const WINDOW_MS = 5000;
const WATERMARK = '5s';

function sparkAvailable(): ToolCheck {
  const res = spawnSync(join(SPARK_DIR, 'setup.sh'), ['--print'], { encoding: 'utf8' });
  const python = /^PYTHON=(.*)$/m.exec(res.stdout)?.[1];
  const jars = /^JARS=(.*)$/m.exec(res.stdout)?.[1];
  if (res.status !== 0 || !python || !existsSync(python)) return { ok: false, reason: 'run examples/spark/setup.sh' };
  if (!jars?.includes('spark-sql-kafka-0-10'))
    return { ok: false, reason: 'connector jars missing: run examples/spark/setup.sh' };
  return { ok: true };
}

const ok =
  requireOrSkip(kafkaAvailable(), 'Kafka broker (java + Kafka jars or mvn)') &&
  requireOrSkip(sparkAvailable(), 'PySpark and the Kafka connector');

/** The pipeline as a process group of its own, so SIGKILL takes the Python driver and its JVM together. */
class Pipeline {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  constructor(args: string[], logFile: string) {
    const out = openSync(logFile, 'a');
    this.proc = spawn(join(SPARK_DIR, 'run.sh'), args, { detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    this.exited = new Promise((r) => this.proc.once('exit', (code) => r(code)));
  }
  kill(signal: NodeJS.Signals): void {
    try {
      if (this.proc.pid) process.kill(-this.proc.pid, signal);
    } catch {
      // already gone
    }
  }
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.kill('SIGTERM');
    const t = setTimeout(() => this.kill('SIGKILL'), 30_000);
    await this.exited;
    clearTimeout(t);
  }
}

const agentYaml = (gw: string, seed: number, db: string, brokers: string, prefix: string) => `
gateway: { id: ${gw} }
store: { path: ${db}, flush_interval: 50ms }
log: { level: error }
aggregation: { window: 1s }
api: { listen: '127.0.0.1:0' }
twin: { interval: 1s, history: 1m }
sync: { kafka: { brokers: ['${brokers}'], topic_prefix: '${prefix}', linger: 50ms, retry_max: 1s } }
sources:
  - { id: sim, type: simulator, seed: ${seed}, rate: 20, tick: 50ms }
assets:
  - id: pump-1
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim }
      - { id: pressure, metric: pressure, unit: bar, source: sim }
  - id: pump-2
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim }
detectors:
  - { id: overheat, type: threshold, asset: pump-1, sensor: temperature, setpoint: 90 }
`;

async function startAgent(yaml: string): Promise<{ service: Service; config: AgentConfig }> {
  const parsed = await parseConfig(yaml, 'spark.yaml');
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const service = new Service(parsed.config, 'spark.yaml', pino({ level: 'error' }), {});
  await service.start();
  return { service, config: parsed.config };
}

/** What each store synced up to `cursor`: per kind, and per kind and event-time window. */
function synced(
  dbPath: string,
  cursor: number,
): { byKind: Record<string, number>; byWindow: Map<string, number>; total: number } {
  const db = new Database(dbPath, { readonly: true });
  try {
    const byKind: Record<string, number> = {};
    const byWindow = new Map<string, number>();
    let total = 0;
    for (const r of db.prepare('SELECT kind, event_time FROM events WHERE seq <= ?').iterate(cursor) as Iterable<{
      kind: string;
      event_time: number;
    }>) {
      byKind[r.kind] = (byKind[r.kind] ?? 0) + 1;
      const w = `${r.kind}@${r.event_time - (r.event_time % WINDOW_MS)}`;
      byWindow.set(w, (byWindow.get(w) ?? 0) + 1);
      total++;
    }
    return { byKind, byWindow, total };
  } finally {
    db.close();
  }
}

function sinkQuery<T>(path: string, sql: string, ...args: unknown[]): T[] {
  if (!existsSync(path)) return [];
  const db = new Database(path, { readonly: true, timeout: 10_000 });
  try {
    return db.prepare(sql).all(...args) as T[];
  } finally {
    db.close();
  }
}

/** Edge -> sink latency (ms) of live events of `gw` stored between `from` and `until` (epoch ms): stored -> batch committed. */
function latency(sink: string, gw: string, from: number, until: number): string {
  const d = sinkQuery<{ d: number }>(
    sink,
    'SELECT counted_at - ingest_time AS d FROM seen WHERE gateway_id = ? AND late = 0 AND ingest_time > ? AND ingest_time < ? ORDER BY d',
    gw,
    from,
    until,
  ).map((r) => r.d);
  if (d.length === 0) return 'no events';
  const q = (p: number) => d[Math.min(d.length - 1, Math.floor(p * d.length))];
  return `p50 ${q(0.5)} ms, p95 ${q(0.95)} ms, max ${d[d.length - 1]} ms (n=${d.length})`;
}

/** Commit time of the events query's batch `n` (0 when not there yet). */
const batchAt = (sink: string, n: number) =>
  sinkQuery<{ t: number }>(sink, "SELECT committed_at AS t FROM batches WHERE query = 'events' AND batch_id = ?", n)[0]?.t ?? 0;
const lastBatch = (sink: string) =>
  sinkQuery<{ n: number; t: number }>(
    sink,
    "SELECT batch_id AS n, committed_at AS t FROM batches WHERE query = 'events' ORDER BY batch_id DESC LIMIT 1",
  )[0] ?? { n: -1, t: 0 };

describe.skipIf(!ok)('Spark Structured Streaming reference pipeline', () => {
  let broker: KafkaBroker | undefined;
  const cleanups: Array<() => Promise<void> | void> = [];
  beforeAll(async () => {
    broker = await startKafka({ partitions: 3 });
  }, 600_000);
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
    await broker?.destroy();
  });

  it('two gateways, one offline past the watermark, a killed driver and a replay: every event counted once, in its window', async () => {
    const b = broker as KafkaBroker;
    const dir = tempDir('edge-agent-spark-');
    if (!process.env.KEEP_SPARK_DIR) cleanups.push(dir.remove);
    else console.info(`keeping ${dir.path}`);
    const prefix = `spark-${Date.now()}.`;
    const sink = join(dir.path, 'sink.db');
    const logFile = join(dir.path, 'spark.log');
    const sparkArgs = [
      '--brokers',
      b.brokers,
      '--prefix',
      prefix,
      '--checkpoint',
      join(dir.path, 'checkpoint'),
      '--sink',
      sink,
      '--window',
      `${WINDOW_MS}ms`,
      '--watermark',
      WATERMARK,
      '--trigger',
      '1 second',
    ];
    // gw-b reaches Kafka only through this proxy, which refuses connections until it comes back.
    const proxy: TcpProxy = await startProxy({ targetPort: b.port });
    cleanups.push(() => proxy.close());
    proxy.setDown(true, 'reset');

    const a = await startAgent(agentYaml('gw-a', 1, join(dir.path, 'a.db'), b.brokers, prefix));
    cleanups.push(() => a.service.stop());
    const bStart = Date.now();
    const gb = await startAgent(agentYaml('gw-b', 2, join(dir.path, 'b.db'), `127.0.0.1:${proxy.port}`, prefix));
    cleanups.push(() => gb.service.stop());

    let spark = new Pipeline(sparkArgs, logFile);
    cleanups.push(() => spark.stop());
    const watermark = () => sinkQuery<{ value: number }>(sink, "SELECT value FROM state WHERE name = 'watermark'")[0]?.value ?? 0;
    // Offline for longer than the watermark: its first events are 10 s behind it when it returns.
    await waitFor(() => watermark() > bStart + 10_000, {
      what: 'the pipeline watermark 10 s past gw-b going offline (gw-a live)',
      timeoutMs: 240_000,
      intervalMs: 500,
    });
    expect(sinkQuery(sink, "SELECT 1 FROM seen WHERE gateway_id = 'gw-b'")).toEqual([]);
    proxy.setDown(false);
    const offlineMs = Date.now() - bStart;

    // kill -9 of the driver while gw-b's backlog is being counted, then a restart from the checkpoint.
    await waitFor(() => sinkQuery(sink, "SELECT 1 FROM seen WHERE gateway_id = 'gw-b' LIMIT 1").length > 0, {
      what: "gw-b's backlog reaching the sink",
      timeoutMs: 120_000,
      intervalMs: 200,
    });
    spark.kill('SIGKILL');
    await spark.exited;
    spark = new Pipeline(sparkArgs, logFile);

    // Duplicates in Kafka: gw-a re-publishes its first 50 events (replay=true, same identity).
    const rep = await replay(a.config, { fromSeq: 1, toSeq: 50 }, { progress: false });
    expect(rep.events).toBe(50);

    // Let both drain, then stop them: what Kafka's cursor says each store synced is the truth (authoritative;
    // the store's copy is written after each commit and recovered from Kafka's at the next start).
    await new Promise((r) => setTimeout(r, 3000));
    for (const s of [a, gb])
      await waitFor(() => s.service.agent?.store.stats.keeper?.unsentEvents === 0, {
        what: 'agent backlog synced',
        timeoutMs: 120_000,
        intervalMs: 200,
      });
    await a.service.stop();
    await gb.service.stop();
    const truth = {
      'gw-a': synced(join(dir.path, 'a.db'), (await committedSyncCursor(b.brokers, a.config)) ?? 0),
      'gw-b': synced(join(dir.path, 'b.db'), (await committedSyncCursor(b.brokers, gb.config)) ?? 0),
    };
    const expectedTotal = truth['gw-a'].total + truth['gw-b'].total;
    const counted = () => sinkQuery<{ n: number }>(sink, 'SELECT COALESCE(SUM(events), 0) AS n FROM event_windows')[0]?.n ?? 0;
    await waitFor(() => counted() >= expectedTotal, {
      what: `the sink to count ${expectedTotal} events (has ${counted()})`,
      timeoutMs: 180_000,
      intervalMs: 500,
    });
    // Caught up: the query reports no more data in Kafka after the count was reached.
    const reached = Date.now();
    const statusFile = `${sink}.status.json`;
    await waitFor(
      () => {
        const st = JSON.parse(readFileSync(statusFile, 'utf8')) as {
          events: { data_available: boolean; trigger_active: boolean; at: number };
        };
        return st.events.at > reached + 2000 && !st.events.data_available && !st.events.trigger_active;
      },
      { what: 'the events query caught up with Kafka', timeoutMs: 60_000, intervalMs: 250 },
    );
    await spark.stop();

    for (const gw of ['gw-a', 'gw-b'] as const) {
      const rows = sinkQuery<{ kind: string; window_start: number; events: number }>(
        sink,
        'SELECT kind, window_start, events FROM event_windows WHERE gateway_id = ?',
        gw,
      );
      const byKind: Record<string, number> = {};
      const byWindow = new Map<string, number>();
      for (const r of rows) {
        byKind[r.kind] = (byKind[r.kind] ?? 0) + r.events;
        byWindow.set(`${r.kind}@${r.window_start}`, r.events);
      }
      expect(byKind).toEqual(truth[gw].byKind);
      expect(Object.fromEntries(byWindow)).toEqual(Object.fromEntries(truth[gw].byWindow));
    }
    const perGw = sinkQuery<{ gateway_id: string; n: number; late: number }>(
      sink,
      'SELECT gateway_id, COUNT(*) AS n, SUM(late) AS late FROM seen GROUP BY gateway_id ORDER BY gateway_id',
    );
    expect(perGw.map((r) => [r.gateway_id, r.n])).toEqual([
      ['gw-a', truth['gw-a'].total],
      ['gw-b', truth['gw-b'].total],
    ]);
    const lateB = perGw.find((r) => r.gateway_id === 'gw-b')?.late ?? 0;
    expect(lateB).toBeGreaterThan(0);
    expect(sinkQuery(sink, 'SELECT * FROM unplaced WHERE count > 0')).toEqual([]);
    const stats = sinkQuery<{ duplicates: number; batches: number }>(
      sink,
      "SELECT SUM(duplicates) AS duplicates, COUNT(*) AS batches FROM batches WHERE query = 'events'",
    )[0];
    expect(stats?.duplicates).toBeGreaterThanOrEqual(50);
    // Both twins of both gateways are in the fleet twin table (same asset ids, no overwrite).
    expect(sinkQuery<{ k: string }>(sink, "SELECT gateway_id || '/' || asset AS k FROM twin ORDER BY k").map((r) => r.k)).toEqual(
      ['gw-a/pump-1', 'gw-a/pump-2', 'gw-b/pump-1', 'gw-b/pump-2'],
    );
    const log = readFileSync(logFile, 'utf8');
    expect(log).not.toMatch(/dropped by watermark/);
    console.info(
      log
        .split('\n')
        .filter((l) => l.startsWith('[pipeline'))
        .slice(-12)
        .join('\n'),
    );

    console.info(
      `spark pipeline: ${expectedTotal} events counted exactly once (gw-a ${truth['gw-a'].total}, gw-b ${truth['gw-b'].total}); ` +
        `gw-b offline ${(offlineMs / 1000).toFixed(1)} s, ${lateB} of its events late (behind the ${WATERMARK} watermark) and merged; ` +
        `${stats?.duplicates} duplicates ignored over ${stats?.batches} batches; driver killed once`,
    );
  }, 600_000);

  it('the control query publishes a signed setpoint; the agent applies it once; Spark running the batch again changes nothing', async () => {
    const b = broker as KafkaBroker;
    const dir = tempDir('edge-agent-spark-ctl-');
    if (!process.env.KEEP_SPARK_DIR) cleanups.push(dir.remove);
    else console.info(`keeping ${dir.path}`);
    const prefix = `sparkctl-${Date.now()}.`;
    const sink = join(dir.path, 'sink.db');
    const logFile = join(dir.path, 'spark.log');
    const signer = testSigner(dir.path, 'unused', 'cloud-1');
    const keyFile = join(dir.path, 'cloud-1.pem');
    writeFileSync(keyFile, signer.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { mode: 0o600 });
    const admin = kafkaClient(b.brokers).admin();
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic: `${prefix}control` }, { topic: `${prefix}control-replies` }],
    });
    await admin.disconnect();
    const control = `
control:
  kafka: { topic: ${prefix}control, reply_topic: ${prefix}control-replies }
  keys_file: ${signer.keysFile}
  limits: { overheat: { setpoint: [50, 120] } }
`;
    const agents = [] as Array<{ service: Service; config: AgentConfig; base: string }>;
    for (const [gw, seed] of [
      ['gw-a', 1],
      ['gw-b', 2],
    ] as const) {
      const s = await startAgent(agentYaml(gw, seed, join(dir.path, `${gw}.db`), b.brokers, prefix) + control);
      cleanups.push(() => s.service.stop());
      await s.service.agent?.kafkaControl?.ready();
      agents.push({ ...s, base: `http://127.0.0.1:${s.service.apiAddress?.port}` });
    }
    const ctlArgs = [
      ...['--brokers', b.brokers, '--prefix', prefix, '--checkpoint', join(dir.path, 'checkpoint'), '--sink', sink],
      ...['--trigger', '1 second', '--control-topic', `${prefix}control`],
      ...['--setpoint', 'pump-1/temperature=overheat:setpoint', '--sigmas', '4', '--bounds', '50:120'],
      ...['--min-samples', '20', '--hysteresis', '1000', '--signing-key', keyFile, '--key-id', 'cloud-1'],
    ];
    let spark = new Pipeline(ctlArgs, logFile);
    cleanups.push(() => spark.stop());

    type Outbox = {
      id: string;
      batch_id: number;
      gateway_id: string;
      value: number;
      computed_at: number;
      envelope: string;
      published_at: number;
    };
    const outbox = () => sinkQuery<Outbox>(sink, 'SELECT * FROM outbox WHERE published_at IS NOT NULL ORDER BY gateway_id');
    await waitFor(() => outbox().length === 2, {
      what: 'one published setpoint per gateway',
      timeoutMs: 240_000,
      intervalMs: 500,
    });
    const sent = outbox();
    type Setting = { value: number; file_value: number; origin: string; by?: string; message_id?: string; applied_at?: number };
    const settingOf = async (base: string) => {
      const twin = (await (await fetch(`${base}/api/twin`)).json()) as {
        assets: Array<{ asset: string; settings: Record<string, Record<string, Setting>> }>;
      };
      return twin.assets.find((x) => x.asset === 'pump-1')?.settings.overheat?.setpoint;
    };
    const latencies: number[] = [];
    const appliedAt: number[] = [];
    for (const [i, a] of agents.entries()) {
      const m = sent[i] as Outbox;
      expect(m.gateway_id).toBe(a.config.gateway.id);
      expect(m.value).toBeGreaterThanOrEqual(50);
      expect(m.value).toBeLessThanOrEqual(120);
      const applied = await waitFor(
        async () => {
          const st = await settingOf(a.base);
          return st?.message_id === m.id ? st : undefined;
        },
        { what: `${m.gateway_id} applying ${m.id}`, timeoutMs: 60_000, intervalMs: 100 },
      );
      expect(applied).toMatchObject({ value: m.value, file_value: 90, origin: 'override', by: 'spark-fleet' });
      appliedAt.push(applied.applied_at ?? Number.NaN);
      latencies.push((applied.applied_at ?? 0) - m.computed_at);
    }

    // Steady state (after the catch-up of the first batches): live events stored -> counted.
    const base = lastBatch(sink).n;
    await waitFor(() => lastBatch(sink).n >= Math.max(base, 2) + 5, {
      what: 'five more events batches',
      timeoutMs: 180_000,
      intervalMs: 500,
    });
    const steady = latency(sink, 'gw-a', batchAt(sink, 2), lastBatch(sink).t - 5000);
    // A second run of the same batch: the driver dies after the Kafka write and before the outbox was
    // marked published, and Spark runs the batch again from its checkpoint after the restart. It
    // publishes the same signed bytes again; the agents refuse them as replays.
    spark.kill('SIGKILL');
    await spark.exited;
    const batch = (sent[0] as Outbox).batch_id;
    expect(sent.every((m) => m.batch_id === batch)).toBe(true);
    const ck = join(dir.path, 'checkpoint', 'control');
    for (const [sub, keep] of [
      ['offsets', batch],
      ['commits', batch - 1],
    ] as const)
      for (const f of readdirSync(join(ck, sub))) if (Number(f.replace(/^\.|\.crc$/g, '')) > keep) rmSync(join(ck, sub, f));
    const w = new Database(sink, { timeout: 10_000 });
    w.prepare('UPDATE outbox SET published_at = NULL WHERE batch_id = ?').run(batch);
    w.close();
    spark = new Pipeline(ctlArgs, logFile);
    await waitFor(() => outbox().length === 2, {
      what: `batch ${batch} run again and its outbox published again`,
      timeoutMs: 240_000,
      intervalMs: 500,
    });
    expect(readFileSync(logFile, 'utf8')).toContain(`control batch ${batch}: already merged (run again after a restart)`);
    // Every agent reads the fleet's control topic: 2 messages x 2 sends x 2 agents answered, keyed by gateway.
    const replies = await consumeAll(b.brokers, `${prefix}control-replies`, { expected: 8, timeoutMs: 60_000 });
    const answers = new Map<string, Array<{ ok: boolean; error?: string }>>();
    for (const r of replies) {
      const v = JSON.parse(r.value ?? '{}') as { id: string; ok: boolean; error?: string };
      const k = `${r.key}:${v.id}`;
      answers.set(
        k,
        [...(answers.get(k) ?? []), v].sort((x, y) => Number(y.ok) - Number(x.ok)),
      );
    }
    for (const m of sent) {
      expect(answers.get(`${m.gateway_id}:${m.id}`)?.map((r) => r.ok)).toEqual([true, false]);
      expect(answers.get(`${m.gateway_id}:${m.id}`)?.[1]?.error).toMatch(/already applied/);
      const other = sent.find((x) => x.gateway_id !== m.gateway_id)?.gateway_id;
      expect(answers.get(`${other}:${m.id}`)?.map((r) => r.ok)).toEqual([false, false]);
    }
    // Still the first application: same message, same time.
    for (const [i, a] of agents.entries())
      expect(await settingOf(a.base)).toMatchObject({ message_id: sent[i]?.id, applied_at: appliedAt[i] });
    expect(
      sinkQuery<{ n: number }>(sink, 'SELECT COUNT(*) AS n FROM outbox')[0]?.n,
      'the control query signed one message per gateway',
    ).toBe(2);
    await spark.stop();
    console.info(
      readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('[pipeline'))
        .slice(-8)
        .join('\n'),
    );
    console.info(
      `spark control loop: setpoints ${sent.map((m) => `${m.gateway_id} ${m.value}`).join(', ')} (file 90); ` +
        `computed -> applied at the edge: ${latencies.map((l) => `${l} ms`).join(', ')}; the batch run again after a driver kill republished the same bytes, refused as replays. ` +
        `Edge -> sink latency of live gw-a events after the first two batches: ${steady}`,
    );
  }, 600_000);
});
