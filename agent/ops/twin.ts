/**
 * The digital twin: per asset, the latest value and the last closed window of every sensor, the
 * active anomalies, the machine state and a health score. It is a projection of the same readings
 * and events that go to the store, so it can be checked against the store. Twin records go to the
 * store as `twin` events (key: asset id) whenever an asset's state, anomalies or health band
 * change, and every `twin.interval`; the sync sends them to the compacted twin topic.
 *
 * Machine state: `tripped` while the interlock is latched; `acknowledged` after a person acknowledged
 * the trip while a tripping anomaly of that asset is still active; `running` otherwise.
 *
 * Health score (0-100): 100 x the share of sensors whose latest reading is good (stale counts half),
 * minus 40 per active critical anomaly, 20 per warning and 5 per info; at most 20 while tripped.
 *
 * Limits are the effective ones (after run-time overrides by control messages), and say where they
 * came from: every parameter a control message may change is reported as a `Setting` (value,
 * file_value, origin file|override, by, message_id, applied_at, expires_at), per detector in
 * `settings` and on each limit line. A change writes the asset's twin at once.
 */
import type { AgentConfig, DetectorConfig } from '../config/schema.js';
import type { Setting } from '../control/control.js';
import type { LearningView } from '../learning.js';
import type { AgentEvent, Quality, Reading, Severity } from '../types.js';

export type MachineState = 'running' | 'tripped' | 'acknowledged';

export interface WindowStats {
  readonly start: number;
  readonly end: number;
  readonly count: number;
  readonly good: number;
  readonly min: number | null;
  readonly max: number | null;
  readonly mean: number | null;
  readonly last: number | null;
}

/** A limit a detector watches, for drawing: it raises past `raise` and clears back past `clear`. */
export interface SensorLimit {
  readonly detector: string;
  readonly type: string;
  readonly direction: 'above' | 'below';
  readonly raise: number;
  readonly clear: number;
  readonly severity: Severity;
  readonly trip: boolean;
  /** 'override' when a run-time override changes any parameter of this detector. */
  readonly origin: 'file' | 'override';
  /** The detector's run-time changeable parameters (contract B); empty when none is declared. */
  readonly settings: Readonly<Record<string, Setting>>;
}

export interface SensorTwin {
  readonly id: string;
  readonly metric: string;
  readonly unit: string;
  value: number | null;
  quality: Quality | null;
  event_time: number | null;
  window: WindowStats | null;
  limits: readonly SensorLimit[];
}

export interface ActiveAnomaly {
  readonly detector: string;
  readonly sensor: string;
  readonly severity: Severity;
  readonly trip: boolean;
  readonly since: number;
  readonly value: number;
}

export interface AssetTwin {
  readonly asset: string;
  readonly name: string | null;
  readonly state: MachineState;
  readonly trip: { readonly detector: string | null; readonly at: number | null } | null;
  readonly ack: { readonly by: string; readonly at: number } | null;
  readonly health: number;
  readonly model_version: string | null;
  /** Per detector of this asset: its run-time changeable parameters with their origin (contract B). */
  readonly settings: Readonly<Record<string, Readonly<Record<string, Setting>>>>;
  readonly active_anomalies: readonly ActiveAnomaly[];
  readonly sensors: readonly SensorTwin[];
  /** The asset's detectors that learn a baseline: learning now (since, until when) or learned (when; restored at start). */
  readonly learning: readonly LearningView[];
  readonly updated_at: number;
}

export interface SeriesMarker {
  readonly t: number;
  readonly sensor: string;
  readonly detector: string;
  readonly state: 'raised' | 'cleared';
  readonly severity: Severity;
}

export interface AssetSeries {
  readonly asset: string;
  /** Per sensor: [eventTime, value] pairs of good readings, oldest first, at most one per resolution step. */
  readonly sensors: Record<string, Array<[number, number]>>;
  readonly markers: readonly SeriesMarker[];
}

interface SensorEntry {
  /** Identity, window and limits; the latest value lives in the number fields below until `build`. */
  readonly twin: SensorTwin;
  /**
   * The latest reading, in fields that hold numbers only: storing each reading's value into the twin
   * object's `number | null` fields allocated two boxed numbers per reading that outlived the next
   * scavenge (old-generation growth and longer GC pauses at thousands of readings a second).
   */
  value: number;
  eventTime: number;
  quality: Quality | null;
  /** Ring of the last SERIES_POINTS points, grown on demand (a sensor that never reports costs 128 bytes). */
  times: Float64Array;
  values: Float64Array;
  head: number;
  size: number;
  nextPointAt: number;
}

interface AssetEntry {
  readonly id: string;
  readonly detectors: readonly string[];
  readonly name: string | null;
  readonly sensors: SensorEntry[];
  readonly anomalies: Map<string, ActiveAnomaly>;
  readonly markers: SeriesMarker[];
  trip: { detector: string | null; at: number | null } | null;
  ack: { by: string; at: number } | null;
  signature: string;
}

export interface TwinOptions {
  /** Where twin events go (the store's append). */
  readonly emit: (ev: AgentEvent) => void;
  /** The interlock's latch: the source of truth for `tripped`. */
  readonly isTripped: (asset: string) => boolean;
  readonly now?: () => number;
  /** The version of the model scoring an asset; null while none does. */
  readonly modelVersion?: (asset: string) => string | null;
  /** A detector's effective config and changeable settings (the control plane); default: the file's config. */
  readonly detector?: (id: string) => { config: DetectorConfig; settings: Record<string, Setting> } | undefined;
  /** The learning detectors of an asset (agent/learning.ts). */
  readonly learning?: (asset: string) => LearningView[];
}

const SEVERITY_COST: Record<Severity, number> = { critical: 40, warning: 20, info: 5 };
const SERIES_POINTS = 300;
const SERIES_INITIAL = 8;
const MAX_MARKERS = 100;

export function limitsOf(d: DetectorConfig, settings: Record<string, Setting> = {}): SensorLimit | undefined {
  const origin = Object.values(settings).some((x) => x.origin === 'override') ? 'override' : 'file';
  const base = { detector: d.id, type: d.type, severity: d.severity, trip: d.trip, origin, settings } as const;
  const cfg = d as unknown as Record<string, unknown>;
  const direction = cfg.direction === 'below' ? 'below' : 'above';
  const sign = direction === 'above' ? 1 : -1;
  if (typeof cfg.setpoint === 'number') {
    const up = typeof cfg.delta_up === 'number' ? cfg.delta_up : 0;
    const down = typeof cfg.delta_down === 'number' ? cfg.delta_down : 0;
    return { ...base, direction, raise: cfg.setpoint + sign * up, clear: cfg.setpoint - sign * down };
  }
  // z-score and rate-of-change limits are not in the sensor's unit: they are not drawn on its chart.
  if (typeof cfg.limit === 'number' && d.type === 'count_over') return { ...base, direction, raise: cfg.limit, clear: cfg.limit };
  return undefined;
}

export class TwinTracker {
  private readonly assets = new Map<string, AssetEntry>();
  /** asset → sensor → entry: two lookups per reading, no key string built. */
  private readonly bySensor = new Map<string, Map<string, SensorEntry>>();
  /** The same entries by slot (agent/reading.ts `sensorSlots`). */
  private readonly slots: SensorEntry[] = [];
  private readonly now: () => number;
  private readonly resolution: number;
  private readonly dirty = new Set<string>();
  private scheduled = false;
  private timer: NodeJS.Timeout | undefined;

  private readonly detectorConfigs: ReadonlyMap<string, DetectorConfig>;
  /** The span of the series (ms): markers older than it are off the chart and dropped. */
  private readonly history: number;

  constructor(
    config: Pick<AgentConfig, 'assets' | 'detectors' | 'twin'>,
    private readonly opts: TwinOptions,
  ) {
    this.detectorConfigs = new Map(config.detectors.map((d) => [d.id, d]));
    this.now = opts.now ?? Date.now;
    this.resolution = Math.max(100, config.twin.history / SERIES_POINTS);
    this.history = config.twin.history;
    for (const a of config.assets) {
      const entry: AssetEntry = {
        id: a.id,
        detectors: config.detectors.filter((d) => d.asset === a.id).map((d) => d.id),
        name: a.name ?? null,
        sensors: [],
        anomalies: new Map(),
        markers: [],
        trip: null,
        ack: null,
        signature: '',
      };
      for (const s of a.sensors) {
        const se: SensorEntry = {
          twin: {
            id: s.id,
            metric: s.metric,
            unit: s.unit,
            value: null,
            quality: null,
            event_time: null,
            window: null,
            limits: [],
          },
          value: 0,
          eventTime: Number.NEGATIVE_INFINITY,
          quality: null,
          times: new Float64Array(SERIES_INITIAL),
          values: new Float64Array(SERIES_INITIAL),
          head: 0,
          size: 0,
          nextPointAt: 0,
        };
        entry.sensors.push(se);
        this.slots.push(se);
        let byId = this.bySensor.get(a.id);
        if (!byId) this.bySensor.set(a.id, (byId = new Map()));
        byId.set(s.id, se);
      }
      this.assets.set(a.id, entry);
      this.refreshLimits(entry);
    }
  }

  private effective(id: string): { config: DetectorConfig; settings: Record<string, Setting> } | undefined {
    const fromControl = this.opts.detector?.(id);
    if (fromControl) return fromControl;
    const config = this.detectorConfigs.get(id);
    return config ? { config, settings: {} } : undefined;
  }

  private refreshLimits(a: AssetEntry): void {
    for (const se of a.sensors) {
      const limits: SensorLimit[] = [];
      for (const id of a.detectors) {
        const d = this.effective(id);
        if (!d || !('sensor' in d.config) || d.config.sensor !== se.twin.id) continue;
        const l = limitsOf(d.config, d.settings);
        if (l) limits.push(l);
      }
      se.twin.limits = limits;
    }
  }

  /** A control message changed a detector's parameters: the limits follow and the asset's twin is written at once. */
  settingsChanged(detector: string): void {
    const d = this.detectorConfigs.get(detector);
    const a = d ? this.assets.get(d.asset) : undefined;
    if (!a) return;
    this.refreshLimits(a);
    setImmediate(() => this.publish(a.id, true));
  }

  /** Seeds trips that were latched before this process started (read back from the store). */
  restoreTrips(trips: ReadonlyArray<{ asset: string; detector: string; event_time: number }>): void {
    for (const t of trips) {
      const a = this.assets.get(t.asset);
      if (a) a.trip = { detector: t.detector || null, at: t.event_time };
    }
  }

  /** Hot path: a few field writes per reading, one array write per sensor per resolution step. */
  onReadings(batch: readonly Reading[]): void {
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i] as Reading;
      const se = this.bySensor.get(r.asset)?.get(r.sensor);
      if (se) this.record(se, r);
    }
  }

  /** One reading of the sensor at `slot` (agent/reading.ts `sensorSlots`): `onReadings([r])` without the lookups. */
  onReading(slot: number, r: Reading): void {
    const se = this.slots[slot];
    if (se === undefined || se.twin.id !== r.sensor) this.onReadings([r]);
    else this.record(se, r);
  }

  private record(se: SensorEntry, r: Reading): void {
    if (r.eventTime < se.eventTime) return;
    se.value = r.value;
    se.quality = r.quality;
    se.eventTime = r.eventTime;
    if (r.quality === 'good' && r.eventTime >= se.nextPointAt) {
      // Until the ring is full, head stays 0 and points are appended: growing is a copy.
      if (se.size === se.times.length && se.size < SERIES_POINTS) {
        const cap = Math.min(SERIES_POINTS, se.size * 2);
        const times = new Float64Array(cap);
        const values = new Float64Array(cap);
        times.set(se.times);
        values.set(se.values);
        se.times = times;
        se.values = values;
      }
      const idx = (se.head + se.size) % SERIES_POINTS;
      se.times[idx] = r.eventTime;
      se.values[idx] = r.value;
      if (se.size < SERIES_POINTS) se.size++;
      else se.head = (se.head + 1) % SERIES_POINTS;
      se.nextPointAt = r.eventTime + this.resolution;
    }
  }

  /** Every event the agent emits passes here (before or after the store, it does not matter). */
  onEvent(ev: AgentEvent): void {
    if (ev.kind === 'twin' || ev.kind === 'capture') return;
    const a = this.assets.get(ev.key);
    if (!a) return;
    const p = ev.payload as Record<string, unknown>;
    if (ev.kind === 'aggregate') {
      const se = a.sensors.find((s) => s.twin.id === p.sensor);
      if (se)
        se.twin.window = {
          start: p.window_start as number,
          end: p.window_end as number,
          count: p.count as number,
          good: p.good as number,
          min: p.min as number | null,
          max: p.max as number | null,
          mean: p.mean as number | null,
          last: p.last as number | null,
        };
      return;
    }
    if (ev.kind === 'anomaly') {
      const detector = String(p.detector);
      const marker: SeriesMarker = {
        t: ev.eventTime,
        sensor: String(p.sensor),
        detector,
        state: p.state === 'cleared' ? 'cleared' : 'raised',
        severity: p.severity as Severity,
      };
      a.markers.push(marker);
      if (a.markers.length > MAX_MARKERS) a.markers.shift();
      while ((a.markers[0] as SeriesMarker).t < ev.eventTime - this.history) a.markers.shift();
      if (marker.state === 'raised')
        a.anomalies.set(detector, {
          detector,
          sensor: marker.sensor,
          severity: marker.severity,
          trip: p.trip === true,
          since: ev.eventTime,
          value: p.value as number,
        });
      else a.anomalies.delete(detector);
    } else if (ev.kind === 'action' && p.type === 'trip') {
      a.trip = { detector: (p.detector as string) ?? null, at: ev.eventTime };
      a.ack = null;
    } else if (ev.kind === 'audit' && p.type === 'ack') {
      a.ack = { by: String(p.by), at: ev.eventTime };
    } else return;
    this.markDirty(a.id);
  }

  private markDirty(asset: string): void {
    this.dirty.add(asset);
    if (this.scheduled) return;
    this.scheduled = true;
    // Off the hot path: the reading that caused the change has already been handled.
    setImmediate(() => {
      this.scheduled = false;
      for (const id of this.dirty) this.publish(id, false);
      this.dirty.clear();
    });
  }

  private stateOf(a: AssetEntry): MachineState {
    if (this.opts.isTripped(a.id)) return 'tripped';
    if (a.ack && a.trip && [...a.anomalies.values()].some((x) => x.trip)) return 'acknowledged';
    return 'running';
  }

  private build(a: AssetEntry): AssetTwin {
    const state = this.stateOf(a);
    let quality = 0;
    for (const s of a.sensors) quality += s.quality === 'good' ? 1 : s.quality === 'stale' ? 0.5 : 0;
    let health = a.sensors.length ? (100 * quality) / a.sensors.length : 100;
    for (const an of a.anomalies.values()) health -= SEVERITY_COST[an.severity] ?? 20;
    if (state === 'tripped') health = Math.min(health, 20);
    return {
      asset: a.id,
      name: a.name,
      state,
      trip: state === 'running' ? null : (a.trip ?? { detector: null, at: null }),
      ack: state === 'tripped' ? null : a.ack,
      health: Math.round(Math.max(0, Math.min(100, health))),
      model_version: this.opts.modelVersion?.(a.id) ?? null,
      settings: this.settingsOf(a),
      active_anomalies: [...a.anomalies.values()],
      sensors: a.sensors.map((s) => {
        const seen = s.eventTime !== Number.NEGATIVE_INFINITY;
        return {
          ...s.twin,
          value: seen ? s.value : null,
          quality: s.quality,
          event_time: seen ? s.eventTime : null,
          window: s.twin.window ? { ...s.twin.window } : null,
        };
      }),
      learning: this.opts.learning?.(a.id) ?? [],
      updated_at: this.now(),
    };
  }

  private settingsOf(a: AssetEntry): Record<string, Record<string, Setting>> {
    const out: Record<string, Record<string, Setting>> = {};
    for (const id of a.detectors) {
      const s = this.effective(id)?.settings;
      if (s && Object.keys(s).length > 0) out[id] = s;
    }
    return out;
  }

  /** Writes the asset's twin when its state, anomalies or health band changed (or always, when `force`). */
  private publish(id: string, force: boolean): void {
    const a = this.assets.get(id);
    if (!a) return;
    const twin = this.build(a);
    const sig = `${twin.state}|${twin.active_anomalies.map((x) => x.detector).join(',')}|${Math.floor(twin.health / 10)}|${twin.ack?.at ?? ''}|${twin.learning
      .filter((l) => l.learning)
      .map((l) => l.detector)
      .join(',')}`;
    if (!force && sig === a.signature) return;
    a.signature = sig;
    this.opts.emit({ kind: 'twin', key: id, eventTime: twin.updated_at, payload: twin as unknown as Record<string, unknown> });
  }

  /**
   * Writes every asset's twin now, then each one again every `intervalMs`; state changes are written as
   * they happen. The periodic writes are spread over the interval (a few assets per tick, ticks at
   * least 100 ms apart), so a gateway with thousands of assets never builds them all in one tick.
   */
  start(intervalMs: number): void {
    this.publishAll();
    const ids = [...this.assets.keys()];
    if (ids.length === 0) return;
    const ticks = Math.max(1, Math.min(ids.length, Math.floor(intervalMs / 100)));
    const perTick = Math.ceil(ids.length / ticks);
    let cursor = 0;
    this.timer = setInterval(() => {
      for (let k = 0; k < perTick; k++) {
        this.publish(ids[cursor] as string, true);
        cursor = (cursor + 1) % ids.length;
      }
    }, intervalMs / ticks);
    this.timer.unref();
  }

  publishAll(): void {
    for (const id of this.assets.keys()) this.publish(id, true);
  }

  /** Re-checks every asset (e.g. after an acknowledgement changed the latch) and writes those that changed. */
  refresh(): void {
    for (const id of this.assets.keys()) this.markDirty(id);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  snapshot(): AssetTwin[] {
    return [...this.assets.values()].map((a) => this.build(a));
  }

  series(since = 0): AssetSeries[] {
    return [...this.assets.values()].map((a) => {
      const sensors: Record<string, Array<[number, number]>> = {};
      for (const s of a.sensors) {
        const pts: Array<[number, number]> = [];
        for (let i = 0; i < s.size; i++) {
          const idx = (s.head + i) % SERIES_POINTS;
          const t = s.times[idx] as number;
          if (t > since) pts.push([t, s.values[idx] as number]);
        }
        sensors[s.twin.id] = pts;
      }
      return { asset: a.id, sensors, markers: a.markers.filter((m) => m.t > since) };
    });
  }
}
