/**
 * Foundation figures: simulator → pipeline → store throughput, and the in-process reading → trip
 * decision latency while the store is writing.
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../agent/config/load.js';
import type { AgentConfig } from '../../agent/config/schema.js';
import { type ActuatorDriver, type BoundSensor, bindSensor } from '../../agent/driver.js';
import { Interlocks } from '../../agent/interlock.js';
import { Pipeline } from '../../agent/pipeline.js';
import { EventStore } from '../../agent/store/store.js';
import type { Reading } from '../../agent/types.js';
import { SignalGenerator } from '../../drivers/simulator/simulator.js';
import { tempDir } from '../../test/helpers/tmp.js';
import { measureTrips, timingActuator } from './trip.js';
import { type BenchRow, type BenchSection, latencyRows, round } from './types.js';

const silent = pino({ level: 'silent' });

function plantYaml(assets: number, dbPath: string): string {
  const lines = [
    `store: { path: ${dbPath}, synchronous: FULL }`,
    'aggregation: { window: 1s }',
    'sources: [{ id: sim, type: simulator }]',
    'assets:',
  ];
  for (let a = 0; a < assets; a++) {
    lines.push(`  - id: pump-${a}`, '    sensors:');
    for (const m of ['temperature', 'pressure', 'vibration']) lines.push(`      - { id: ${m}, metric: ${m}, source: sim }`);
  }
  lines.push('detectors:');
  for (let a = 0; a < assets; a++) {
    lines.push(
      `  - { id: hot-${a}, type: threshold, asset: pump-${a}, sensor: temperature, setpoint: 150, delta_down: 10, trip: true }`,
    );
    lines.push(`  - { id: cnt-${a}, type: count_over, asset: pump-${a}, sensor: temperature, limit: 140, count: 5, window: 1m }`);
  }
  lines.push('actuators: [{ id: stop, type: log }]', 'interlocks:');
  for (let a = 0; a < assets; a++) lines.push(`  - { asset: pump-${a}, actions: [{ actuator: stop }] }`);
  return lines.join('\n');
}

async function build(assets: number, dbPath: string, actuator: ActuatorDriver) {
  const res = await parseConfig(plantYaml(assets, dbPath), 'bench.yaml');
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  const config: AgentConfig = res.config;
  const store = new EventStore({ path: dbPath, synchronous: 'FULL', flushInterval: 100, batchSize: 5000, logger: silent });
  await store.open();
  const interlocks = new Interlocks(config.interlocks, new Map([['stop', actuator]]), (e) => store.append(e), silent);
  const pipeline = new Pipeline(config, interlocks, (e) => store.append(e));
  const sensors: BoundSensor[] = config.assets.flatMap((a) => a.sensors.map((s) => bindSensor(s, a.id)));
  return { config, store, interlocks, pipeline, sensors };
}

async function throughput(): Promise<BenchRow[]> {
  const dir = tempDir();
  try {
    const { store, pipeline, sensors } = await build(100, join(dir.path, 'bench.db'), timingActuator().actuator);
    const gen = new SignalGenerator(sensors, { seed: 1, rate: 1000, faults: [] }, Date.UTC(2026, 0, 1));
    const batch: Reading[] = [];
    const total = 3_000_000;
    let done = 0;
    const t0 = performance.now();
    while (done < total) {
      batch.length = 0;
      gen.generateSteps(10, 0, batch);
      pipeline.ingest(batch);
      done += batch.length;
      if (done % 300_000 < batch.length) await new Promise((r) => setImmediate(r));
    }
    pipeline.flush();
    const tIngest = performance.now();
    await store.flush();
    const tEnd = performance.now();
    await store.close();
    const s = 'foundation';
    return [
      {
        section: s,
        name: 'simulator → pipeline throughput (300 sensors, 2 detectors each on temperature)',
        value: round(done / ((tIngest - t0) / 1000), 0),
        unit: 'readings/s',
        note: `${done} readings`,
      },
      {
        section: s,
        name: 'simulator → pipeline → store, until committed (synchronous=FULL)',
        value: round(done / ((tEnd - t0) / 1000), 0),
        unit: 'readings/s',
        note: `${store.stats.persisted} aggregate events committed`,
      },
    ];
  } finally {
    dir.remove();
  }
}

async function tripLatency(): Promise<BenchRow[]> {
  const dir = tempDir();
  try {
    const { actuator, calledAt } = timingActuator();
    const { store, pipeline, interlocks, sensors } = await build(10, join(dir.path, 'bench.db'), actuator);
    const gen = new SignalGenerator(sensors, { seed: 2, rate: 1000, faults: [] }, Date.UTC(2026, 0, 1));
    const hot = sensors.find((s) => s.asset === 'pump-0' && s.id === 'temperature') as BoundSensor;
    const samples = await measureTrips({ pipeline, interlocks, gen, hot, calledAt }, 20_000, 1000);
    await store.close();
    return latencyRows(
      'foundation',
      'reading → trip decision (actuator called), in process, store writing',
      samples,
      [50, 99, 99.9],
    );
  } finally {
    dir.remove();
  }
}

export const foundation: BenchSection = {
  name: 'foundation',
  async run() {
    return [...(await throughput()), ...(await tripLatency())];
  },
};
