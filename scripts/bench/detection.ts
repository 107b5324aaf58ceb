/**
 * Detection figures: readings/s through the event-time windows and every detector type on one
 * core (no store: events go to a counter), and the reading → trip decision latency with all of
 * that running. Readings are prebuilt so the figure is the pipeline's, not the generator's.
 */
import { pino } from 'pino';
import { parseConfig } from '../../agent/config/load.js';
import { type ActuatorDriver, type BoundSensor, bindSensor } from '../../agent/driver.js';
import { Interlocks } from '../../agent/interlock.js';
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
    'capture: { before: 2s, after: 1s, max_readings: 4000 }',
    'sources: [{ id: plc, type: simulator }]',
    'assets:',
  ];
  for (let a = 0; a < ASSETS; a++) {
    l.push(`  - id: p${a}`, '    sensors:');
    for (const s of SENSORS) l.push(`      - { id: ${s}, metric: ${s}, source: plc, min: -1000, max: 1000 }`);
  }
  l.push('detectors:');
  for (let a = 0; a < ASSETS; a++) {
    const p = `p${a}`;
    l.push(
      `  - { id: ${p}-hot, type: threshold, asset: ${p}, sensor: temperature, setpoint: 150, delta_down: 5, trip: true }`,
      `  - { id: ${p}-cnt, type: count_over, asset: ${p}, sensor: temperature, limit: 140, count: 5, window: 1m }`,
      `  - { id: ${p}-z, type: zscore, asset: ${p}, sensor: pressure, smoothing: 2s, limit: 6, persistence: 3, learn: { readings: 500 } }`,
      `  - { id: ${p}-roc, type: rate_of_change, asset: ${p}, sensor: temperature, limit: 500 }`,
      `  - { id: ${p}-flat, type: flatline, asset: ${p}, sensor: current, duration: 30s, tolerance: 0.0001 }`,
      `  - { id: ${p}-range, type: out_of_range, asset: ${p}, sensor: flow, min: -100, max: 100 }`,
      `  - { id: ${p}-vib-rms, type: threshold, asset: ${p}, sensor: vibration, window: { type: sliding, size: 1s, hop: 500ms }, feature: rms, setpoint: 50 }`,
      `  - { id: ${p}-vib-p95, type: threshold, asset: ${p}, sensor: vibration, window: { type: count, count: 64 }, feature: p95, setpoint: 50 }`,
      `  - { id: ${p}-mv, type: multivariate, asset: ${p}, sensors: [temperature, pressure, current, flow], smoothing: 2s, learn: { readings: 300 } }`,
    );
  }
  l.push('actuators: [{ id: stop, type: log }]', 'interlocks:');
  for (let a = 0; a < ASSETS; a++) l.push(`  - { asset: p${a}, actions: [{ actuator: stop }] }`);
  return l.join('\n');
}

async function build(actuator: ActuatorDriver) {
  const res = await parseConfig(yaml(), 'bench.yaml');
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  const cfg = res.config;
  let events = 0;
  const emit = () => {
    events++;
  };
  const interlocks = new Interlocks(cfg.interlocks, new Map([['stop', actuator]]), emit, silent);
  const pipeline = new Pipeline(cfg, interlocks, emit);
  const sensors: BoundSensor[] = cfg.assets.flatMap((a) => a.sensors.map((s) => bindSensor(s, a.id)));
  return { pipeline, interlocks, sensors, events: () => events };
}

/** Steps × sensors readings at 100 Hz per sensor, all sensors of a step stamped alike. */
function readings(sensors: BoundSensor[], steps: number, t0: number): Reading[] {
  const out: Reading[] = [];
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  for (let k = 0; k < steps; k++) {
    const t = t0 + k * 10;
    for (const s of sensors) out.push(makeReading(s, 20 + 5 * rand(), t, t));
  }
  return out;
}

export const detection: BenchSection = {
  name: 'detection',
  async run(): Promise<BenchRow[]> {
    const t0 = Date.UTC(2026, 0, 1);
    const { pipeline, sensors, events } = await build(timingActuator().actuator);
    const steps = 4000;
    const all = readings(sensors, steps, t0);
    const batchSize = sensors.length;
    // Warm-up pass (learning phases complete, JIT), then timed passes over fresh event times.
    const feed = (rs: Reading[]) => {
      for (let i = 0; i < rs.length; i += batchSize) pipeline.ingest(rs.slice(i, i + batchSize));
    };
    feed(all.slice(0, batchSize * 1000));
    const timed = readings(sensors, steps, t0 + 1000 * 10);
    const batches: Reading[][] = [];
    for (let i = 0; i < timed.length; i += batchSize) batches.push(timed.slice(i, i + batchSize));
    const start = performance.now();
    for (const b of batches) pipeline.ingest(b);
    const secs = (performance.now() - start) / 1000;
    const n = timed.length;

    const { actuator, calledAt } = timingActuator();
    const lat = await build(actuator);
    const hot = lat.sensors.find((s) => s.asset === 'p0' && s.id === 'temperature') as BoundSensor;
    const bg = readings(lat.sensors, 3000, t0);
    const samples: number[] = [];
    let t = t0;
    for (let k = 0; k < 3000; k++) {
      lat.pipeline.ingest(bg.slice(k * batchSize, (k + 1) * batchSize));
      t = t0 + k * 10;
      if (k < 600 || k % 2 === 1) continue;
      const trip = [makeReading(hot, 200, t + 5, t + 5)];
      const s0 = process.hrtime.bigint();
      lat.pipeline.ingest(trip);
      samples.push(Number(calledAt() - s0) / 1000);
      lat.pipeline.ingest([makeReading(hot, 20, t + 6, t + 6)]);
      lat.interlocks.ack('p0', 'bench');
    }
    return [
      {
        section: 'detection',
        name: `readings through windows + all detector types, one core (${ASSETS} assets × ${SENSORS.length} sensors, 9 detectors/asset)`,
        value: round(n / secs, 0),
        unit: 'readings/s',
        note: `${n} readings, ${events()} events emitted`,
      },
      ...latencyRows('detection', 'reading → trip decision (actuator called), all detectors running', samples, [50, 99, 99.9]),
    ];
  },
};
