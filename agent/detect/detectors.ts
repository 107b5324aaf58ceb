/**
 * The first detector set: threshold with hysteresis and count-over-limit within a window.
 * A detector sees one sensor's readings in order and reports only changes of state.
 * Runs on the hot path: no allocation per reading except when an anomaly is reported.
 */
import type { DetectorConfig } from '../config/schema.js';
import type { Anomaly, Reading } from '../types.js';

export interface Detector {
  readonly id: string;
  readonly asset: string;
  readonly sensor: string;
  /** Returns an anomaly when the detector's state changes (raised or cleared), else undefined. */
  update(r: Reading): Anomaly | undefined;
  readonly active: boolean;
}

type ThresholdConfig = Extract<DetectorConfig, { type: 'threshold' }>;
type CountOverConfig = Extract<DetectorConfig, { type: 'count_over' }>;

export class ThresholdDetector implements Detector {
  active = false;
  readonly id: string;
  readonly asset: string;
  readonly sensor: string;
  private readonly raiseAt: number;
  private readonly clearAt: number;
  private readonly sign: number;

  constructor(private readonly cfg: ThresholdConfig) {
    this.id = cfg.id;
    this.asset = cfg.asset;
    this.sensor = cfg.sensor;
    // Work in "above" terms: for direction below, negate values and limits.
    this.sign = cfg.direction === 'above' ? 1 : -1;
    this.raiseAt = this.sign * cfg.setpoint + cfg.delta_up;
    this.clearAt = this.sign * cfg.setpoint - cfg.delta_down;
  }

  update(r: Reading): Anomaly | undefined {
    if (r.quality !== 'good') return undefined;
    const v = this.sign * r.value;
    if (!this.active && v > this.raiseAt) {
      this.active = true;
      return this.anomaly(r, 'raised');
    }
    if (this.active && v < this.clearAt) {
      this.active = false;
      return this.anomaly(r, 'cleared');
    }
    return undefined;
  }

  private anomaly(r: Reading, state: 'raised' | 'cleared'): Anomaly {
    const c = this.cfg;
    return {
      detector: c.id,
      detectorType: 'threshold',
      asset: c.asset,
      sensor: c.sensor,
      severity: c.severity,
      state,
      eventTime: r.eventTime,
      value: r.value,
      trip: c.trip,
      evidence: {
        direction: c.direction,
        setpoint: c.setpoint,
        raise_at: this.sign * this.raiseAt,
        clear_at: this.sign * this.clearAt,
      },
    };
  }
}

/** Raises when MORE than `count` readings past `limit` fall within the trailing event-time window. */
export class CountOverDetector implements Detector {
  active = false;
  readonly id: string;
  readonly asset: string;
  readonly sensor: string;
  private times: Float64Array;
  private head = 0;
  private size = 0;
  private readonly sign: number;

  constructor(private readonly cfg: CountOverConfig) {
    this.id = cfg.id;
    this.asset = cfg.asset;
    this.sensor = cfg.sensor;
    this.sign = cfg.direction === 'above' ? 1 : -1;
    this.times = new Float64Array(Math.max(16, cfg.count + 2));
  }

  update(r: Reading): Anomaly | undefined {
    if (r.quality !== 'good') return undefined;
    const horizon = r.eventTime - this.cfg.window;
    while (this.size > 0 && (this.times[this.head] as number) <= horizon) {
      this.head = (this.head + 1) % this.times.length;
      this.size--;
    }
    if (this.sign * r.value > this.sign * this.cfg.limit) this.push(r.eventTime);
    const over = this.size > this.cfg.count;
    if (over === this.active) return undefined;
    this.active = over;
    const c = this.cfg;
    return {
      detector: c.id,
      detectorType: 'count_over',
      asset: c.asset,
      sensor: c.sensor,
      severity: c.severity,
      state: over ? 'raised' : 'cleared',
      eventTime: r.eventTime,
      value: r.value,
      trip: c.trip,
      evidence: { limit: c.limit, direction: c.direction, count: this.size, max_count: c.count, window_ms: c.window },
    };
  }

  private push(t: number): void {
    if (this.size === this.times.length) {
      const bigger = new Float64Array(this.times.length * 2);
      for (let i = 0; i < this.size; i++) bigger[i] = this.times[(this.head + i) % this.times.length] as number;
      this.times = bigger;
      this.head = 0;
    }
    this.times[(this.head + this.size) % this.times.length] = t;
    this.size++;
  }
}

export function createDetector(cfg: DetectorConfig): Detector {
  switch (cfg.type) {
    case 'threshold':
      return new ThresholdDetector(cfg);
    case 'count_over':
      return new CountOverDetector(cfg);
  }
}
