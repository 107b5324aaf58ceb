/**
 * `npm run bench kafka`: the Kafka drain, each figure beside its baseline from the same run.
 *
 * 1. Drain of a backlog (KAFKA_BENCH_EVENTS, default 1,000,000) through the real SyncService (its
 *    sync process, one transaction per page, cursor in the offset commit) to a local broker, then
 *    kcat producing the IDENTICAL records: the agent's records are read back from its topics (key and
 *    value bytes as sent), and kcat produces them to topics with the same partition count, with the
 *    same partitioner (murmur2: same key → same partition), codec, acks=all, idempotence, and the same
 *    six headers (the per-record `seq` header as a same-width value: kcat -H is per run). kcat sets
 *    its own timestamps (CreateTime = now; same varint width class). Idempotent and transactional
 *    (kcat: one transaction for the whole run, the agent: one per page) variants.
 *    events/s, MB/s (key + value + header bytes, the same for both) and CPU-seconds per million events
 *    (agent: sync process + the agent process's relay and store writer threads; kcat: the process).
 *    Both sides' topics exist before the timed part (the agent's from a first start on an empty store);
 *    the agent's time includes starting the sync process (under tsx here), connecting and
 *    InitProducerId, kcat's its own start and connect.
 * 2. The same drain while a pipeline runs at 50,000 readings/s (30 sensors, threshold detectors with
 *    interlocks): stop latency from a reading's due time (timer-driven arrival) to the actuator call,
 *    p50/p99 idle vs draining, and the main thread's event-loop delay p99. The reading arrives on a
 *    timer, so the latency includes any event-loop delay the drain causes.
 * SYNC_BENCH_OVERRIDES='{"compression":"lz4"}' changes the sync options (kcat follows the codec).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseConfig } from '../../agent/config/load.js';
import { type BoundSensor, bindSensor } from '../../agent/driver.js';
import { Interlocks } from '../../agent/interlock.js';
import { Pipeline } from '../../agent/pipeline.js';
import { makeReading } from '../../agent/reading.js';
import type { EventStore } from '../../agent/store/store.js';
import type { SyncService } from '../../agent/sync/service.js';
import type { Reading } from '../../agent/types.js';
import { EVENT_KINDS } from '../../agent/types.js';
import { SignalGenerator } from '../../drivers/simulator/simulator.js';
import { createTopic, kafkaAvailable, kcatAvailable, startKafka } from '../../test/helpers/kafka.js';
import { event, openStore, silent, startSync, syncConfig } from '../../test/helpers/sync.js';
import { tempDir } from '../../test/helpers/tmp.js';
import { timingActuator, tripPlantYaml } from './trip.js';
import { type BenchRow, type BenchSection, percentile, round } from './types.js';

const S = 'kafka';
const EVENTS = Number(process.env.KAFKA_BENCH_EVENTS ?? 1_000_000);
const LOAD_EVENTS = Number(process.env.KAFKA_BENCH_LOAD_EVENTS ?? 300_000);
const WARM = Number(process.env.KAFKA_BENCH_WARM ?? 200_000);
const READINGS_PER_S = 50_000;
/** CPU priority of both sides of the drain comparison: the agent's sync process and kcat (default 0, like the broker). */
const DRAIN_NICE = Number(process.env.KAFKA_BENCH_NICE ?? 0);
/**
 * `sync.kafka.nice` values of the drain under plant load (2.), each against the same idle baseline;
 * a `y` runs it with `yield_to_detection` (the default; without `y` the drain does not pause); a
 * trailing `b` also runs the local broker at nice 19 from then on (on a gateway the broker is remote:
 * its CPU is an artefact of this bench).
 */
const LOAD_NICE = (process.env.KAFKA_BENCH_LOAD_NICE ?? '19,19y,19,19y').split(',');
/** Which parts run: `drain` (1.) and/or `load` (2.). */
const PARTS = (process.env.KAFKA_BENCH_PARTS ?? 'drain,load').split(',');
const LIMITS = { maxBytes: 4e9, minFreeBytes: 100e6, retentionAgeMs: 86_400_000, retentionBytes: 2e9 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CLK_TCK = 100;

function loadavg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** Sets the nice value of every thread of the broker started in `dir` (its JVM has `-Dkafka.logs.dir=<dir>/logs`). */
function reniceBroker(dir: string, nice: number): number {
  const pids = spawnSync('pgrep', ['-f', '--', `-Dkafka.logs.dir=${dir}/logs`], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter(Boolean);
  let threads = 0;
  for (const pid of pids)
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        setPriority(Number(tid), nice);
        threads++;
      } catch {
        // The thread ended meanwhile.
      }
    }
  return threads;
}

/** CPU seconds (user + system) a process used so far, from /proc. */
function procCpu(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

async function buildBacklog(store: EventStore, n: number, t0: number, from = 0): Promise<void> {
  for (let i = from; i < from + n; i++) {
    store.append(event(i, t0));
    if (i % 20_000 === 19_999) await new Promise((r) => setImmediate(r));
  }
  await store.flush(600_000);
}

async function waitDrained(store: EventStore, below = 1): Promise<void> {
  while ((store.stats.keeper?.unsentEvents ?? below) >= below) await sleep(20);
}

function run(cmd: string, args: string[], nice = 0): Promise<{ secs: number; cpu: number; out: string }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    // bash `times` prints the children's user and system CPU time after kcat exits.
    const p = spawn('bash', ['-c', `nice -n ${nice} "$@" >/dev/null; rc=$?; times >&2; exit $rc`, 'bash', cmd, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.once('error', reject);
    p.once('exit', (code) => {
      const secs = (performance.now() - start) / 1000;
      const lines = err.trim().split('\n');
      const m = /(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/.exec(lines.at(-1) ?? '');
      const cpu = m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : Number.NaN;
      if (code !== 0) reject(new Error(`${cmd} exited ${code}: ${err.slice(-500)}`));
      else resolve({ secs, cpu, out: err });
    });
  });
}

/** The agent's records of one topic as kcat sends them: `key<TAB>value` lines; returns bytes and headers. */
async function exportTopic(
  brokers: string,
  topic: string,
  file: string,
): Promise<{ records: number; bytes: number; headers: string[] }> {
  const out = createWriteStream(file);
  let headers: string[] = [];
  let records = 0;
  let bytes = 0;
  await new Promise<void>((resolve, reject) => {
    const p = spawn('kcat', ['-C', '-b', brokers, '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%h\t%k\t%s\n'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buf = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      const chunk: string[] = [];
      for (const l of lines) {
        if (!l) continue;
        const tab = l.indexOf('\t');
        const h = l.slice(0, tab);
        const kv = l.slice(tab + 1);
        if (records === 0) headers = h.split(',');
        records++;
        bytes += Buffer.byteLength(kv) - 1 + Buffer.byteLength(h.replaceAll(/[=,]/g, ''));
        chunk.push(kv);
      }
      if (chunk.length > 0 && !out.write(`${chunk.join('\n')}\n`)) {
        p.stdout.pause();
        out.once('drain', () => p.stdout.resume());
      }
    });
    p.once('error', reject);
    p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`kcat -C ${topic} exited ${code}`))));
  });
  await new Promise<void>((r) => out.end(() => r()));
  return { records, bytes, headers };
}

/**
 * Runs the pipeline at READINGS_PER_S on 10 ms timer ticks, a trip reading due on every tick; stops
 * when `until()` resolves. Latency: due time → actuator call, µs.
 */
async function plantLoad(
  store: EventStore,
  until: () => Promise<void>,
): Promise<{ lat: number[]; readings: number; loopP99: number }> {
  const res = await parseConfig(tripPlantYaml(), 'bench.yaml');
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  const config = res.config;
  const { actuator, calledAt } = timingActuator();
  const emit = (ev: Parameters<EventStore['append']>[0]) => store.append(ev);
  const interlocks = new Interlocks(config.interlocks, new Map([['stop', actuator]]), emit, silent);
  const pipeline = new Pipeline(config, interlocks, emit);
  const sensors: BoundSensor[] = config.assets.flatMap((a) => a.sensors.map((s) => bindSensor(s, a.id)));
  const start = Date.now();
  const gen = new SignalGenerator(sensors, { seed: 5, rate: READINGS_PER_S / sensors.length, faults: [] }, start);
  const hot = sensors.find((s) => s.asset === 'pump-0' && s.id === 'temperature') as BoundSensor;
  const lat: number[] = [];
  const buf: Reading[] = [];
  let readings = 0;
  let done = false;
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  void until().then(() => {
    done = true;
  });
  const t0 = performance.now();
  const h0 = process.hrtime.bigint();
  for (let k = 1; !done; k++) {
    const due = t0 + k * 10;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    else await new Promise((r) => setImmediate(r));
    const now = Date.now();
    buf.length = 0;
    gen.generateUntil(start + (performance.now() - t0), now, buf);
    readings += buf.length;
    pipeline.ingest(buf);
    const trip = [makeReading(hot, 200, now, now)];
    pipeline.ingest(trip);
    const dueNs = h0 + BigInt(Math.round((due - t0) * 1e6));
    lat.push(Number(calledAt() - dueNs) / 1000);
    pipeline.ingest([makeReading(hot, 20, now + 1, now + 1)]);
    interlocks.ack(hot.asset, 'bench');
  }
  loop.disable();
  return { lat, readings, loopP99: loop.percentile(99) / 1e6 };
}

/**
 * A fresh broker's JVM is slower until its JIT has compiled the produce path: the first drain on it
 * measured 41,556 events/s, the same drain right after 77,987 (2026-12-02, load 3). kcat runs after the
 * agent, so without this the agent would pay the broker's warm-up alone. WARM events are drained
 * through the agent to other topics first (KAFKA_BENCH_WARM, default 200,000).
 */
async function warmBroker(cfg: ReturnType<typeof syncConfig>, headers: boolean): Promise<void> {
  if (WARM <= 0) return;
  const dir = tempDir('edge-agent-bench-warm-');
  try {
    const path = join(dir.path, 'warm.db');
    const store = openStore(path, LIMITS);
    await store.open();
    await buildBacklog(store, WARM, Date.now() - WARM);
    const s = startSync(store, path, { ...cfg, topic_prefix: `bench-warm-${headers ? 'h' : 'n'}.` });
    await waitDrained(store);
    await s.stop();
    await store.close();
  } finally {
    dir.remove();
  }
}

export const kafka: BenchSection = {
  name: 'kafka',
  requires: ['kafka', 'kcat'],
  async run(): Promise<BenchRow[]> {
    const k = kafkaAvailable();
    if (!k.ok) throw new Error(`Kafka unavailable: ${k.reason}`);
    if (!kcatAvailable().ok) throw new Error('kcat unavailable');
    const rows: BenchRow[] = [];
    const dir = tempDir('edge-agent-bench-kafka-');
    const broker = await startKafka({ partitions: 3, logLevel: 'WARN' });
    try {
      const over = JSON.parse(process.env.SYNC_BENCH_OVERRIDES ?? '{}') as Record<string, unknown>;

      // 1. The drain alone, with the identity headers (default) and without (sync.kafka.headers: false).
      const drain = async (headers: boolean) => {
        const tag = headers ? 'h' : 'n';
        const prefix = `bench-${tag}.`;
        // The same CPU priority as kcat (KAFKA_BENCH_NICE, default 0 = the broker's); the drain under
        // plant load (2.) runs at the configured nice.
        // No pacing (yield_to_detection), as kcat: nothing runs beside the drain here; the drain under
        // plant load (2.) shows the pacing.
        const cfg = syncConfig(broker.brokers, prefix, {
          linger: '100ms',
          nice: DRAIN_NICE,
          yield_to_detection: false,
          ...over,
          headers,
        });
        const codec = cfg.compression;
        const path = join(dir.path, `backlog-${tag}.db`);
        const t0 = Date.now() - EVENTS;
        let store = openStore(path, LIMITS);
        await store.open();
        // The agent's topics exist before the timed drain, as kcat's do: the agent creates them at its
        // first start (here on the empty store); the timed drain is a restart with a backlog, as after a
        // gateway's day offline (process start, connect, InitProducerId and the cursor read included).
        const first = startSync(store, path, cfg);
        while (first.snapshot().status?.state !== 'idle') await sleep(50);
        await first.stop();
        await warmBroker(cfg, headers);
        await buildBacklog(store, EVENTS, t0);
        await store.close();
        store = openStore(path, LIMITS);
        await store.open();
        const loadBefore = loadavg();
        const cpu0 = process.cpuUsage();
        const start = performance.now();
        const service: SyncService = startSync(store, path, cfg);
        await waitDrained(store);
        const drainSecs = (performance.now() - start) / 1000;
        const u = process.cpuUsage(cpu0);
        const parentCpu = (u.user + u.system) / 1e6;
        const childCpu = procCpu(service.pid);
        const sent = EVENTS;
        await service.stop();
        await store.close();
        const agentCpu = parentCpu + childCpu;
        const loadAfter = loadavg();

        // The agent's records, exported for kcat.
        const files: Array<{ topic: string; file: string; headers: string[]; records: number; bytes: number }> = [];
        for (const kind of EVENT_KINDS) {
          const topic = `${prefix}${kind}`;
          const file = join(dir.path, `${tag}-${kind}.txt`);
          const r = await exportTopic(broker.brokers, topic, file);
          if (r.records > 0) files.push({ topic, file, ...r });
        }
        const records = files.reduce((n, f) => n + f.records, 0);
        const bytes = files.reduce((n, f) => n + f.bytes, 0);
        const kcatRun = async (variant: 'idempotent' | 'transactional') => {
          let secs = 0;
          let cpu = 0;
          for (const f of files) {
            const topic = `kcat-${variant}.${f.topic}`;
            await createTopic(broker.brokers, topic, 3);
            const hs = headers
              ? f.headers.flatMap((h) => ['-H', h.startsWith('seq=') ? `seq=${'9'.repeat(h.length - 4)}` : h])
              : [];
            const args = ['-P', '-b', broker.brokers, '-t', topic, '-K', '\t', '-z', codec, ...hs];
            args.push('-X', 'acks=all', '-X', 'enable.idempotence=true', '-X', 'partitioner=murmur2_random', '-X', 'linger.ms=5');
            if (variant === 'transactional') args.push('-X', `transactional.id=bench-kcat-${f.topic}`);
            args.push('-l', f.file);
            const r = await run('kcat', args, DRAIN_NICE);
            secs += r.secs;
            cpu += r.cpu;
          }
          return { secs, cpu };
        };
        const idem = await kcatRun('idempotent');
        const txn = await kcatRun('transactional');
        const kcatLoad = loadavg();
        const mb = (secs: number) => round(bytes / secs / 1e6);
        const perM = (cpu: number, n: number) => round((cpu / n) * 1e6);
        const ours = sent / drainSecs;
        const what = headers ? 'with the 6 identity headers' : 'without headers (sync.kafka.headers: false)';
        const note = `${records} records, ${(bytes / 1e6).toFixed(0)} MB key+value+headers, ${codec}, 3 partitions, pages of ${cfg.batch_max_events}, agent and kcat at nice ${DRAIN_NICE}; load avg ${loadBefore} → ${loadAfter}, kcat ${kcatLoad}`;
        const vsKcat = (name: string, kcat: string, secs: number, rowNote?: string): BenchRow => ({
          section: S,
          name: `drain ${sent} events ${what} ${name}, identical records`,
          value: Math.round(ours),
          unit: 'events/s',
          baseline: { name: kcat, value: Math.round(records / secs), ratio: round(ours / (records / secs)) },
          ...(rowNote ? { note: rowNote } : {}),
        });
        rows.push(
          vsKcat('(transaction per page) vs kcat idempotent', 'kcat -P idempotent', idem.secs, note),
          vsKcat('vs kcat transactional (one transaction per run)', 'kcat -P transactional', txn.secs),
          {
            section: S,
            name: `drain throughput ${what} (key + value + header bytes)`,
            value: mb(drainSecs),
            unit: 'MB/s',
            baseline: { name: 'kcat idempotent', value: mb(idem.secs), ratio: round(idem.secs / drainSecs) },
            note: `kcat transactional ${mb(txn.secs)} MB/s`,
          },
          {
            section: S,
            name: `drain CPU per million events ${what} (agent: sync process + agent process)`,
            value: perM(agentCpu, sent),
            unit: 'CPU-s/M events',
            baseline: {
              name: 'kcat idempotent',
              value: perM(idem.cpu, records),
              ratio: round(agentCpu / sent / (idem.cpu / records)),
            },
            note: `sync process ${childCpu.toFixed(1)} s, agent process ${parentCpu.toFixed(1)} s; kcat transactional ${perM(txn.cpu, records)} CPU-s/M`,
          },
        );
      };
      if (PARTS.includes('drain'))
        for (const h of (process.env.KAFKA_BENCH_HEADERS ?? 'true,false').split(',')) await drain(h === 'true');
      if (PARTS.includes('load')) rows.push(...(await underLoad(broker.brokers, broker.dir, dir.path, over)));
    } finally {
      await broker.destroy();
      dir.remove();
    }
    return rows;
  },
};

/**
 * 2. The pipeline at 50k readings/s: idle, then while a backlog drains, once per `sync.kafka.nice` of
 * LOAD_NICE, all against the same idle baseline of this run.
 */
async function underLoad(brokers: string, brokerDir: string, dir: string, over: Record<string, unknown>): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const path2 = join(dir, 'load.db');
  const store = openStore(path2, LIMITS);
  await store.open();
  try {
    const idle = await plantLoad(store, async () => {
      await sleep(10_000);
    });
    const sortIdle = Float64Array.from(idle.lat).sort();
    const p = (s: Float64Array, q: number) => round(percentile(s, q) / 1000, 3);
    const idleNote = `idle ${idle.lat.length} trips at ${Math.round(idle.readings / 10)} readings/s, load avg ${loadavg()}`;
    let built = 0;
    let brokerNice = 0;
    for (const variant of LOAD_NICE) {
      const nice = Number.parseInt(variant, 10);
      if (variant.endsWith('b') && brokerNice === 0) {
        if (reniceBroker(brokerDir, 19) === 0) throw new Error('could not find the broker to renice');
        brokerNice = 19;
      }
      const yieldOn = variant.includes('y');
      const tag = `sync process at nice ${nice}, yield_to_detection ${yieldOn}, broker at nice ${brokerNice}`;
      await buildBacklog(store, LOAD_EVENTS, Date.now() - LOAD_EVENTS - built, built);
      built += LOAD_EVENTS;
      const cfg2 = syncConfig(brokers, `bench-load-${variant}-${built}.`, {
        linger: '100ms',
        nice,
        yield_to_detection: yieldOn,
        ...over,
      });
      let service: SyncService | undefined;
      let drainStart = 0;
      let drainEnd = 0;
      const busy = await plantLoad(store, async () => {
        drainStart = performance.now();
        service = startSync(store, path2, cfg2);
        await waitDrained(store, 2000);
        drainEnd = performance.now();
      });
      await service?.stop();
      const sortBusy = Float64Array.from(busy.lat).sort();
      const drainLoadSecs = (drainEnd - drainStart) / 1000;
      const loadNote = `${tag}: ${busy.lat.length} trips while draining ${LOAD_EVENTS} events in ${drainLoadSecs.toFixed(1)} s (${Math.round(LOAD_EVENTS / drainLoadSecs)} events/s, paused ${((service?.status?.yieldedMs ?? 0) / 1000).toFixed(1)} s for detection) at ${Math.round(busy.readings / drainLoadSecs)} readings/s, load avg ${loadavg()}; ${idleNote}`;
      rows.push(
        {
          section: S,
          name: `stop latency p50 (reading due → actuator call), pipeline at 50k readings/s, draining (${tag})`,
          value: p(sortBusy, 50),
          unit: 'ms',
          baseline: {
            name: 'not draining',
            value: p(sortIdle, 50),
            ratio: round(percentile(sortBusy, 50) / percentile(sortIdle, 50)),
          },
        },
        {
          section: S,
          name: `stop latency p99 (reading due → actuator call), pipeline at 50k readings/s, draining (${tag})`,
          value: p(sortBusy, 99),
          unit: 'ms',
          baseline: {
            name: 'not draining',
            value: p(sortIdle, 99),
            ratio: round(percentile(sortBusy, 99) / percentile(sortIdle, 99)),
          },
          note: loadNote,
        },
        {
          section: S,
          name: `main thread event-loop delay p99, pipeline at 50k readings/s, draining (${tag})`,
          value: round(busy.loopP99, 2),
          unit: 'ms',
          baseline: { name: 'not draining', value: round(idle.loopP99, 2), ratio: round(busy.loopP99 / idle.loopP99) },
        },
      );
    }
  } finally {
    await store.close();
  }
  return rows;
}
