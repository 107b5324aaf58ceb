/**
 * Model figures: onnxruntime-node's own cost for the shipped model (direct session.run), the
 * agent's runners (inline and worker thread) at batch sizes 1/16/64, the service's windows/s under
 * a flood, and the threshold stop latency (reading → actuator call) with and without the model
 * flooded, from one run.
 */
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { parseConfig } from '../../agent/config/load.js';
import { type BoundSensor, bindSensor } from '../../agent/driver.js';
import { Interlocks } from '../../agent/interlock.js';
import { readCardFile } from '../../agent/model/card.js';
import { createRunner, type RunnerKind } from '../../agent/model/runner.js';
import { ModelService } from '../../agent/model/service.js';
import { Pipeline } from '../../agent/pipeline.js';
import { SignalGenerator } from '../../drivers/simulator/simulator.js';
import { measureTrips, timingActuator, tripPlantYaml } from './trip.js';
import { type BenchRow, type BenchSection, percentile, round } from './types.js';

const S = 'model';
const silent = pino({ level: 'silent' });
const CARD = new URL('../../models/default.card.json', import.meta.url).pathname;
const BATCHES = [1, 16, 64] as const;
const tick = () => new Promise((r) => setImmediate(r));

function stats(samplesUs: number[]) {
  const s = Float64Array.from(samplesUs).sort();
  return { p50: percentile(s, 50), p99: percentile(s, 99) };
}

function inputs(n: number, rows: number, mean: readonly number[]): Float32Array {
  const d = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) d[r * n + j] = (mean[j] as number) * (1 + ((r + j) % 5) / 100);
  return d;
}

async function direct(iters: number): Promise<{ rows: BenchRow[]; single: number }> {
  const f = readCardFile(CARD);
  const n = f.card.features.names.length;
  const session = await ort.InferenceSession.create(f.bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const rows: BenchRow[] = [];
  let single = 0;
  for (const b of BATCHES) {
    const data = inputs(n, b, f.card.normalization.mean);
    const feeds = { features: new ort.Tensor('float32', data, [b, n]) };
    for (let i = 0; i < 200; i++) await session.run(feeds);
    const samples: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) {
      const s = process.hrtime.bigint();
      await session.run(feeds);
      samples.push(Number(process.hrtime.bigint() - s) / 1000);
    }
    const secs = (performance.now() - t0) / 1000;
    const st = stats(samples);
    if (b === 1) single = st.p50;
    rows.push(
      {
        section: S,
        name: `onnxruntime-node session.run direct, batch ${b}: per call p50`,
        value: round(st.p50),
        unit: 'µs',
        note: `${iters} calls`,
      },
      { section: S, name: `onnxruntime-node session.run direct, batch ${b}: per call p99`, value: round(st.p99), unit: 'µs' },
      {
        section: S,
        name: `onnxruntime-node session.run direct, batch ${b}: windows/s`,
        value: round((iters * b) / secs, 0),
        unit: 'windows/s',
      },
    );
  }
  await session.release();
  return { rows, single };
}

async function runner(kind: RunnerKind, iters: number, single: number): Promise<BenchRow[]> {
  const f = readCardFile(CARD);
  const n = f.card.features.names.length;
  const r = createRunner(kind);
  await r.load(1, f);
  const rows: BenchRow[] = [];
  for (const b of BATCHES) {
    const template = inputs(n, b, f.card.normalization.mean);
    for (let i = 0; i < 200; i++) await r.run(1, template.slice(), b);
    const samples: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) {
      const data = template.slice();
      const s = process.hrtime.bigint();
      await r.run(1, data, b);
      samples.push(Number(process.hrtime.bigint() - s) / 1000 / b);
    }
    const secs = (performance.now() - t0) / 1000;
    const st = stats(samples);
    const base =
      b === 1
        ? { baseline: { name: 'direct session.run batch 1 p50', value: round(single), ratio: round(st.p50 / single) } }
        : {};
    rows.push(
      {
        section: S,
        name: `${kind} runner, batch ${b}: inference per window p50`,
        value: round(st.p50),
        unit: 'µs',
        ...base,
        note: `${iters} batches`,
      },
      { section: S, name: `${kind} runner, batch ${b}: inference per window p99`, value: round(st.p99), unit: 'µs' },
      { section: S, name: `${kind} runner, batch ${b}: windows/s`, value: round((iters * b) / secs, 0), unit: 'windows/s' },
    );
  }
  // How long the event loop stalls while one big batch runs (what a heavy model would do).
  const big = 100_000;
  const data = inputs(n, big, f.card.normalization.mean);
  let last = performance.now();
  let maxGap = 0;
  const iv = setInterval(() => {
    const t = performance.now();
    maxGap = Math.max(maxGap, t - last);
    last = t;
  }, 1);
  const t0 = performance.now();
  await r.run(1, data, big);
  const took = performance.now() - t0;
  await tick();
  clearInterval(iv);
  maxGap = Math.max(maxGap, performance.now() - last);
  rows.push({
    section: S,
    name: `${kind} runner: longest event-loop stall while scoring one batch of ${big} windows`,
    value: round(maxGap, 1),
    unit: 'ms',
    note: `batch took ${round(took, 1)} ms`,
  });
  await r.close();
  return rows;
}

/** Reading → actuator call latency of a threshold trip, quiet then with the model flooded. */
async function stopLatency(kind: RunnerKind): Promise<BenchRow[]> {
  const res = await parseConfig(
    tripPlantYaml([`model: { dir: ${CARD.replace(/\/[^/]+$/, '')}, watch: false, queue_size: 256, batch_size: 64 }`]),
    'bench.yaml',
  );
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  const config = res.config;
  const { actuator, calledAt } = timingActuator();
  const emit = () => {};
  const interlocks = new Interlocks(config.interlocks, new Map([['stop', actuator]]), emit, silent);
  const service = new ModelService({
    dir: config.model?.dir as string,
    card: 'default.card.json',
    runner: kind,
    queueSize: 256,
    batchSize: 64,
    watch: false,
    watchDebounceMs: 500,
    emit,
    logger: silent,
    gatewayId: 'bench',
  });
  const pipeline = new Pipeline(config, interlocks, emit, Date.now, { model: { service, logger: silent } });
  await service.start();
  const sensors: BoundSensor[] = config.assets.flatMap((a) => a.sensors.map((s) => bindSensor(s, a.id)));
  const gen = new SignalGenerator(sensors, { seed: 3, rate: 10, faults: [] }, Date.UTC(2026, 0, 1));
  const hot = sensors.find((s) => s.asset === 'pump-0' && s.id === 'temperature') as BoundSensor;
  const active = service.current as NonNullable<typeof service.current>;
  const flood = inputs(active.card.features.names.length, 1, active.card.normalization.mean);

  let flooding = false;
  let floodOffered = 0;
  const floodLoop = async () => {
    while (flooding) {
      for (let i = 0; i < 256; i++) service.offer(`flood-${i % 64}`, floodOffered++, flood, active.layout);
      await tick();
    }
  };

  const measure = (iters: number) => measureTrips({ pipeline, interlocks, gen, hot, calledAt }, iters, 20);

  await measure(2000);
  const quiet = stats(await measure(10_000));
  const scored0 = service.counters.scored;
  const co0 = service.counters.coalesced + service.counters.dropped;
  flooding = true;
  const floodDone = floodLoop();
  const t0 = performance.now();
  const flooded = stats(await measure(10_000));
  const secs = (performance.now() - t0) / 1000;
  flooding = false;
  await floodDone;
  const scored = service.counters.scored - scored0;
  const coalesced = service.counters.coalesced + service.counters.dropped - co0;
  await service.stop();
  const name = `threshold stop latency (reading → actuator call), ${kind} runner`;
  return [
    { section: S, name: `${name}, model idle: p50`, value: round(quiet.p50), unit: 'µs', note: '10000 trips' },
    { section: S, name: `${name}, model idle: p99`, value: round(quiet.p99), unit: 'µs' },
    {
      section: S,
      name: `${name}, model flooded: p50`,
      value: round(flooded.p50),
      unit: 'µs',
      baseline: { name: 'model idle p50', value: round(quiet.p50), ratio: round(flooded.p50 / quiet.p50) },
    },
    {
      section: S,
      name: `${name}, model flooded: p99`,
      value: round(flooded.p99),
      unit: 'µs',
      baseline: { name: 'model idle p99', value: round(quiet.p99), ratio: round(flooded.p99 / quiet.p99) },
    },
    {
      section: S,
      name: `${kind} runner under the flood: windows scored/s`,
      value: round(scored / secs, 0),
      unit: 'windows/s',
      note: `${scored} scored, ${coalesced} coalesced or dropped of ${floodOffered} offered`,
    },
  ];
}

export const model: BenchSection = {
  name: 'model',
  async run() {
    const iters = Number(process.env.BENCH_MODEL_ITERS ?? 3000);
    const d = await direct(iters);
    const rows = [...d.rows];
    for (const kind of ['inline', 'worker'] as const) rows.push(...(await runner(kind, iters, d.single)));
    for (const kind of ['inline', 'worker'] as const) rows.push(...(await stopLatency(kind)));
    return rows;
  },
};
