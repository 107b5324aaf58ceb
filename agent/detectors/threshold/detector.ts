import type { Quality } from '../../types.js';
import { type Change, ScalarDetector } from '../common.js';
import type { ThresholdConfig } from './schema.js';

export class ThresholdDetector extends ScalarDetector<ThresholdConfig> {
  private raiseAt = 0;
  private clearAt = 0;
  private sign = 1;

  constructor(cfg: ThresholdConfig) {
    super(cfg);
    this.prepare();
  }

  protected override prepare(): void {
    const c = this.cfg;
    // Work in "above" terms: for direction below, negate values and limits.
    this.sign = c.direction === 'above' ? 1 : -1;
    this.raiseAt = this.sign * c.setpoint + c.delta_up;
    this.clearAt = this.sign * c.setpoint - c.delta_down;
  }

  judge(_t: number, x: number, quality: Quality): Change {
    if (quality !== 'good' || Number.isNaN(x)) return 0;
    const v = this.sign * x;
    if (!this.active && v > this.raiseAt) {
      this.active = true;
      return 1;
    }
    if (this.active && v < this.clearAt) {
      this.active = false;
      return -1;
    }
    return 0;
  }

  evidence(): Record<string, unknown> {
    const c = this.cfg;
    return {
      direction: c.direction,
      setpoint: c.setpoint,
      limit: this.sign * this.raiseAt,
      raise_at: this.sign * this.raiseAt,
      clear_at: this.sign * this.clearAt,
    };
  }
}
