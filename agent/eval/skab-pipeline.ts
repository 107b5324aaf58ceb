/**
 * SKAB through the real pipeline: a SKAB-shaped agent config (one asset, eight sensors, the
 * detectors under evaluation) is built in memory and validated by the real schema; each file gets
 * a fresh `Pipeline` (commissioning: the learning phase covers rows 0–399, as the leaderboard's
 * fit split), and its rows are fed as readings in timestamp order, with the gateway clock at the
 * row's time. After each row the alarm state of every detector is the prediction for that row,
 * so the result is causal by construction.
 */
import { pino } from 'pino';
import { type AgentConfig, configSchema } from '../config/schema.js';
import { type BoundSensor, bindSensor } from '../driver.js';
import { Interlocks } from '../interlock.js';
import { Pipeline } from '../pipeline.js';
import { makeReading } from '../reading.js';
import type { Metric, Reading } from '../types.js';
import { SKAB_CHANNELS, SKAB_FIT_ROWS, type SkabRun } from './skab-data.js';

/** Sensor ids for SKAB_CHANNELS, in order. */
export const SKAB_SENSORS = ['accel1', 'accel2', 'current', 'pressure', 'motor_temp', 'fluid_temp', 'voltage', 'flow'] as const;
const METRIC: readonly Metric[] = [
  'vibration',
  'vibration',
  'current',
  'pressure',
  'temperature',
  'temperature',
  'voltage',
  'flow',
];
/** The six channels the multivariate detector watches (not the two slow temperatures; see RESULTS.md). */
export const SKAB_MONITORED = ['accel1', 'accel2', 'current', 'pressure', 'voltage', 'flow'] as const;

/** The detectors evaluated on SKAB (raw config entries, validated by the real schema). */
export function skabDetectors(): Record<string, unknown>[] {
  const learn = { readings: SKAB_FIT_ROWS };
  return [
    {
      id: 'mv-maxz',
      type: 'multivariate',
      asset: 'pump',
      sensors: [...SKAB_MONITORED],
      statistic: 'max_abs_z',
      smoothing: '8s',
      limit_factor: 1.4,
      on_count: 5,
      off_count: 5,
      learn,
    },
    {
      id: 'mv-t2q',
      type: 'multivariate',
      asset: 'pump',
      sensors: [...SKAB_MONITORED],
      statistic: 't2q',
      smoothing: '8s',
      limit_factor: 1.4,
      on_count: 5,
      off_count: 5,
      learn,
    },
    {
      id: 'mv-t2',
      type: 'multivariate',
      asset: 'pump',
      sensors: [...SKAB_MONITORED],
      statistic: 't2',
      smoothing: '8s',
      limit_factor: 1.4,
      on_count: 5,
      off_count: 5,
      learn,
    },
    ...SKAB_MONITORED.map((s) => ({
      id: `z-${s}`,
      type: 'zscore',
      asset: 'pump',
      sensor: s,
      smoothing: '8s',
      limit_factor: 1.4,
      persistence: 5,
      learn,
    })),
  ];
}

export function skabConfig(detectors = skabDetectors()): AgentConfig {
  return configSchema.parse({
    store: { path: ':memory:' },
    aggregation: { window: '10s' },
    time: { allowed_lateness: '2s', late_policy: 'drop', max_clock_skew: '10s', trusted_after: '2000-01-01T00:00:00Z' },
    capture: { before: '10s', after: '5s', max_readings: 2000 },
    sources: [{ id: 'skab', type: 'simulator' }],
    assets: [
      {
        id: 'pump',
        sensors: SKAB_SENSORS.map((id, i) => ({ id, metric: METRIC[i], source: 'skab' })),
      },
    ],
    detectors,
  });
}

export interface SkabReplay {
  /** Per detector id: 0/1 prediction for each scored row (rows SKAB_FIT_ROWS..). */
  predictions: Map<string, Uint8Array>;
  anomalies: number;
  late: number;
}

const silent = pino({ level: 'silent' });

/** Replays one SKAB file through a fresh pipeline. */
export function replaySkabFile(run: SkabRun, config: AgentConfig): SkabReplay {
  let clock = 0;
  const events = { anomalies: 0 };
  const interlocks = new Interlocks(
    [],
    new Map(),
    () => {},
    silent,
    () => clock,
  );
  const pipeline = new Pipeline(
    config,
    interlocks,
    (ev) => {
      if (ev.kind === 'anomaly') events.anomalies++;
    },
    () => clock,
  );
  const ids = config.detectors.map((d) => d.id);
  const handles = ids.map((id) => {
    if (!pipeline.detector(id)) throw new Error(`detector ${id} not built`);
    return id;
  });
  const predictions = new Map(ids.map((id) => [id, new Uint8Array(Math.max(0, run.length - SKAB_FIT_ROWS))]));
  const sensors: BoundSensor[] = config.assets[0]?.sensors.map((s) => bindSensor(s, 'pump')) ?? [];
  const batch: Reading[] = new Array(SKAB_CHANNELS.length);
  for (let r = 0; r < run.length; r++) {
    const t = run.times[r] as number;
    clock = t;
    for (let c = 0; c < SKAB_CHANNELS.length; c++) {
      batch[c] = makeReading(sensors[c] as BoundSensor, (run.channels[c] as Float64Array)[r] as number, t, t);
    }
    pipeline.ingest(batch);
    if (r >= SKAB_FIT_ROWS) {
      for (const id of handles) {
        if (pipeline.detector(id)?.active) (predictions.get(id) as Uint8Array)[r - SKAB_FIT_ROWS] = 1;
      }
    }
  }
  pipeline.flush();
  return { predictions, anomalies: events.anomalies, late: pipeline.counters.late };
}
