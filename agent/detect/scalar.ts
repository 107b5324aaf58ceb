/**
 * The base of every per-sensor detector (agent/detect/detectors.ts, agent/detectors/<type>/): in
 * its own module so detector types in their own folders can extend it without an import cycle.
 */
import type { DetectorConfig } from '../config/schema.js';
import type { Anomaly, Quality, Reading } from '../types.js';

export type ScalarConfig = Exclude<DetectorConfig, { type: 'multivariate' }>;

/** 1 = raised, -1 = cleared, 0 = no change. */
export type Change = -1 | 0 | 1;

export abstract class ScalarDetector<C extends ScalarConfig = ScalarConfig> {
  active = false;
  /** Count of inputs skipped because they were older than the last one judged (order-sensitive detectors). */
  outOfOrder = 0;

  constructor(public cfg: C) {}

  get id(): string {
    return this.cfg.id;
  }

  /** Judges one value at event time `t`. `quality` is the reading's (window features are 'good'). */
  abstract judge(t: number, x: number, quality: Quality): Change;

  /** What the detector saw at its last change of state: limits and score. */
  abstract evidence(): Record<string, unknown>;

  /** Replaces the parameters (already validated), keeping learned state and the alarm state. */
  reconfigure(cfg: C): void {
    this.cfg = cfg;
    this.prepare();
  }

  /** Forgets the learned baseline and learns again from the next inputs. */
  relearn(): void {}

  /** Learning state for status and control replies. */
  learning(): boolean {
    return false;
  }

  protected prepare(): void {}

  /** Point-mode convenience (tests, tools): judges a reading and builds the anomaly. */
  update(r: Reading): Anomaly | undefined {
    const c = this.judge(r.eventTime, r.value, r.quality);
    return c === 0 ? undefined : this.anomaly(c, r.eventTime, r.value, undefined);
  }

  anomaly(change: Change, t: number, value: number, extra: Record<string, unknown> | undefined): Anomaly {
    const c = this.cfg;
    return {
      detector: c.id,
      detectorType: c.type,
      asset: c.asset,
      sensor: c.sensor,
      severity: c.severity,
      state: change === 1 ? 'raised' : 'cleared',
      eventTime: t,
      value,
      trip: c.trip,
      evidence: extra ? { ...this.evidence(), ...extra } : this.evidence(),
    };
  }
}
