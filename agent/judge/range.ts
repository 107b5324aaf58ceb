/**
 * Range trips: a reading past a sensor's physical range (`min`/`max`) on the side a tripping
 * detector of that sensor watches raises `range:above_max`/`range:below_min` (tripping), cleared by
 * the next good reading inside it. A value the sensor cannot measure is the worst case, not a gap.
 * Only sensors feeding tripping detectors, with `range_trip` not false.
 */
import type { AssetConfig } from '../config/sections.js';
import { type DetectorConfig, sensorsOf, sidesOf } from '../detectors/registry.js';
import type { Anomaly, Reading } from '../types.js';

export class RangeTrip {
  /** Detector ids watching the high (max) / low (min) side; empty: that side is not checked. */
  readonly high: string[] = [];
  readonly low: string[] = [];
  /** 1: past max raised, -1: past min raised, 0: none. */
  private active: -1 | 0 | 1 = 0;

  constructor(
    readonly asset: string,
    readonly sensor: string,
    readonly min: number,
    readonly max: number,
  ) {}

  /** The anomalies this reading raises or clears (cleared first), handed to `handle` in order. */
  check(r: Reading, handle: (a: Anomaly) => void): void {
    // comm_error and stale readings carry no measurement; bad ones past the range do (reading.ts).
    if (r.quality !== 'good' && r.quality !== 'bad') return;
    const past = r.value > this.max && this.high.length > 0 ? 1 : r.value < this.min && this.low.length > 0 ? -1 : 0;
    if (past === this.active) return;
    if (this.active !== 0) {
      if (past === 0 && r.quality !== 'good') return; // still no trustworthy value: keep it raised
      handle(this.anomaly(this.active, 'cleared', r));
    }
    this.active = past;
    if (past !== 0) handle(this.anomaly(past, 'raised', r));
  }

  private anomaly(side: 1 | -1, state: 'raised' | 'cleared', r: Reading): Anomaly {
    return {
      detector: side === 1 ? 'range:above_max' : 'range:below_min',
      detectorType: 'range',
      asset: this.asset,
      sensor: this.sensor,
      severity: 'critical',
      state,
      eventTime: r.eventTime,
      value: r.value,
      trip: true,
      evidence: side === 1 ? { max: this.max, watched_by: this.high } : { min: this.min, watched_by: this.low },
    };
  }
}

/** The range trips of every sensor that has one, by asset and sensor. */
export function rangeTrips(
  assets: readonly AssetConfig[],
  detectors: readonly DetectorConfig[],
): Map<string, Map<string, RangeTrip>> {
  const out = new Map<string, Map<string, RangeTrip>>();
  for (const d of detectors) {
    if (!d.trip) continue;
    const sides = sidesOf(d);
    for (const sensor of sensorsOf(d)) {
      const cfg = assets.find((a) => a.id === d.asset)?.sensors.find((s) => s.id === sensor);
      if (!cfg || cfg.range_trip === false) continue;
      let bySensor = out.get(d.asset);
      if (!bySensor) out.set(d.asset, (bySensor = new Map()));
      let g = bySensor.get(sensor);
      if (!g) {
        g = new RangeTrip(d.asset, sensor, cfg.min ?? Number.NEGATIVE_INFINITY, cfg.max ?? Number.POSITIVE_INFINITY);
        bySensor.set(sensor, g);
      }
      if (sides.high && cfg.max !== undefined) g.high.push(d.id);
      if (sides.low && cfg.min !== undefined) g.low.push(d.id);
    }
  }
  return out;
}
