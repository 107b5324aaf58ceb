/**
 * The judge: where a reading is judged, from the driver's batch to the interlock's decision, in one
 * synchronous loop (`ingest`). Nothing here awaits; the store only queues.
 *
 * Per reading, in order:
 *  1. the event-time gate (agent/judge/gate.ts): clock skew, trusted clock, the source's watermark;
 *  2. point judgement, decided in this tick so a trip is issued before anything else happens: the
 *     range trip (agent/judge/range.ts), the detectors that judge each reading, the asset's
 *     multivariate rows;
 *  3. the window engine (agent/judge/engine.ts): the reading is buffered, the source's watermark
 *     advances, and windows whose end it passed close; each closed window feeds, in this tick, the
 *     routine aggregate, the window detectors and the model's feature vectors;
 *  4. the interlock decision on the reading (debounce, fail-safe, release).
 * Every anomaly, whoever raised it (a detector, a range trip, a model score, an ensemble), goes
 * through `handle`: the interlock acts first, then the anomaly is recorded, captured around, and
 * offered to the ensembles, whose flips come back through `handle`.
 */
import { readFileSync } from 'node:fs';
import type { AgentConfig } from './config/schema.js';
import { AssetCapture } from './detect/capture.js';
import type { ScalarDetector } from './detectors/common.js';
import type { MultivariateDetector } from './detectors/multivariate/detector.js';
import { type AnyDetector, createDetector, type DetectorConfig } from './detectors/registry.js';
import type { Interlocks } from './interlock.js';
import { type SensorWindows, type SourceClock, WindowEngine } from './judge/engine.js';
import { F } from './judge/features.js';
import { EventTimeGate } from './judge/gate.js';
import { type RangeTrip, rangeTrips } from './judge/range.js';
import type { WindowConfig } from './judge/window-schema.js';
import type { ClosedWindow, WindowSink } from './judge/windows.js';
import type { Logger } from './log.js';
import { Ensembles, MODEL_MEMBER } from './model/ensemble.js';
import type { ModelService } from './model/service.js';
import { ModelStage } from './model/stage.js';
import { anomalyRecord } from './records.js';
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

export type PipelineConfig = Pick<AgentConfig, 'detectors' | 'assets' | 'aggregation' | 'time' | 'capture'> &
  Partial<Pick<AgentConfig, 'ensembles' | 'model'>>;

/** Beyond the config: the model service whose scores the judge turns into anomalies. */
export interface PipelineOptions {
  readonly model?: { readonly service: ModelService; readonly logger: Logger };
  /**
   * The live agent: due windows of at most `perReading` sensors close with a reading, the rest in later
   * event-loop turns (setImmediate), `perTurn` sensors at a time for at most `turnMs` of each turn, so
   * that I/O and the next readings run between. Without it (replays, tests) closing depends on the
   * readings only.
   */
  readonly spreadCloses?: { readonly perReading: number; readonly perTurn: number; readonly turnMs: number };
}

interface SensorState {
  readonly asset: string;
  readonly sensor: string;
  readonly index: number;
  readonly capture: AssetCapture | undefined;
  readonly point: ScalarDetector[];
  readonly rows: Array<{ det: MultivariateDetector; ch: number }>;
  readonly windows: SensorWindows;
  readonly source: SourceClock;
  /** The interlock's handle for this sensor (`Interlocks.watchOf`); -1: no interlock watches it. */
  readonly watch: number;
  readonly range: RangeTrip | undefined;
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
  /** The same states by slot (agent/reading.ts `sensorSlots`): the sources' path without lookups. */
  private readonly slots: SensorState[] = [];
  private readonly engine: WindowEngine;
  private readonly gate: EventTimeGate;
  private readonly captures = new Map<string, AssetCapture>();
  private readonly detectors = new Map<string, AnyDetector>();
  private readonly ensembles: Ensembles;
  private readonly model: ModelStage | undefined;
  private readonly bootId = readBootId();
  private readonly handleFn = (a: Anomaly): void => this.handle(a);

  constructor(
    config: PipelineConfig,
    private readonly interlocks: Interlocks,
    private readonly emit: (ev: AgentEvent) => void,
    private readonly now: () => number = Date.now,
    opts: PipelineOptions = {},
  ) {
    this.gate = new EventTimeGate(config.time, this.counters);
    this.engine = new WindowEngine(config.time.allowed_lateness);
    this.ensembles = new Ensembles(config.ensembles ?? []);
    const aggWindow: WindowConfig = { type: 'tumbling', size: config.aggregation.window };
    const ranges = rangeTrips(config.assets, config.detectors);

    // How far behind the newest reading a capture trigger can be stamped: a window anomaly carries its
    // window's end, which the watermark (newest − lateness) has passed.
    const captureSlack = config.time.allowed_lateness + longestWindow(config.detectors);
    for (const asset of config.assets) {
      const capture =
        config.capture.max_readings > 0
          ? new AssetCapture(
              asset.id,
              asset.sensors.map((s) => s.id),
              config.capture,
              emit,
              captureSlack,
            )
          : undefined;
      if (capture) this.captures.set(asset.id, capture);
      const byId = new Map<string, SensorState>();
      this.sensors.set(asset.id, byId);
      asset.sensors.forEach((s, index) => {
        const windows = this.engine.sensor(s.source);
        const st: SensorState = {
          asset: asset.id,
          sensor: s.id,
          index,
          capture,
          point: [],
          rows: [],
          windows,
          source: windows.source,
          watch: interlocks.watchOf(asset.id, s.id),
          range: ranges.get(asset.id)?.get(s.id),
        };
        byId.set(s.id, st);
        this.slots.push(st);
        this.engine.window(st.windows, aggWindow, this.aggregateSink(st, s.metric, s.unit));
      });
    }

    for (const d of config.detectors) {
      if (d.type === 'multivariate') {
        const det = createDetector(d);
        this.detectors.set(d.id, det);
        d.sensors.forEach((s, ch) => {
          this.state(d.asset, s)?.rows.push({ det, ch });
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
      const feature = ('feature' in d && d.feature) || 'mean';
      let index = -1;
      const w = this.engine.window(st.windows, win, (cw) => this.judgeWindow(det, cw, index, feature));
      if (/^p\d/.test(feature)) w.layout.addPercentile(Number(feature.slice(1)));
      index = w.layout.indexOf(feature);
    }

    const spread = opts.spreadCloses;
    if (spread) {
      this.engine.closeBudget = spread.perReading;
      let scheduled = false;
      const turn = () => {
        scheduled = false;
        const until = performance.now() + spread.turnMs;
        let done: boolean;
        do done = this.engine.sweep(spread.perTurn);
        while (!done && performance.now() < until);
        if (!done && !scheduled) {
          scheduled = true;
          setImmediate(turn);
        }
      };
      this.engine.onPending = () => {
        if (scheduled) return;
        scheduled = true;
        setImmediate(turn);
      };
    }

    const m = opts.model;
    if (m) {
      this.model = new ModelStage(
        config,
        m.service,
        (asset, sensor, windowMs, sink) => this.attach(asset, sensor, windowMs, sink),
        m.logger,
      );
      m.service.onScore((s) => {
        const a = this.model?.verdict(s);
        if (a) this.handle(a);
      });
    }
  }

  /** Processes a batch in order. The caller may reuse the array afterwards. */
  ingest(batch: readonly Reading[]): void {
    const now = this.now();
    const clockTrusted = now >= this.gate.trustedAfter;
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i] as Reading;
      const st = this.sensors.get(r.asset)?.get(r.sensor);
      if (!st) {
        this.counters.unknownSensor++;
        continue;
      }
      this.judge(st, r, now, clockTrusted);
    }
  }

  /**
   * One reading of the sensor at `slot` (agent/reading.ts `sensorSlots`; the reading's asset and sensor
   * are that sensor's): the same as `ingest([r])` without finding the sensor by its ids.
   */
  ingestOne(slot: number, r: Reading): void {
    const st = this.slots[slot];
    if (st === undefined || st.asset !== r.asset || st.sensor !== r.sensor) {
      this.ingest([r]);
      return;
    }
    const now = this.now();
    this.judge(st, r, now, now >= this.gate.trustedAfter);
  }

  /** The reading's way through the judge: gate, point judgement, windows, interlock (see the top of this file). */
  private judge(st: SensorState, r: Reading, now: number, clockTrusted: boolean): void {
    const c = this.counters;
    // 1. event-time gate
    const gate = this.gate.check(r, st.source, now, clockTrusted);
    if (gate !== 'pass') {
      if (gate === 'late' && this.gate.emitLate) this.emitLateReading(r, st.source.id, st.source.watermark);
      return;
    }
    c.readings++;
    c.byQuality[r.quality]++;
    st.capture?.record(st.index, r);
    // 2. point judgement: range trip, per-reading detectors, multivariate rows
    st.range?.check(r, this.handleFn);
    const t = r.eventTime;
    const point = st.point;
    for (let j = 0; j < point.length; j++) {
      const det = point[j] as ScalarDetector;
      const change = det.judge(t, r.value, r.quality);
      if (change !== 0) this.handle(det.anomaly(change, t, r.value, undefined));
    }
    const rows = st.rows;
    for (let j = 0; j < rows.length; j++) {
      const m = rows[j] as { det: MultivariateDetector; ch: number };
      const change = m.det.add(m.ch, t, r.value, r.quality);
      if (change !== 0) this.handle(m.det.anomaly(change));
    }
    // 3. window engine: closed windows feed aggregates, window detectors and the model
    if (this.engine.add(st.windows, t, r.value, r.quality === 'good')) c.outOfOrder++;
    // 4. interlock decision
    if (st.watch >= 0) this.interlocks.observe(st.watch, r);
  }

  /** Every anomaly, from any stage: act first, record second, then the ensembles. */
  private handle(a: Anomaly): void {
    this.counters.anomalies++;
    // Act first: the stop command must not wait for bookkeeping.
    if (this.interlocks.onAnomaly(a)) this.counters.trips++;
    const untrusted = a.eventTime < this.gate.trustedAfter;
    this.emit({
      kind: 'anomaly',
      key: a.asset,
      eventTime: a.eventTime,
      payload: anomalyRecord(
        a,
        untrusted ? { boot_id: this.bootId, monotonic_ms: Number(process.hrtime.bigint() / 1_000_000n) } : undefined,
      ),
    });
    if (a.state === 'raised') this.captures.get(a.asset)?.trigger(a);
    if (!this.ensembles.watches(a.asset, a.detector)) return;
    const evidence =
      a.detector === MODEL_MEMBER ? { score: a.value, model_version: a.evidence.model_version } : { value: a.value };
    for (const e of this.ensembles.update(a.asset, a.detector, a.state === 'raised', a.eventTime, evidence)) this.handle(e);
  }

  private state(asset: string, sensor: string): SensorState | undefined {
    return this.sensors.get(asset)?.get(sensor);
  }

  private judgeWindow(det: ScalarDetector, w: ClosedWindow, index: number, feature: string): void {
    const x = w.features[index] as number;
    const c = det.judge(w.end, x, 'good');
    if (c === 0) return;
    const features: Record<string, number | null> = {};
    for (let i = 0; i < w.layout.size; i++) {
      const v = w.features[i] as number;
      features[w.layout.nameOf(i)] = Number.isFinite(v) ? v : null;
    }
    this.handle(det.anomaly(c, w.end, x, { window: { ...w.spec, start: w.start, end: w.end }, feature, features }));
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

  /** The model stage's windows: a tumbling window of `windowMs` on the sensor, from the same engine. */
  private attach(asset: string, sensor: string, windowMs: number, sink: WindowSink): () => void {
    const st = this.state(asset, sensor);
    if (!st) return () => {};
    const spec: WindowConfig = { type: 'tumbling', size: windowMs };
    this.engine.window(st.windows, spec, sink);
    return () => this.engine.unregister(st.windows, spec, sink);
  }

  private emitLateReading(r: Reading, source: string, watermark: number): void {
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
        source,
        watermark,
      },
    });
  }

  /** The version of the on-device model scoring `asset`; null when none does (the twin shows it). */
  modelVersion(asset: string): string | null {
    return this.model?.modelVersion(asset) ?? null;
  }

  /** The model stage's window counters (incomplete, partial); undefined without a model. */
  modelWindows(): Readonly<{ incomplete: number; partial: number }> | undefined {
    return this.model?.counters;
  }

  /** Inputs the detectors skipped as older than the last one each judged (published on /metrics). */
  detectorsSkipped(): number {
    let n = 0;
    for (const d of this.detectors.values()) n += d.outOfOrder;
    return n;
  }

  /** Every detector by id (control plane, learned-state persistence). */
  detectorsById(): Iterable<[string, AnyDetector]> {
    return this.detectors.entries();
  }

  /** A detector's current configuration and state (control plane, status). */
  detector(id: string): DetectorHandle | undefined {
    const d = this.detectors.get(id);
    if (!d) return undefined;
    return { config: d.cfg as DetectorConfig, active: d.active, learning: d.learning() };
  }

  /** Replaces a detector's parameters (validated by the caller); keeps its learned and alarm state. */
  reconfigure(id: string, cfg: DetectorConfig): void {
    const d = this.detectors.get(id);
    if (!d) throw new Error(`unknown detector "${id}"`);
    if (cfg.type !== d.cfg.type) throw new Error('detector type cannot change');
    (d as { reconfigure(c: DetectorConfig): void }).reconfigure(cfg);
  }

  /** Starts a new learning phase (detectors that learn a baseline). Returns false for others. */
  relearn(id: string): boolean {
    const d = this.detectors.get(id);
    if (!d || !('learn' in d.cfg)) return false;
    d.relearn();
    return true;
  }

  /** Closes all open windows and captures (shutdown, end of a replay). */
  flush(): void {
    this.engine.flush();
    for (const c of this.captures.values()) c.close();
  }
}

/** The longest event-time window (size, or the count window's `window` duration) of any detector, ms. */
function longestWindow(detectors: readonly DetectorConfig[]): number {
  let longest = 0;
  for (const d of detectors) {
    const w = 'window' in d ? d.window : undefined;
    if (typeof w === 'number') longest = Math.max(longest, w);
    else if (w && 'size' in w) longest = Math.max(longest, w.size);
  }
  return longest;
}
