/**
 * Training data for the shipped default model: normal-operation windows from the simulator's
 * SignalGenerator, through the agent's own window feature extractor, written as CSV.
 *
 *   npx tsx scripts/gen-sim-windows.ts [--hours 6] [--assets 6] [--out data/sim-normal-windows.csv]
 *                                      [--faults data/sim-fault-windows.csv]
 *
 * `--faults` also writes windows taken during injected faults (overheat, pressure drop, bearing
 * wear, stuck sensor), used only to report a detection rate in the model card.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import type { BoundSensor } from '../agent/driver.js';
import { WindowEngine } from '../agent/judge/engine.js';
import { DEFAULT_FEATURE_NAMES, DEFAULT_WINDOW_MS } from '../agent/model/defaults.js';
import { FeatureAssembler } from '../agent/model/features.js';
import type { Metric, Reading } from '../agent/types.js';
import type { FaultConfig } from '../drivers/simulator/schema.js';
import { SignalGenerator } from '../drivers/simulator/simulator.js';

const { values } = parseArgs({
  options: {
    hours: { type: 'string', default: '6' },
    assets: { type: 'string', default: '6' },
    seed: { type: 'string', default: '1000' },
    out: { type: 'string', default: 'data/sim-normal-windows.csv' },
    faults: { type: 'string' },
  },
});

const names = DEFAULT_FEATURE_NAMES;
const T0 = Date.UTC(2026, 0, 1);

function sensorsFor(asset: string): BoundSensor[] {
  return (['temperature', 'pressure', 'vibration'] as Metric[]).map((m) => ({
    id: m,
    asset,
    metric: m,
    unit: '',
    source: 'sim',
  }));
}

/** The feature windows of one simulated asset, through the agent's window engine (as the judge feeds the model). */
function windows(asset: string, seed: number, durationMs: number, faults: FaultConfig[], keep: (start: number) => boolean) {
  const rows: string[] = [];
  const sensors = ['temperature', 'pressure', 'vibration'];
  const asm = new FeatureAssembler(
    asset,
    sensors,
    names,
    DEFAULT_WINDOW_MS,
    (a, start, f) => {
      if (keep(start)) rows.push(`${a},${start},${Array.from(f, (v) => Number(v.toPrecision(7))).join(',')}`);
    },
    { incomplete: 0, partial: 0 },
  );
  const engine = new WindowEngine(0);
  const bySensor = new Map(
    sensors.map((s, k) => {
      const sw = engine.sensor('sim');
      engine.window(sw, { type: 'tumbling', size: DEFAULT_WINDOW_MS }, (w) => asm.add(k, w));
      return [s, sw] as const;
    }),
  );
  const gen = new SignalGenerator(sensorsFor(asset), { seed, rate: 10, faults }, T0);
  const batch: Reading[] = [];
  while (gen.nextTime < T0 + durationMs) {
    batch.length = 0;
    gen.generateSteps(100, 0, batch);
    for (const r of batch) {
      const sw = bySensor.get(r.sensor);
      if (sw) engine.add(sw, r.eventTime, r.value, r.quality === 'good');
    }
  }
  engine.flush();
  return rows;
}

function write(path: string, rows: string[]): void {
  mkdirSync(dirname(path), { recursive: true });
  const header = [`# window_ms=${DEFAULT_WINDOW_MS}`, `asset,window_start,${names.join(',')}`];
  writeFileSync(path, `${[...header, ...rows].join('\n')}\n`);
  process.stdout.write(`wrote ${rows.length} windows to ${path}\n`);
}

const hours = Number(values.hours);
const nAssets = Number(values.assets);
const seed0 = Number(values.seed);
const normal: string[] = [];
for (let a = 0; a < nAssets; a++) normal.push(...windows(`sim-${a}`, seed0 + a, hours * 3_600_000, [], () => true));
write(values.out, normal);

if (values.faults) {
  const kinds: Array<Pick<FaultConfig, 'sensor' | 'kind' | 'magnitude'>> = [
    { sensor: 'temperature', kind: 'overheat_ramp', magnitude: 20 },
    { sensor: 'pressure', kind: 'pressure_drop', magnitude: 2 },
    { sensor: 'vibration', kind: 'bearing_wear', magnitude: 2 },
    { sensor: 'temperature', kind: 'stuck', magnitude: 1 },
  ];
  const faulty: string[] = [];
  kinds.forEach((k, i) => {
    const asset = `fault-${k.kind}`;
    const start = 600_000;
    const duration = 600_000;
    const f: FaultConfig = { asset, ...k, start, duration };
    faulty.push(...windows(asset, seed0 + 100 + i, start + duration, [f], (s) => s >= T0 + start + duration / 2));
  });
  write(values.faults, faulty);
}
