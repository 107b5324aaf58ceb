/**
 * The hot path: readings in, event-time checks, detection, interlocks, and events queued for the
 * store. Everything here is synchronous; the store only queues.
 *
 * Per reading, in order:
 *  1. clock checks: a reading stamped more than `time.max_clock_skew` ahead of the gateway clock is
 *     rejected and counted (so one bad clock cannot push the watermark ahead); one stamped before
 *     `time.trusted_after` is flagged (counted, and its anomalies carry `clock_trusted: false`,
 *     the boot id and the monotonic clock);
 *  2. lateness: a reading older than its source's watermark (latest event time from that source
 *     minus `time.allowed_lateness`) is dropped and counted, or emitted as a late event;
 *  3. the range check of sensors that feed tripping detectors: a reading past the sensor's physical
 *     range on the side such a detector watches raises `range:above_max`/`range:below_min` (tripping),
 *     cleared by the next good reading: a value the sensor cannot measure is the worst case, not a gap;
 *     then the point detectors (decide in this tick, so a trip is issued before anything else happens);
 *  4. multivariate rows of the asset;
 *  5. capture ring, count windows, the sensor's event-time buffer;
 *  6. the source's watermark advances; windows whose end it passed close: window detectors judge
 *     their feature, and the routine per-sensor aggregate is emitted (telemetry reduction: the
 *     store keeps aggregates, anomalies and captures, not every raw reading).
 */
import { readFileSync } from 'node:fs';
import type { AgentConfig, DetectorConfig, WindowConfig } from './config/schema.js';
import { AssetCapture } from './detect/capture.js';
import { createDetector, type ScalarConfig, type ScalarDetector } from './detect/detectors.js';
import { MultivariateDetector } from './detect/multivariate/asset.js';
import { type ClosedWindow, CountWindow, F, SensorSeries, TimeWindow, type WindowSink } from './detect/windows.js';
import type { Interlocks, SensorWatch } from './interlock.js';
import { type AgentEvent, type Anomaly, QUALITIES, type Quality, type Reading } from './types.js';

export interface PipelineCounters {
  readings: number;
  byQuality: Record<Quality, number>;
  unknownSensor: number;
  anomalies: number;
  trips: number;
  /** Older than the watermark: dropped (late_policy drop) or emitted as late events (emit). */
  late: number;
  /** Stamped too far ahead of the gateway clock: rejected. */
  future: number;
  /** Stamped before the clock was trusted: flagged, processed. */
  untrustedClock: number;
  /** Accepted although older than an earlier reading of their source (within the lateness). */
  outOfOrder: number;
}

export type PipelineConfig = Pick<AgentConfig, 'detectors' | 'assets' | 'aggregation' | 'time' | 'capture'>;

interface SourceState {
  readonly id: string;
  maxTime: number;
  watermark: number;
  deadline: number;
  readonly series: SensorSeries[];
  late: number;
  future: number;
  untrusted: number;
}

interface SensorState {
  readonly asset: string;
  readonly sensor: string;
  readonly index: number;
  readonly source: SourceState;
  readonly capture: AssetCapture | undefined;
  readonly point: ScalarDetector[];
  readonly series: SensorSeries;
  readonly counts: CountWindow[];
  readonly mv: Array<{ det: MultivariateDetector; ch: number }>;
  /** Interlock debounce / fail-safe watch of this sensor, told of every reading after the detectors. */
  watch: SensorWatch | undefined;
  /** Fail toward safety past the range (sensors feeding tripping detectors, `range_trip`). */
  range: RangeTrip | undefined;
}

/** Which side of a sensor's range each tripping detector watches. */
interface RangeTrip {
  readonly min: number;
  readonly max: number;
  /** Detector ids watching the high (max) / low (min) side; empty: that side is not checked. */
  readonly high: string[];
  readonly low: string[];
  /** 1: past max raised, -1: past min raised, 0: none. */
  active: -1 | 0 | 1;
}

/** The sides a tripping detector watches: where its raise lies if the value kept going. */
function sidesOf(d: DetectorConfig): { high: boolean; low: boolean } {
  switch (d.type) {
    case 'threshold':
    case 'count_over':
      return { high: d.direction === 'above', low: d.direction === 'below' };
    case 'rate_of_change':
      return { high: d.direction !== 'fall', low: d.direction !== 'rise' };
    case 'zscore':
    case 'multivariate':
      return { high: true, low: true };
    default:
      // flatline and out_of_range judge the sensor itself, not the process value.
      return { high: false, low: false };
  }
}

export interface DetectorHandle {
  readonly config: DetectorConfig;
  readonly active: boolean;
  readonly learning: boolean;
}

function readBootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return `process-${process.pid}-${Date.now()}`;
  }
}

/**
 * Extra stages fed by the pipeline (the on-device model, ensembles). Both calls are synchronous and
 * must only record and queue: they run on the hot path.
 */
export interface PipelineHook {
  onReading(r: Reading): void;
  /** Every anomaly, after the interlock acted on it. */
  onAnomaly(a: Anomaly): void;
  flush(): void;
}

export class Pipeline {
  readonly counters: PipelineCounters = {
    readings: 0,
    byQuality: Object.fromEntries(QUALITIES.map((q) => [q, 0])) as Record<Quality, number>,
    unknownSensor: 0,
    anomalies: 0,
    trips: 0,
    late: 0,
    future: 0,
    untrustedClock: 0,
    outOfOrder: 0,
  };
  /** asset → sensor → state: two lookups, no key string built per reading. */
  private readonly sensors = new Map<string, Map<string, SensorState>>();
  private readonly sources = new Map<string, SourceState>();
  private readonly captures = new Map<string, AssetCapture>();
  private readonly detectors = new Map<string, ScalarDetector | MultivariateDetector>();
  private readonly lateness: number;
  private readonly emitLate: boolean;
  private readonly maxSkew: number;
  private readonly trustedAfter: number;
  private readonly bootId = readBootId();
  hook: PipelineHook | undefined;

  constructor(
    config: PipelineConfig,
    private readonly interlocks: Interlocks,
    private readonly emit: (ev: AgentEvent) => void,
    private readonly now: () => number = Date.now,
  ) {
    const t = config.time;
    this.lateness = t.allowed_lateness;
    this.emitLate = t.late_policy === 'emit';
    this.maxSkew = t.max_clock_skew;
    this.trustedAfter = Date.parse(t.trusted_after);
    const aggWindow: WindowConfig = { type: 'tumbling', size: config.aggregation.window };

    for (const asset of config.assets) {
      const capture =
        config.capture.max_readings > 0
          ? new AssetCapture(
              asset.id,
              asset.sensors.map((s) => s.id),
              config.capture,
              emit,
            )
          : undefined;
      if (capture) this.captures.set(asset.id, capture);
      const byId = new Map<string, SensorState>();
      this.sensors.set(asset.id, byId);
      asset.sensors.forEach((s, index) => {
        let source = this.sources.get(s.source);
        if (!source) {
          source = {
            id: s.source,
            maxTime: Number.NEGATIVE_INFINITY,
            watermark: Number.NEGATIVE_INFINITY,
            deadline: Number.NaN,
            series: [],
            late: 0,
            future: 0,
            untrusted: 0,
          };
          this.sources.set(s.source, source);
        }
        const st: SensorState = {
          asset: asset.id,
          sensor: s.id,
          index,
          source,
          capture,
          point: [],
          series: new SensorSeries(),
          counts: [],
          mv: [],
          watch: undefined,
          range: undefined,
        };
        source.series.push(st.series);
        byId.set(s.id, st);
        const agg = this.timeWindow(st, aggWindow) as TimeWindow;
        agg.sinks.push(this.aggregateSink(st, s.metric, s.unit));
      });
    }
    for (const w of interlocks.watched()) {
      const st = this.state(w.asset, w.sensor);
      if (st) st.watch = w;
    }

    for (const d of config.detectors) {
      if (!d.trip) continue;
      const sides = sidesOf(d);
      for (const sensor of d.type === 'multivariate' ? d.sensors : [d.sensor]) {
        const st = this.state(d.asset, sensor);
        const cfg = config.assets.find((a) => a.id === d.asset)?.sensors.find((s) => s.id === sensor);
        if (!st || !cfg || cfg.range_trip === false) continue;
        st.range ??= {
          min: cfg.min ?? Number.NEGATIVE_INFINITY,
          max: cfg.max ?? Number.POSITIVE_INFINITY,
          high: [],
          low: [],
          active: 0,
        };
        if (sides.high && cfg.max !== undefined) st.range.high.push(d.id);
        if (sides.low && cfg.min !== undefined) st.range.low.push(d.id);
      }
    }
    for (const d of config.detectors) {
      if (d.type === 'multivariate') {
        const det = new MultivariateDetector(d);
        this.detectors.set(d.id, det);
        d.sensors.forEach((s, ch) => {
          this.state(d.asset, s)?.mv.push({ det, ch });
        });
        continue;
      }
      const st = this.state(d.asset, d.sensor);
      if (!st) continue;
      const sensorCfg = config.assets.find((a) => a.id === d.asset)?.sensors.find((s) => s.id === d.sensor);
      const det = createDetector(d, sensorCfg);
      this.detectors.set(d.id, det);
      const win = 'window' in d && typeof d.window === 'object' ? d.window : undefined;
      if (!win) {
        st.point.push(det);
        continue;
      }
      const w = this.timeWindow(st, win);
      const feature = ('feature' in d && d.feature) || 'mean';
      if (/^p\d/.test(feature)) w.layout.addPercentile(Number(feature.slice(1)));
      w.sinks.push(this.windowSink(det, w.layout.indexOf(feature), feature));
    }
  }

  private state(asset: string, sensor: string): SensorState | undefined {
    return this.sensors.get(asset)?.get(sensor);
  }

  /** The window of this spec on this sensor, shared by every consumer with the same spec. */
  private timeWindow(st: SensorState, spec: WindowConfig): TimeWindow | CountWindow {
    const key = JSON.stringify(spec);
    const keyed = st as SensorState & { keys?: Map<string, TimeWindow | CountWindow> };
    keyed.keys ??= new Map();
    let w = keyed.keys.get(key);
    if (!w) {
      if (spec.type === 'count') {
        w = new CountWindow(spec);
        st.counts.push(w);
      } else {
        w = new TimeWindow(spec);
        st.series.windows.push(w);
      }
      keyed.keys.set(key, w);
    }
    return w;
  }

  private windowSink(det: ScalarDetector, index: number, feature: string): WindowSink {
    return (w: ClosedWindow) => {
      const x = w.features[index] as number;
      const c = det.judge(w.end, x, 'good');
      if (c === 0) return;
      const features: Record<string, number | null> = {};
      for (let i = 0; i < w.layout.size; i++) {
        const v = w.features[i] as number;
        features[w.layout.nameOf(i)] = Number.isFinite(v) ? v : null;
      }
      this.handle(
        det.anomaly(c, w.end, x, {
          window: { ...w.spec, start: w.start, end: w.end },
          feature,
          features,
        }),
      );
    };
  }

  private aggregateSink(st: SensorState, metric: string, unit: string): WindowSink {
    return (w: ClosedWindow) => {
      const f = w.features;
      const good = (f[F.good] as number) > 0;
      const num = (i: number) => (good ? (f[i] as number) : null);
      this.emit({
        kind: 'aggregate',
        key: st.asset,
        eventTime: w.start,
        payload: {
          asset: st.asset,
          sensor: st.sensor,
          metric,
          unit,
          window_start: w.start,
          window_end: w.end,
          count: f[F.count],
          good: f[F.good],
          min: num(F.min),
          max: num(F.max),
          mean: num(F.mean),
          std: num(F.std),
          rms: num(F.rms),
          slope: num(F.slope),
          last: num(F.last),
        },
      });
    };
  }

  /** Processes a batch in order. The caller may reuse the array afterwards. */
  ingest(batch: readonly Reading[]): void {
    const c = this.counters;
    const now = this.now();
    const clockTrusted = now >= this.trustedAfter;
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i] as Reading;
      const st = this.sensors.get(r.asset)?.get(r.sensor);
      if (!st) {
        c.unknownSensor++;
        continue;
      }
      const src = st.source;
      const t = r.eventTime;
      if (clockTrusted && t > now + this.maxSkew) {
        c.future++;
        src.future++;
        continue;
      }
      if (t < this.trustedAfter) {
        c.untrustedClock++;
        src.untrusted++;
      }
      if (t < src.watermark) {
        c.late++;
        src.late++;
        if (this.emitLate) this.emitLateReading(r, src);
        continue;
      }
      c.readings++;
      c.byQuality[r.quality]++;
      st.capture?.record(st.index, r);
      if (st.range) this.checkRange(st, r);
      const point = st.point;
      for (let j = 0; j < point.length; j++) {
        const det = point[j] as ScalarDetector;
        const change = det.judge(t, r.value, r.quality);
        if (change !== 0) this.handle(det.anomaly(change, t, r.value, undefined));
      }
      const mv = st.mv;
      for (let j = 0; j < mv.length; j++) {
        const m = mv[j] as { det: MultivariateDetector; ch: number };
        const change = m.det.add(m.ch, t, r.value, r.quality);
        if (change !== 0) this.handle(m.det.anomaly(change));
      }
      const good = r.quality === 'good';
      const counts = st.counts;
      for (let j = 0; j < counts.length; j++) (counts[j] as CountWindow).add(t, r.value, good);
      st.series.add(t, r.value, good);
      const d = st.series.deadline();
      if (!(d >= src.deadline)) src.deadline = d;
      if (t > src.maxTime) {
        src.maxTime = t;
        src.watermark = t - this.lateness;
        if (src.watermark >= src.deadline) this.advance(src);
      } else if (t < src.maxTime) {
        c.outOfOrder++;
      }
      st.watch?.seen(r);
      this.hook?.onReading(r);
    }
  }

  private checkRange(st: SensorState, r: Reading): void {
    const g = st.range as RangeTrip;
    // comm_error and stale readings carry no measurement; bad ones past the range do (reading.ts).
    if (r.quality !== 'good' && r.quality !== 'bad') return;
    const past = r.value > g.max && g.high.length > 0 ? 1 : r.value < g.min && g.low.length > 0 ? -1 : 0;
    if (past === g.active) return;
    if (g.active !== 0) {
      if (past === 0 && r.quality !== 'good') return; // still no trustworthy value: keep it raised
      this.handle(this.rangeAnomaly(st, g, g.active, 'cleared', r));
    }
    g.active = past;
    if (past !== 0) this.handle(this.rangeAnomaly(st, g, past, 'raised', r));
  }

  private rangeAnomaly(st: SensorState, g: RangeTrip, side: 1 | -1, state: 'raised' | 'cleared', r: Reading): Anomaly {
    return {
      detector: side === 1 ? 'range:above_max' : 'range:below_min',
      detectorType: 'range',
      asset: st.asset,
      sensor: st.sensor,
      severity: 'critical',
      state,
      eventTime: r.eventTime,
      value: r.value,
      trip: true,
      evidence: side === 1 ? { max: g.max, watched_by: g.high } : { min: g.min, watched_by: g.low },
    };
  }

  /** Anomalies decided off the reading path (model scores, ensembles): same handling as a detector's. */
  raise(a: Anomaly): void {
    this.handle(a);
  }

  private advance(src: SourceState): void {
    let deadline = Number.NaN;
    for (let i = 0; i < src.series.length; i++) {
      const s = src.series[i] as SensorSeries;
      s.advance(src.watermark);
      const d = s.deadline();
      if (!(d >= deadline)) deadline = d;
    }
    src.deadline = deadline;
  }

  private emitLateReading(r: Reading, src: SourceState): void {
    this.emit({
      kind: 'aggregate',
      key: r.asset,
      eventTime: r.eventTime,
      payload: {
        type: 'late_reading',
        asset: r.asset,
        sensor: r.sensor,
        metric: r.metric,
        unit: r.unit,
        value: r.value,
        quality: r.quality,
        event_time: r.eventTime,
        source: src.id,
        watermark: src.watermark,
      },
    });
  }

  private handle(a: Anomaly): void {
    this.counters.anomalies++;
    // Act first, record second: the stop command must not wait for bookkeeping.
    if (this.interlocks.onAnomaly(a)) this.counters.trips++;
    // snake_case on the wire (schema/events/anomaly.v1.json); the in-process Anomaly stays camelCase.
    const payload: Record<string, unknown> = {
      detector: a.detector,
      detector_type: a.detectorType,
      asset: a.asset,
      sensor: a.sensor,
      severity: a.severity,
      state: a.state,
      event_time: a.eventTime,
      value: a.value,
      evidence: a.evidence,
      trip: a.trip,
    };
    if (a.eventTime < this.trustedAfter) {
      payload.clock_trusted = false;
      payload.boot_id = this.bootId;
      payload.monotonic_ms = Number(process.hrtime.bigint() / 1_000_000n);
    }
    this.emit({ kind: 'anomaly', key: a.asset, eventTime: a.eventTime, payload });
    if (a.state === 'raised') this.captures.get(a.asset)?.trigger(a);
    this.hook?.onAnomaly(a);
  }

  /** A detector's current configuration and state (control plane, status). */
  /** Every detector by id (contract E: learned-state persistence finds the detectors that learn here). */
  detectorsById(): Iterable<[string, ScalarDetector | MultivariateDetector]> {
    return this.detectors.entries();
  }

  detector(id: string): DetectorHandle | undefined {
    const d = this.detectors.get(id);
    if (!d) return undefined;
    return { config: d.cfg, active: d.active, learning: d.learning() };
  }

  /** Replaces a detector's parameters (validated by the caller); keeps its learned and alarm state. */
  reconfigure(id: string, cfg: DetectorConfig): void {
    const d = this.detectors.get(id);
    if (!d) throw new Error(`unknown detector "${id}"`);
    if (d instanceof MultivariateDetector) {
      if (cfg.type !== 'multivariate') throw new Error('detector type cannot change');
      d.reconfigure(cfg);
    } else {
      if (cfg.type === 'multivariate' || cfg.type !== d.cfg.type) throw new Error('detector type cannot change');
      (d as ScalarDetector<ScalarConfig>).reconfigure(cfg);
    }
  }

  /** Starts a new learning phase (detectors that learn a baseline). Returns false for others. */
  relearn(id: string): boolean {
    const d = this.detectors.get(id);
    if (!d || (d.cfg.type !== 'zscore' && d.cfg.type !== 'multivariate')) return false;
    d.relearn();
    return true;
  }

  /** Closes all open windows and captures (shutdown, end of a replay). */
  flush(): void {
    for (const src of this.sources.values()) {
      for (const s of src.series) s.flush();
      src.deadline = Number.NaN;
    }
    for (const c of this.captures.values()) c.close();
    this.hook?.flush();
  }
}
