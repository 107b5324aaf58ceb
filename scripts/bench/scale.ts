/**
 * Plant scale, end to end (issue 20): N sensors as N assets over a real Mosquitto (set_tcp_nodelay),
 * each at 10 Hz, so N = rate / 10. Now and then one sensor sends a reading above the setpoint; the
 * system under test must publish a stop for that asset; the machine (the load generator) acknowledges
 * on the ack topic once a normal reading has followed, and the asset is re-armed. Latency = the
 * tripping reading published → its stop received, measured by the generator for both systems.
 *
 * Systems, in the same run, alternating per load: the agent AS SHIPPED (the compiled build with plain
 * Node; file store with synchronous FULL, the API, capture and the twin on: the defaults) and a bare
 * mqtt.js relay applying the same change-of-state rule (the floor). Each runs as its own process, as
 * does the generator, so CPU per reading is the system's own (from /proc/PID/stat).
 *
 * Figures: p50/p99/p99.9 latency, CPU-µs per reading, RSS at the end of each load, the agent's idle RSS
 * with 2,000 sensors against the budget 100 MB + 20 KB per sensor, and the max sustained rate (the
 * highest rate of a ramp with p99 ≤ 100 ms, no stop lost and the generator keeping up). Each figure is
 * the median over SCALE_ROUNDS rounds (default 3); the p99 is also given over all rounds' trips together,
 * with a bootstrap interval of its ratio to the relay's (scripts/bench/ratio.ts). SCALE_AA=1 adds a second
 * relay, judged against the first like the agent: how far the ratio moves when nothing differs.
 * SCALE_AA_RELAY (JSON, diagnosis, with SCALE_AA=1) makes that second relay like the agent in one respect
 * (scale/relay.mjs: `burn_us` of main-thread work after each stop, `burn_after_ms` later; `two_connections`;
 * `reading_us` of work on every reading).
 *
 * SCALE_RATES (default 1000,5000,20000,50000), SCALE_SECONDS (default 20), SCALE_RAMP (default
 * 20000,35000,50000,65000,80000,95000; empty disables the ramp), SCALE_IDLE_SENSORS (default 2000).
 * SCALE_SETTLE (seconds, default 0): each system runs under the same load this long after the warm-up
 * before the measured seconds, its trips counted nowhere. Every system starts afresh for each round,
 * and the agent's JIT is still compiling well after the 3 s warm-up (V8's --trace-opt at 5k/s: about
 * 1.5 s of background compilation in the first 10 s of load, 0.1–0.15 s per 10 s at 17–47 s, 0.02–0.03 s
 * per 10 s after 57 s), so without it the agent is measured while it warms up; the relay's little code
 * is compiled within the warm-up. The warm-up's trips stay the cold-path row.
 * SCALE_BASELINE_BIN: the bin/edge-agent.js of another compiled build (e.g. main's, `npm run build -- --out
 * DIR` in its checkout) measured beside this one at every load and at idle, for an A/B in the same run: the
 * pooled p99's ratio with its bootstrap interval, and the CPU per reading round by round.
 * SKIP_BUILD=1: dist/ is measured as it is, not rebuilt from the working tree first.
 * SCALE_GEN=mqttjs: the generator publishes its readings through mqtt.js one packet at a time, as it did
 * before it encoded them itself (scale/load.mjs); for comparison with runs before that change.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { freePort } from '../../test/helpers/free-port.js';
import { type Mosquitto, startMosquitto } from '../../test/helpers/mosquitto.js';
import { tempDir } from '../../test/helpers/tmp.js';
import { build } from '../build.js';
import { quantileRatio } from './ratio.js';
import { type BenchRow, type BenchSection, percentile, round } from './types.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
/** How the systems are named in the results: the agent as shipped, the relay, the A/A control. */
const SHIPPED_NAME = 'agent as shipped';
const RELAY_NAME = 'bare mqtt.js relay';
/** SCALE_AA=1: a second relay in every round, judged against the first like the agent is: the ratio's noise floor. */
const AA_NAME = 'second bare relay (A/A control)';
const LOAD = join(import.meta.dirname, 'scale', 'load.mjs');
const RELAY = join(import.meta.dirname, 'scale', 'relay.mjs');
const SETPOINT = 100;
const DELTA_DOWN = 10;
const HZ = 10;
const DEFAULT_BIN = join(ROOT, 'dist', 'bin', 'edge-agent.js');

const list = (v: string | undefined, d: number[]) =>
  v === undefined ? d : v.trim() === '' ? [] : v.split(',').map((x) => Number(x.trim()));

export interface LoadResult {
  readonly readings: number;
  readonly sent_per_s: number;
  readonly trips: number;
  readonly stops: number;
  readonly lost: number;
  readonly refused: number;
  readonly lag_max_ms: number;
  /** The generator's own CPU per reading over the measured seconds (µs). */
  readonly gen_cpu_us_per_reading: number;
  readonly latencies_ms: number[];
  /**
   * For each of `latencies_ms`: 1 when the generator also sent an ack (for another sensor) in the 2 ms tick of
   * that trip's reading, 2 when it sent one in the tick before and none in it, 0 otherwise.
   */
  readonly ack_flags?: number[];
  /** Latencies of the trips sent during the warm-up (the first trips after the system started: the cold path). */
  readonly first_latencies_ms: number[];
  /** Latencies above 20 ms: [sent at (µs, monotonic clock as in CPU profiles), latency ms]. */
  readonly slow?: Array<[number, number]>;
}

export interface ProcStat {
  /** CPU seconds (user + system) so far. */
  readonly cpu: number;
  readonly rssMb: number;
}

export function procStat(pid: number): ProcStat {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpu: ticks / 100, rssMb: m ? Number(m[1]) / 1024 : Number.NaN };
}

/** The agent's config for N one-sensor assets on MQTT, a threshold trip each, stop over MQTT. */
export function scaleConfig(opts: {
  sensors: number;
  mqttPort: number;
  apiPort: number;
  dbPath: string;
  prefix: string;
}): string {
  const url = `mqtt://127.0.0.1:${opts.mqttPort}`;
  const lines = [
    // SCALE_HELPER_NICE: gateway.helper_nice for an A/B inside one build (default: the agent's default).
    `gateway: { id: scale-gw${process.env.SCALE_HELPER_NICE ? `, helper_nice: ${process.env.SCALE_HELPER_NICE}` : ''} }`,
    // SCALE_STORE: the store line instead (diagnosis, e.g. `store: { path: ":memory:" }`: no file, no journal, no fsync).
    process.env.SCALE_STORE ?? `store: { path: ${opts.dbPath}, synchronous: FULL }`,
    `api: { listen: 127.0.0.1:${opts.apiPort} }`,
    'log: { level: warn }',
    'sources:',
    `  - { id: broker, type: mqtt, url: "${url}", client_id: scale-agent-${opts.apiPort}, subscriptions: [{ topic: "${opts.prefix}/+/temperature", asset_segment: 1, sensor_segment: 2, value_path: value, time_path: ts, time_format: epoch_ms }] }`,
    'actuators:',
    // SCALE_YIELD_US: the actuator's yield_to_broker_us, for an A/B inside one build (default: the driver's default).
    `  - { id: stop, type: mqtt-publish, url: "${url}", client_id: scale-agent-cmd-${opts.apiPort}, command_topic: "${opts.prefix}/{asset}/command", ack_topic: "${opts.prefix}-ack"${process.env.SCALE_YIELD_US ? `, yield_to_broker_us: ${process.env.SCALE_YIELD_US}` : ''} }`,
    'assets:',
  ];
  for (let i = 0; i < opts.sensors; i++)
    lines.push(
      `  - { id: a${i}, sensors: [{ id: temperature, metric: temperature, unit: degC, source: broker, min: -40, max: 400 }] }`,
    );
  lines.push('detectors:');
  for (let i = 0; i < opts.sensors; i++)
    lines.push(
      `  - { id: hot-a${i}, type: threshold, asset: a${i}, sensor: temperature, setpoint: ${SETPOINT}, delta_down: ${DELTA_DOWN}, trip: true, severity: critical }`,
    );
  lines.push('interlocks:');
  for (let i = 0; i < opts.sensors; i++) lines.push(`  - { asset: a${i}, actions: [{ actuator: stop, command: stop }] }`);
  return `${lines.join('\n')}\n`;
}

/** The `Environment=NODE_OPTIONS=…` of systemd/edge-agent.service: how the agent runs as shipped. */
export function unitNodeOptions(): string {
  const unit = readFileSync(join(ROOT, 'systemd', 'edge-agent.service'), 'utf8');
  // `Environment=NODE_OPTIONS=a` or, with spaces, `Environment="NODE_OPTIONS=a b"`.
  return /^Environment=("?)NODE_OPTIONS=(.*)\1$/m.exec(unit)?.[2]?.trim() ?? '';
}

/** The NODE_OPTIONS an agent runs with by default: the unit's, as shipped (SCALE_UNIT_NODE_OPTIONS=off: none). */
export function defaultNodeOptions(): string {
  return process.env.SCALE_UNIT_NODE_OPTIONS === 'off' ? '' : unitNodeOptions();
}

/**
 * How the bench names an agent it starts: the shipped one (this build with the default options, which
 * SCALE_UNIT_NODE_OPTIONS=off empties), or a baseline (another build, or other NODE_OPTIONS).
 */
export function agentName(bin: string, nodeOptions: string): string {
  if (bin === DEFAULT_BIN && nodeOptions === defaultNodeOptions()) return SHIPPED_NAME;
  return `baseline agent (${bin}, NODE_OPTIONS '${nodeOptions}')`;
}

/** A system under test: a running process subscribed to `<prefix>/+/temperature`. */
export interface System {
  readonly name: string;
  readonly prefix: string;
  readonly proc: ChildProcess;
  /** The agent's /metrics text (undefined for the relay). */
  metrics?(): Promise<string>;
  stop(): Promise<void>;
}

/** What the agent's own metrics say about its helpers once the load ends (agents only). */
export interface AgentSide {
  /** Latch journal fdatasyncs in the run (all its trips) and their mean, from call to callback. */
  readonly journalSyncs: number;
  readonly journalSyncMeanMs: number;
  /** The bucket bound (ms) under which 99 % of them returned. */
  readonly journalSyncP99LeMs: number;
  /** Events accepted but not committed when the load stopped: a writer thread falling behind shows here. */
  readonly storeBacklog: number;
}

/** The agent side as a clause of a progress line ('' for the relay). */
export function sideText(side: AgentSide | undefined): string {
  if (!side) return '';
  const backlog = `; store backlog at the end ${side.storeBacklog}`;
  // A build without the journal's sync histogram (an older baseline) has the backlog only.
  if (Number.isNaN(side.journalSyncs)) return backlog;
  return `; journal fdatasync ${side.journalSyncs}×, mean ${side.journalSyncMeanMs.toFixed(2)} ms, p99 ≤ ${side.journalSyncP99LeMs} ms${backlog}`;
}

/** Reads {@link AgentSide} from Prometheus text. */
export function agentSide(text: string): AgentSide {
  const by = new Map(parsePrometheus(text).map((f) => [f.name, f.metrics[0]]));
  const journal = by.get('edge_agent_latch_journal_sync_seconds');
  const count = Number(journal?.count ?? Number.NaN);
  const p99 = Object.entries(journal?.buckets ?? {})
    .map(([le, n]) => ({ le: Number(le), n: Number(n) }))
    .sort((a, b) => a.le - b.le)
    .find((b) => b.n >= 0.99 * count)?.le;
  return {
    journalSyncs: count,
    journalSyncMeanMs: count > 0 ? (Number(journal?.sum) / count) * 1000 : Number.NaN,
    journalSyncP99LeMs: (p99 ?? Number.NaN) * 1000,
    storeBacklog: Number(by.get('edge_agent_store_backlog_events')?.value ?? Number.NaN),
  };
}

const exited = (p: ChildProcess) =>
  new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', () => r())));

async function stopProc(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 15_000);
  await exited(p);
  clearTimeout(t);
}

/** Starts the compiled agent (dist/, built by the caller) and waits for /readyz. */
export async function startAgent(
  dir: string,
  broker: Mosquitto,
  sensors: number,
  bin = DEFAULT_BIN,
  /** NODE_OPTIONS to run it with: the systemd unit's, as shipped, unless an A/B asks for others. */
  options = defaultNodeOptions(),
): Promise<System & { apiPort: number }> {
  const apiPort = await freePort();
  const prefix = `agent${apiPort}`;
  const cfg = join(dir, `scale-${apiPort}.yaml`);
  // SCALE_AGENT_EXTRA: YAML appended to the agent's config (experiments: e.g. `capture: { max_readings: 0 }`).
  writeFileSync(
    cfg,
    `${scaleConfig({ sensors, mqttPort: broker.port, apiPort, dbPath: join(dir, `scale-${apiPort}.db`), prefix })}${process.env.SCALE_AGENT_EXTRA ?? ''}\n`,
  );
  const args = [...(process.env.NODE_FLAGS ? process.env.NODE_FLAGS.split(' ') : []), bin, 'run', '--config', cfg];
  // SCALE_AGENT_NICE: the agent's nice value from its start, every thread (what `Nice=` in the systemd unit does).
  const nice = process.env.SCALE_AGENT_NICE;
  const nodeOptions = [options, process.env.NODE_OPTIONS ?? ''].filter(Boolean).join(' ');
  const proc = spawn(nice ? 'nice' : process.execPath, nice ? ['-n', nice, process.execPath, ...args] : args, {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: nodeOptions },
    // SCALE_AGENT_STDOUT: a file for the agent's stdout (e.g. `--trace-gc` output in NODE_FLAGS).
    stdio: ['ignore', process.env.SCALE_AGENT_STDOUT ? openSync(process.env.SCALE_AGENT_STDOUT, 'a') : 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const t0 = performance.now();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`agent exited with ${proc.exitCode}: ${stderr}`);
    const ok = await fetch(`http://127.0.0.1:${apiPort}/readyz`, { signal: AbortSignal.timeout(1000) })
      .then((r) => r.status === 200 || r.status === 503)
      .catch(() => false);
    if (ok) break;
    if (performance.now() - t0 > 120_000) throw new Error(`agent not up after 120 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name: agentName(bin, options),
    prefix,
    proc,
    apiPort,
    metrics: () => fetch(`http://127.0.0.1:${apiPort}/metrics`, { signal: AbortSignal.timeout(5000) }).then((r) => r.text()),
    stop: () => stopProc(proc),
  };
}

export async function startRelay(broker: Mosquitto, name = RELAY_NAME): Promise<System> {
  const prefix = `relay${Math.floor(Math.random() * 1e6)}`;
  const o = {
    url: `mqtt://127.0.0.1:${broker.port}`,
    prefix,
    setpoint: SETPOINT,
    delta_down: DELTA_DOWN,
    ack_topic: `${prefix}-ack`,
    reply_topic: `${prefix}-ack/reply`,
    // SCALE_AA_RELAY (JSON, diagnosis): the A/A relay made like the agent in one respect (scale/relay.mjs).
    ...(name === AA_NAME && process.env.SCALE_AA_RELAY ? JSON.parse(process.env.SCALE_AA_RELAY) : {}),
  };
  const proc = spawn(process.execPath, [RELAY, JSON.stringify(o)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((res, rej) => {
    proc.stdout?.once('data', () => res());
    proc.once('exit', (c) => rej(new Error(`relay exited with ${c}`)));
  });
  return { name, prefix, proc, stop: () => stopProc(proc) };
}

/** Starts the load generator against a system (see load.mjs); its result arrives when it exits. */
export function generate(
  broker: Mosquitto,
  sys: Pick<System, 'prefix'>,
  o: {
    rate: number;
    seconds: number;
    sensors: number;
    trips_per_s: number;
    warmup_s: number;
    settle_s?: number;
    slow_ms?: number;
  },
): { proc: ChildProcess; result: Promise<LoadResult> } {
  const args = {
    url: `mqtt://127.0.0.1:${broker.port}`,
    prefix: sys.prefix,
    setpoint: SETPOINT,
    normal: 50,
    burst: 150,
    ack_topic: `${sys.prefix}-ack`,
    reply_topic: `${sys.prefix}-ack/reply`,
    mqttjs: process.env.SCALE_GEN === 'mqttjs',
    ...o,
  };
  const proc = spawn(process.execPath, [LOAD, JSON.stringify(args)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const result = exited(proc).then(() => {
    if (proc.exitCode !== 0) throw new Error(`load generator exited with ${proc.exitCode}`);
    return JSON.parse(out.trim().split('\n').at(-1) as string) as LoadResult;
  });
  return { proc, result };
}

/** Seconds of load (with trips) before the measured seconds of {@link drive}. */
const DRIVE_WARMUP_S = 3;
/** Seconds of the same load after the warm-up and before the measured seconds, counted nowhere (SCALE_SETTLE). */
export const DRIVE_SETTLE_S = Number(process.env.SCALE_SETTLE ?? 0);

/** Runs the generator against a system for `seconds` at `rate` readings/s; returns its result and the system's CPU/RSS. */
export async function drive(
  broker: Mosquitto,
  sys: System,
  rate: number,
  seconds: number,
  sensors = Math.max(1, Math.round(rate / HZ)),
): Promise<LoadResult & { cpuUsPerReading: number; rssMb: number; agentSide?: AgentSide }> {
  const o = {
    rate,
    seconds,
    sensors,
    trips_per_s: Math.min(50, Math.max(1, sensors / 4)),
    warmup_s: DRIVE_WARMUP_S,
    settle_s: DRIVE_SETTLE_S,
  };
  const pid = sys.proc.pid as number;
  const gen = generate(broker, sys, o);
  // CPU is counted from the end of the generator's warm-up and settling to the end of its run.
  await new Promise((r) => setTimeout(r, (o.warmup_s + o.settle_s) * 1000));
  const before = procStat(pid);
  const res = await gen.result;
  const after = procStat(pid);
  // After the CPU figure, so that rendering the metrics is not counted against the readings.
  const side = sys.metrics ? agentSide(await sys.metrics()) : undefined;
  const measured = res.readings * (seconds / (seconds + o.warmup_s + o.settle_s));
  return {
    ...res,
    cpuUsPerReading: ((after.cpu - before.cpu) * 1e6) / measured,
    rssMb: after.rssMb,
    ...(side ? { agentSide: side } : {}),
  };
}

export function latencyFigures(r: LoadResult): { p50: number; p99: number; p999: number } {
  const s = Float64Array.from(r.latencies_ms).sort();
  return { p50: percentile(s, 50), p99: percentile(s, 99), p999: percentile(s, 99.9) };
}

interface RoundsResult {
  /** Medians over the rounds. */
  readonly latency: { p50: number; p99: number; p999: number };
  readonly stops: number;
  readonly trips: number;
  readonly lost: number;
  readonly cpuUsPerReading: number;
  /** Each round's CPU per reading (µs), in run order. */
  readonly cpuRounds: readonly number[];
  readonly rssMb: number;
  /** The warm-up's trips (the cold path): the median over rounds of their p99, and how many there were in all. */
  readonly first: { p99: number; n: number };
  /** Each round's latency figures, in run order. */
  readonly rounds: ReadonlyArray<{ p50: number; p99: number; p999: number }>;
  /** Each round's latencies (ms), in run order: the pooled figures and their interval. */
  readonly latencies: ReadonlyArray<readonly number[]>;
}

/** One system's rounds at one load: the median of each figure, the stops and losses summed. */
function overRounds(runs: ReadonlyArray<LoadResult & { cpuUsPerReading: number; rssMb: number }>): RoundsResult {
  const med = (xs: number[]) => percentile(Float64Array.from(xs).sort(), 50);
  const lat = runs.map(latencyFigures);
  const cpu = runs.map((r) => r.cpuUsPerReading);
  return {
    latency: { p50: med(lat.map((l) => l.p50)), p99: med(lat.map((l) => l.p99)), p999: med(lat.map((l) => l.p999)) },
    stops: runs.reduce((a, r) => a + r.stops, 0),
    trips: runs.reduce((a, r) => a + r.trips, 0),
    lost: runs.reduce((a, r) => a + r.lost, 0),
    cpuUsPerReading: med(cpu),
    cpuRounds: cpu,
    rssMb: med(runs.map((r) => r.rssMb)),
    first: {
      p99: med(runs.map((r) => percentile(Float64Array.from(r.first_latencies_ms).sort(), 99))),
      n: runs.reduce((a, r) => a + r.first_latencies_ms.length, 0),
    },
    rounds: lat,
    latencies: runs.map((r) => r.latencies_ms),
  };
}

/** A ratio's bootstrap interval as the rows and stderr give it. */
function intervalText(q: { level: number; lo: number; hi: number }): string {
  return `${Math.round(q.level * 100)} % bootstrap interval of the ratio ${round(q.lo)}–${round(q.hi)}`;
}

/** A load the system sustains: p99 ≤ 100 ms, no stop lost, and the generator kept up (so the rate was real). */
function sustained(r: LoadResult, rate: number): boolean {
  return r.lost === 0 && r.stops > 0 && latencyFigures(r).p99 <= 100 && r.sent_per_s >= rate * 0.95;
}

export const scale: BenchSection = {
  name: 'scale',
  requires: ['mosquitto'],
  async run() {
    const rates = list(process.env.SCALE_RATES, [1000, 5000, 20_000, 50_000]);
    const seconds = Number(process.env.SCALE_SECONDS ?? 20);
    const rounds = Math.max(1, Number(process.env.SCALE_ROUNDS ?? 3));
    const ramp = list(process.env.SCALE_RAMP, [20_000, 35_000, 50_000, 65_000, 80_000, 95_000]);
    const idleSensors = Number(process.env.SCALE_IDLE_SENSORS ?? 2000);
    const baseline = process.env.SCALE_BASELINE_BIN ? resolve(process.env.SCALE_BASELINE_BIN) : undefined;
    // The baseline's NODE_OPTIONS: SCALE_BASELINE_NODE_OPTIONS if given ('' for none), else the unit's. With
    // SCALE_BASELINE_BIN=dist/bin/edge-agent.js, an A/B of the options alone.
    // (SCALE_BASELINE_UNIT_OPTIONS=off, as in earlier runs: none.)
    const baselineOptions =
      process.env.SCALE_BASELINE_NODE_OPTIONS ?? (process.env.SCALE_BASELINE_UNIT_OPTIONS === 'off' ? '' : defaultNodeOptions());
    const agents = [
      { bin: DEFAULT_BIN, options: defaultNodeOptions() },
      ...(baseline ? [{ bin: baseline, options: baselineOptions }] : []),
    ];
    const baselineName = baseline ? agentName(baseline, baselineOptions) : undefined;
    const S = 'scale';
    const rows: BenchRow[] = [];
    if (!process.env.SKIP_BUILD) build();
    const dir = tempDir('edge-agent-scale-');
    const broker = await startMosquitto({ persistence: false });
    try {
      // Idle footprint with the plant configured and nothing arriving yet (before the fail-safe's silence).
      for (const { bin, options } of agents) {
        const agent = await startAgent(dir.path, broker, idleSensors, bin, options);
        await new Promise((r) => setTimeout(r, 10_000));
        const rss = procStat(agent.proc.pid as number).rssMb;
        await agent.stop();
        const budget = 100 + (20 * idleSensors) / 1024;
        rows.push({
          section: S,
          name: `idle RSS, ${agent.name === SHIPPED_NAME ? 'compiled agent' : agent.name} with ${idleSensors} sensors (budget 100 MB + 20 KB/sensor = ${round(budget, 0)} MB)`,
          value: round(rss, 1),
          unit: 'MB',
          baseline: { name: 'budget', value: round(budget, 1), ratio: round(rss / budget) },
        });
        process.stderr.write(
          `  idle ${agent.name}, ${idleSensors} sensors: RSS ${rss.toFixed(1)} MB (budget ${budget.toFixed(0)} MB)\n`,
        );
      }

      for (const rate of rates) {
        const sensors = Math.max(1, Math.round(rate / HZ));
        type Run = Awaited<ReturnType<typeof drive>>;
        const runs: Record<string, Run[]> = {};
        const starts = [
          startRelay,
          ...(process.env.SCALE_AA ? [(b: Mosquitto) => startRelay(b, AA_NAME)] : []),
          ...agents.map(
            ({ bin, options }) =>
              (b: Mosquitto) =>
                startAgent(dir.path, b, sensors, bin, options),
          ),
        ];
        // Rounds alternate the order (relay first, then last, ...) so that the machine's drift over the
        // minutes of a step weighs on every system alike; each figure is the median over the rounds.
        for (let n = 0; n < rounds; n++) {
          for (const start of n % 2 === 0 ? starts : [...starts].reverse()) {
            const sys = await start(broker);
            let r: Run;
            try {
              r = await drive(broker, sys, rate, seconds, sensors);
            } finally {
              await sys.stop();
            }
            (runs[sys.name] ??= []).push(r);
            const l = latencyFigures(r);
            process.stderr.write(
              `  ${rate}/s ${sys.name}${rounds > 1 ? ` (round ${n + 1}/${rounds})` : ''}: p50 ${l.p50.toFixed(2)} p99 ${l.p99.toFixed(2)} p99.9 ${l.p999.toFixed(2)} ms, ${r.stops}/${r.trips} stops, lost ${r.lost}, sent ${r.sent_per_s}/s, ${r.cpuUsPerReading.toFixed(1)} µs CPU/reading (generator ${r.gen_cpu_us_per_reading.toFixed(1)}), RSS ${r.rssMb.toFixed(0)} MB${sideText(r.agentSide)}\n`,
            );
          }
        }
        const results = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, overRounds(v)]));
        const relay = results[RELAY_NAME] as RoundsResult;
        const agent = results[SHIPPED_NAME] as RoundsResult;
        const rl = relay.latency;
        const al = agent.latency;
        const perRound = (k: 'p50' | 'p99' | 'p999') =>
          rounds > 1
            ? `; per round, agent / relay: ${agent.rounds.map((a, i) => `${round(a[k])} / ${round(relay.rounds[i]?.[k] ?? Number.NaN)}`).join(', ')}`
            : '';
        const vs = (name: string, v: number, base: number) => ({
          baseline: { name, value: round(base), ratio: round(v / base) },
        });
        const label = `${rate.toLocaleString('en-US')} readings/s, ${sensors} sensors`;
        const settled =
          DRIVE_SETTLE_S > 0 ? `; measured after ${DRIVE_WARMUP_S} s of warm-up and ${DRIVE_SETTLE_S} s of settling` : '';
        for (const [p, a, b] of [
          ['p50', al.p50, rl.p50],
          ['p99', al.p99, rl.p99],
          ['p99.9', al.p999, rl.p999],
        ] as const)
          rows.push({
            section: S,
            name: `${label}: reading → stop ${p}, agent as shipped`,
            value: round(a),
            unit: 'ms',
            note: `${agent.stops}/${agent.trips} stops, lost ${agent.lost}${rounds > 1 ? `, median of ${rounds} rounds` : ''}${settled}${perRound(p === 'p99.9' ? 'p999' : p)}`,
            ...vs('bare relay', a, b),
          });
        // The p99 over every round's trips together, and how far the sampling of trips alone could move
        // the ratio (scripts/bench/ratio.ts); with SCALE_AA, a relay judged against the relay too.
        for (const [who, res] of [
          [SHIPPED_NAME, agent],
          [AA_NAME, results[AA_NAME]],
        ] as const) {
          if (!res) continue;
          const q = quantileRatio(res.latencies, relay.latencies, 99);
          const ci = `${intervalText(q)} (${q.resamples} resamples of the trips; not the drift between rounds)`;
          rows.push({
            section: S,
            name: `${label}: reading → stop p99 over all ${rounds} rounds' trips together, ${who}`,
            value: round(q.a),
            unit: 'ms',
            note: `${q.na} trips against the relay's ${q.nb}; ${ci}${who === AA_NAME ? `; median of rounds ${round(res.latency.p99)} ms, ratio ${round(res.latency.p99 / rl.p99)}` : ''}`,
            baseline: { name: 'bare relay', value: round(q.b), ratio: round(q.ratio) },
          });
          process.stderr.write(
            `  ${rate}/s pooled p99, ${who} / relay: ${q.a.toFixed(2)} / ${q.b.toFixed(2)} ms = ${q.ratio.toFixed(2)}, ${ci}\n`,
          );
        }
        rows.push({
          section: S,
          name: `${label}: reading → stop p99 of the first trips after start (the warm-up's, not counted above), agent as shipped`,
          value: round(agent.first.p99),
          unit: 'ms',
          note: `${agent.first.n} trips sent in the ${DRIVE_WARMUP_S} s warm-ups, relay ${relay.first.n}${rounds > 1 ? `; median of ${rounds} rounds` : ''}`,
          ...vs('bare relay', agent.first.p99, relay.first.p99),
        });
        const base = baselineName ? results[baselineName] : undefined;
        if (base) {
          const bl = base.latency;
          // An A/B of two builds: the pooled p99's ratio with its interval, and the CPU round by round.
          const q = quantileRatio(agent.latencies, base.latencies, 99);
          const pooled = `pooled p99 ${round(q.a)} / ${round(q.b)} ms = ${round(q.ratio)}, ${intervalText(q)}`;
          rows.push({
            section: S,
            name: `${label}: reading → stop p99, agent as shipped vs the baseline build`,
            value: round(al.p99),
            unit: 'ms',
            note: `median of rounds; ${pooled}; baseline ${base.stops}/${base.trips} stops, lost ${base.lost}, RSS ${round(base.rssMb, 0)} MB`,
            ...vs('baseline build', al.p99, bl.p99),
          });
          const cpuPerRound = agent.cpuRounds.map((c, i) => `${round(c, 1)} / ${round(base.cpuRounds[i] ?? Number.NaN, 1)}`);
          rows.push({
            section: S,
            name: `${label}: CPU per reading, agent as shipped vs the baseline build`,
            value: round(agent.cpuUsPerReading, 1),
            unit: 'µs',
            note: `median of rounds; per round, agent / baseline: ${cpuPerRound.join(', ')}`,
            ...vs('baseline build', agent.cpuUsPerReading, base.cpuUsPerReading),
          });
          process.stderr.write(
            `  ${rate}/s agent / baseline build: ${pooled}; CPU per reading per round ${cpuPerRound.join(', ')} µs\n`,
          );
        }
        rows.push({
          section: S,
          name: `${label}: CPU per reading, agent as shipped`,
          value: round(agent.cpuUsPerReading, 1),
          unit: 'µs',
          ...vs('bare relay', agent.cpuUsPerReading, relay.cpuUsPerReading),
        });
        rows.push({
          section: S,
          name: `${label}: RSS at the end, agent as shipped`,
          value: round(agent.rssMb, 0),
          unit: 'MB',
          ...vs('bare relay', agent.rssMb, relay.rssMb),
        });
      }

      if (ramp.length > 0) {
        const best: Record<string, number> = {};
        for (const start of [startRelay, (b: Mosquitto) => startAgent(dir.path, b, Math.round((ramp.at(-1) as number) / HZ))]) {
          let sysName = '';
          let top = 0;
          for (const rate of ramp) {
            // One process per step, sized for the step, so that a failed step cannot poison the next.
            const sys =
              start === startRelay ? await startRelay(broker) : await startAgent(dir.path, broker, Math.round(rate / HZ));
            sysName = sys.name;
            try {
              const r = await drive(broker, sys, rate, Math.min(seconds, 15));
              const l = latencyFigures(r);
              const ok = sustained(r, rate);
              process.stderr.write(
                `  ramp ${rate}/s ${sys.name}: p99 ${l.p99.toFixed(1)} ms, lost ${r.lost}, sent ${r.sent_per_s}/s (generator ${r.gen_cpu_us_per_reading.toFixed(1)} µs CPU/reading) → ${ok ? 'sustained' : 'not sustained'}${sideText(r.agentSide)}\n`,
              );
              if (!ok) break;
              top = rate;
            } finally {
              await sys.stop();
            }
          }
          best[sysName] = top;
        }
        const relayTop = best[RELAY_NAME] ?? 0;
        const agentTop = best[SHIPPED_NAME] ?? 0;
        rows.push({
          section: S,
          name: `max sustained rate (p99 ≤ 100 ms, no loss; ramp ${ramp.join('/')}), agent as shipped`,
          value: agentTop,
          unit: 'readings/s',
          baseline: { name: 'bare relay', value: relayTop, ratio: relayTop > 0 ? round(agentTop / relayTop) : 0 },
        });
      }
      return rows;
    } finally {
      await broker.stop();
      dir.remove();
    }
  },
};
