/**
 * Backtest: replays a historian export through the real `Pipeline` and `Interlocks` in event time and
 * file order, with a replay clock. What differs from live operation, and why:
 *  - the clock is the latest event time replayed so far (the batch's, before it is ingested), so no
 *    reading is rejected as ahead of the clock, and `time.trusted_after` is moved to 1970: history
 *    is not "untrusted clock";
 *  - every interlock runs as `dry_run` (decided, latched and audited, nothing sent) and its timers
 *    (re-assertion, fail-safe silence) are not started: they run on the wall clock;
 *  - captures are off (they are for the store; the detections file is the backtest's output).
 * Rows older than their source's watermark are handled as live (dropped or emitted per
 * `time.late_policy`) and counted. The pipeline is flushed at the end (open windows close).
 */
import { pino } from 'pino';
import type { AgentConfig, SensorConfig } from '../config/schema.js';
import type { ActuatorDriver, BoundSensor } from '../driver.js';
import { Interlocks } from '../interlock.js';
import { Pipeline, type PipelineCounters } from '../pipeline.js';
import { makeReading } from '../reading.js';
import type { AgentEvent, Reading } from '../types.js';
import type { Table } from './table.js';

/** A wide-table column replayed as the readings of one configured sensor. */
export interface ColumnMapping {
  column: string;
  asset: string;
  sensor: string;
}

export interface Detection {
  /** Index of the row (0-based, file order) whose ingestion produced the event. */
  row: number;
  detector: string;
  detector_type: string;
  asset: string;
  sensor: string;
  state: 'raised' | 'cleared';
  event_time: number;
  value: number;
  severity: string;
  trip: boolean;
  evidence: unknown;
}

export interface TimelineEntry {
  kind: 'alarm' | 'trip';
  detector: string;
  asset: string;
  sensor: string;
  start: number;
  /** Event time it cleared; null while still raised at the end of the replay. */
  end: number | null;
  start_row: number;
  end_row: number | null;
}

export interface BacktestResult {
  rows: number;
  counters: PipelineCounters;
  detections: Detection[];
  timeline: TimelineEntry[];
  /** Per row: 1 when a (selected) detector raised while it was ingested. */
  raisedRows: Uint8Array;
  /** Per row: 1 when a (selected) detector was raised after it was ingested. */
  activeRows: Uint8Array;
  times: Float64Array;
  elapsedMs: number;
}

export interface BacktestOptions {
  /** Wide tables: which columns are which sensors (default: columns named like a sensor of the only asset). */
  columns?: readonly ColumnMapping[];
  /** Count only these detector ids in raisedRows/activeRows (default: all). */
  detectors?: ReadonlySet<string>;
}

/** The config as backtest runs it (see the module comment). */
export function replayConfig(config: AgentConfig): AgentConfig {
  return {
    ...config,
    time: { ...config.time, trusted_after: '1970-01-01T00:00:00Z' },
    capture: { ...config.capture, max_readings: 0 },
    interlocks: config.interlocks.map((il) => ({ ...il, dry_run: true })),
  };
}

/** Default column mapping: every column named like a sensor of some asset (first asset wins). */
export function defaultColumns(config: AgentConfig, table: Table): ColumnMapping[] {
  if (table.layout !== 'wide') return [];
  const out: ColumnMapping[] = [];
  for (const column of table.columns.keys()) {
    for (const a of config.assets) {
      if (a.sensors.some((s) => s.id === column)) {
        out.push({ column, asset: a.id, sensor: column });
        break;
      }
    }
  }
  return out;
}

const silent = pino({ level: 'silent' });
const recorder: ActuatorDriver = { init() {}, async start() {}, async stop() {}, execute: async () => ({ ok: true }) };

export function backtest(config: AgentConfig, table: Table, opts: BacktestOptions = {}): BacktestResult {
  const cfg = replayConfig(config);
  const n = table.times.length;
  const raisedRows = new Uint8Array(n);
  const activeRows = new Uint8Array(n);
  const detections: Detection[] = [];
  const timeline: TimelineEntry[] = [];
  const open = new Map<string, TimelineEntry>();
  const selected = opts.detectors;
  let row = 0;
  let active = 0;
  let clock = Number.NEGATIVE_INFINITY;
  const emit = (ev: AgentEvent) => {
    const p = ev.payload as Record<string, unknown>;
    if (ev.kind === 'anomaly') {
      const d = { row, ...p } as Detection;
      detections.push(d);
      const key = `${d.detector}\u0000${d.asset}\u0000${d.sensor}`;
      const counted = !selected || selected.has(d.detector);
      if (d.state === 'raised' && !open.has(key)) {
        const e: TimelineEntry = {
          kind: 'alarm',
          detector: d.detector,
          asset: d.asset,
          sensor: d.sensor,
          start: d.event_time,
          end: null,
          start_row: row,
          end_row: null,
        };
        open.set(key, e);
        timeline.push(e);
        if (counted) {
          raisedRows[row] = 1;
          active++;
        }
      } else if (d.state === 'cleared') {
        const e = open.get(key);
        if (e) {
          e.end = d.event_time;
          e.end_row = row;
          open.delete(key);
          if (counted) active--;
        }
      }
    } else if (ev.kind === 'action' && (p.type === 'dry_run_trip' || p.type === 'trip')) {
      timeline.push({
        kind: 'trip',
        detector: String(p.detector ?? (p.cause as { detector?: string } | undefined)?.detector ?? ''),
        asset: String(p.asset ?? ev.key),
        sensor: String(p.sensor ?? (p.cause as { sensor?: string } | undefined)?.sensor ?? ''),
        start: ev.eventTime,
        end: null,
        start_row: row,
        end_row: null,
      });
    }
  };
  const now = () => clock;
  const actuators = new Map(cfg.actuators.map((a) => [a.id, recorder]));
  const interlocks = new Interlocks(cfg.interlocks, actuators, emit, silent, now, cfg.detectors);
  const pipeline = new Pipeline(cfg, interlocks, emit, now);
  const bound = new Map<string, BoundSensor>();
  for (const a of cfg.assets) for (const s of a.sensors) bound.set(`${a.id}/${s.id}`, { ...(s as SensorConfig), asset: a.id });
  const started = performance.now();
  try {
    if (table.layout === 'wide') {
      const cols = (opts.columns ?? defaultColumns(cfg, table)).map((m) => {
        const values = table.columns.get(m.column);
        const sensor = bound.get(`${m.asset}/${m.sensor}`);
        if (!values) throw new Error(`no column "${m.column}" in the input`);
        if (!sensor) throw new Error(`column "${m.column}": no sensor ${m.asset}/${m.sensor} in the config`);
        return { values, sensor };
      });
      if (cols.length === 0) throw new Error('no input column maps to a configured sensor (use --sensor COLUMN=ASSET/SENSOR)');
      const batch: Reading[] = [];
      for (row = 0; row < n; row++) {
        const t = table.times[row] as number;
        if (t > clock) clock = t;
        batch.length = 0;
        for (const c of cols) {
          const v = c.values[row] as number;
          if (!Number.isNaN(v)) batch.push(makeReading(c.sensor, v, t, clock));
        }
        pipeline.ingest(batch);
        activeRows[row] = active > 0 ? 1 : 0;
      }
    } else {
      for (row = 0; row < n; row++) {
        const t = table.times[row] as number;
        if (t > clock) clock = t;
        const key = `${table.asset[row]}/${table.sensor[row]}`;
        const s = bound.get(key);
        const r: Reading = s
          ? makeReading(s, table.values[row] as number, t, clock, table.quality[row])
          : {
              asset: table.asset[row] as string,
              sensor: table.sensor[row] as string,
              metric: 'other',
              unit: '',
              value: table.values[row] as number,
              eventTime: t,
              ingestTime: clock,
              quality: table.quality[row] ?? 'good',
            };
        pipeline.ingest([r]);
        activeRows[row] = active > 0 ? 1 : 0;
      }
    }
    row = Math.max(0, n - 1);
    pipeline.flush();
  } finally {
    interlocks.stop();
  }
  return {
    rows: n,
    counters: pipeline.counters,
    detections,
    timeline,
    raisedRows,
    activeRows,
    times: table.times,
    elapsedMs: performance.now() - started,
  };
}
