/**
 * The adaptive detector (the default a sensor named alone gets) on the hot path:
 *  - readings/s on one core through the pipeline (aggregation windows) with an adaptive detector on
 *    every sensor (50 assets × 5 sensors);
 *  - judge() calls/s of the detector alone;
 *  - reading → trip decision latency when an adaptive detector trips (actuator called), with every
 *    other sensor's adaptive detector running.
 */
import { pino } from 'pino';
import { parseConfig } from '../../agent/config/load.js';
import { AdaptiveDetector } from '../../agent/detectors/adaptive/detector.js';
import type { AdaptiveConfig } from '../../agent/detectors/adaptive/types.js';
import type { ScalarDetector } from '../../agent/detectors/common.js';
import { createDetector, type ScalarConfig } from '../../agent/detectors/registry.js';
import { type ActuatorDriver, type BoundSensor, bindSensor } from '../../agent/driver.js';
import { Interlocks } from '../../agent/interlock.js';
import { type SensorWindows, WindowEngine } from '../../agent/judge/engine.js';
import { Pipeline } from '../../agent/pipeline.js';
import { makeReading } from '../../agent/reading.js';
import type { Reading } from '../../agent/types.js';
import { timingActuator } from './trip.js';
import { type BenchRow, type BenchSection, latencyRows, round } from './types.js';

const silent = pino({ level: 'silent' });
const ASSETS = 50;
const SENSORS = ['temperature', 'pressure', 'vibration', 'current', 'flow'] as const;

function yaml(): string {
  const l = [
    'store: { path: ":memory:" }',
    'aggregation: { window: 10s }',
    'time: { allowed_lateness: 2s, trusted_after: "2020-01-01T00:00:00Z" }',
    'capture: { max_readings: 0 }',
    'sources: [{ id: plc, type: simulator }]',
    'assets:',
  ];
  for (let a = 0; a < ASSETS; a++) {
    l.push(`  - id: p${a}`, '    sensors:');
    for (const s of SENSORS) l.push(`      - { id: ${s}, metric: ${s}, source: plc }`);
  }
  l.push('detectors:');
  for (let a = 0; a < ASSETS; a++)
    for (const s of SENSORS)
      l.push(`  - { id: p${a}-${s}, asset: p${a}, sensor: ${s}${s === 'temperature' ? ', trip: true' : ''} }`);
  l.push('actuators: [{ id: stop, type: log }]', 'interlocks:');
  for (let a = 0; a < ASSETS; a++) l.push(`  - { asset: p${a}, actions: [{ actuator: stop }] }`);
  return l.join('\n');
}

async function build(actuator: ActuatorDriver) {
  const res = await parseConfig(yaml(), 'bench-adaptive.yaml');
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  const cfg = res.config;
  const interlocks = new Interlocks(cfg.interlocks, new Map([['stop', actuator]]), () => {}, silent, Date.now, cfg.detectors);
  const pipeline = new Pipeline(cfg, interlocks, () => {});
  const sensors: BoundSensor[] = cfg.assets.flatMap((a) => a.sensors.map((s) => bindSensor(s, a.id)));
  return { pipeline, interlocks, sensors, config: cfg };
}

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff;
  };
}

/** Steps × sensors readings at 100 Hz per sensor. */
function readings(sensors: BoundSensor[], steps: number, t0: number): Reading[] {
  const rand = rng(7);
  const out: Reading[] = [];
  for (let k = 0; k < steps; k++) {
    const t = t0 + k * 10;
    for (const s of sensors) out.push(makeReading(s, 20 + 5 * rand(), t, t));
  }
  return out;
}

/**
 * The hot path's detection part alone, one thread: each reading goes through its sensor's window
 * engine entry (a 10 s tumbling aggregation window, as the pipeline registers for every sensor) and
 * its point detector, exactly as `Pipeline.ingest` does after the gate. 250 sensors of one source,
 * 100 Hz each; the same readings for both detector types, each run ROUNDS times alternately (median).
 */
async function windowsAndDetectors(type: 'adaptive' | 'zscore', xs: Float64Array, n: number, t0: number): Promise<number> {
  const res = await parseConfig(
    [
      'sources: [{ id: plc, type: simulator }]',
      `assets: [{ id: a, sensors: [${Array.from({ length: n }, (_, i) => `{ id: s${i}, metric: other, source: plc }`).join(', ')}] }]`,
      `detectors: [${Array.from({ length: n }, (_, i) => `{ id: d${i}, asset: a, sensor: s${i}${type === 'zscore' ? ', type: zscore, limit: 6, learn: { readings: 500 }' : ''} }`).join(', ')}]`,
    ].join('\n'),
    'bench-windows.yaml',
  );
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  const engine = new WindowEngine(2000);
  const dets: ScalarDetector[] = [];
  const wins: SensorWindows[] = [];
  let closed = 0;
  for (let i = 0; i < n; i++) {
    const sw = engine.sensor('plc');
    engine.window(sw, { type: 'tumbling', size: 10_000 }, () => {
      closed++;
    });
    wins.push(sw);
    dets.push(createDetector(res.config.detectors[i] as ScalarConfig));
  }
  let raised = 0;
  const feed = (from: number, to: number) => {
    for (let k = from; k < to; k++) {
      const t = t0 + Math.floor(k / n) * 10;
      const j = k % n;
      const x = xs[k] as number;
      if ((dets[j] as ScalarDetector).judge(t, x, 'good') === 1) raised++;
      (engine as WindowEngine).add(wins[j] as SensorWindows, t, x, true);
    }
  };
  const warm = n * 1000;
  feed(0, warm);
  const start = performance.now();
  feed(warm, xs.length);
  const secs = (performance.now() - start) / 1000;
  if (closed === 0 || raised < 0) throw new Error('no window closed');
  return (xs.length - warm) / secs;
}

export const adaptive: BenchSection = {
  name: 'adaptive',
  async run(): Promise<BenchRow[]> {
    const t0 = Date.UTC(2026, 0, 1);
    const { pipeline, sensors, config } = await build(timingActuator().actuator);
    const per = sensors.length;
    const warm = readings(sensors, 1000, t0);
    for (let i = 0; i < warm.length; i += per) pipeline.ingest(warm.slice(i, i + per));
    const timed = readings(sensors, 4000, t0 + 10_000);
    const batches: Reading[][] = [];
    for (let i = 0; i < timed.length; i += per) batches.push(timed.slice(i, i + per));
    const start = performance.now();
    for (const b of batches) pipeline.ingest(b);
    const secs = (performance.now() - start) / 1000;

    // The detector alone.
    const det = new AdaptiveDetector(config.detectors[1] as AdaptiveConfig);
    const rand = rng(11);
    const xs = Float64Array.from({ length: 2_000_000 }, () => 20 + 5 * rand());
    for (let i = 0; i < 200_000; i++) det.judge(i, xs[i] as number, 'good');
    const d0 = performance.now();
    for (let i = 0; i < xs.length; i++) det.judge(200_000 + i, xs[i] as number, 'good');
    const dsecs = (performance.now() - d0) / 1000;

    // Windows + detectors, adaptive against zscore on identical readings, alternately.
    const N = 250;
    const rw = rng(13);
    const wx = Float64Array.from({ length: N * 9000 }, () => 20 + 5 * rw());
    const rates: Record<'adaptive' | 'zscore', number[]> = { adaptive: [], zscore: [] };
    for (let r = 0; r < 5; r++)
      for (const type of ['adaptive', 'zscore'] as const) rates[type].push(await windowsAndDetectors(type, wx, N, t0));
    const med = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] as number;
    const wa = med(rates.adaptive);
    const wz = med(rates.zscore);

    // Trip latency: one asset's temperature spikes every third step, in rotation over the assets, so
    // each adaptive detector is past its re-arm hold-off (100 readings) when its turn comes.
    const { actuator, calledAt } = timingActuator();
    const lat = await build(actuator);
    const bg = readings(lat.sensors, 4000, t0);
    const temps = lat.sensors.filter((s) => s.id === 'temperature');
    const samples: number[] = [];
    let turn = 0;
    for (let k = 0; k < 4000; k++) {
      lat.pipeline.ingest(bg.slice(k * per, (k + 1) * per));
      if (k < 600 || k % 3 !== 0) continue;
      const s = temps[turn++ % temps.length] as BoundSensor;
      lat.interlocks.ack(s.asset, 'bench'); // its last trip's alarm has cleared by now
      const t = t0 + k * 10 + 5;
      const spike = [makeReading(s, 500, t, t)];
      const s0 = process.hrtime.bigint();
      lat.pipeline.ingest(spike);
      const at = calledAt();
      if (at > s0) samples.push(Number(at - s0) / 1000);
    }
    return [
      {
        section: 'adaptive',
        name: `readings through aggregation windows + an adaptive detector on every sensor, one core (${ASSETS} assets × ${SENSORS.length} sensors)`,
        value: round(timed.length / secs, 0),
        unit: 'readings/s',
        note: `${timed.length} readings`,
      },
      {
        section: 'adaptive',
        name: 'adaptive detector judge() alone, one core',
        value: round(xs.length / dsecs, 0),
        unit: 'readings/s',
        note: `${xs.length} readings`,
      },
      {
        section: 'adaptive',
        name: `readings through windows + an adaptive detector per sensor (window engine and judge(), no gate/capture/twin), one thread, ${N} sensors`,
        value: round(wa, 0),
        unit: 'readings/s',
        note: `${round(1e9 / wa, 0)} ns/reading; median of 5 runs of ${N * 8000} readings`,
        baseline: { name: 'zscore on identical readings, same run', value: round(wz, 0), ratio: round(wa / wz, 3) },
      },
      {
        section: 'adaptive',
        name: `readings through windows + a zscore detector per sensor (the same workload), one thread, ${N} sensors`,
        value: round(wz, 0),
        unit: 'readings/s',
        note: `${round(1e9 / wz, 0)} ns/reading; median of 5 runs of ${N * 8000} readings`,
      },
      ...latencyRows('adaptive', 'reading → trip decision by an adaptive detector (actuator called)', samples, [50, 99, 99.9]),
    ];
  },
};
