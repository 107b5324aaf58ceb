import type { SensorConfig } from '../../config/sections.js';
import type { Quality } from '../../types.js';
import { type Change, ScalarDetector } from '../common.js';
import type { OutOfRangeConfig } from './schema.js';

export class OutOfRangeDetector extends ScalarDetector<OutOfRangeConfig> {
  private min = Number.NEGATIVE_INFINITY;
  private max = Number.POSITIVE_INFINITY;
  private faultMask = 0;
  private up = 0;
  private down = 0;
  private lastQuality: Quality = 'good';
  private lastValue = 0;

  constructor(
    cfg: OutOfRangeConfig,
    private readonly sensor?: Pick<SensorConfig, 'min' | 'max'>,
  ) {
    super(cfg);
    this.prepare();
  }

  protected override prepare(): void {
    const c = this.cfg;
    this.min = c.min ?? this.sensor?.min ?? Number.NEGATIVE_INFINITY;
    this.max = c.max ?? this.sensor?.max ?? Number.POSITIVE_INFINITY;
    this.faultMask = 0;
    for (const f of c.faults) this.faultMask |= QUALITY_BIT[f];
  }

  judge(_t: number, x: number, quality: Quality): Change {
    this.lastQuality = quality;
    this.lastValue = x;
    const fault = (QUALITY_BIT[quality] & this.faultMask) !== 0 || Number.isNaN(x) || x < this.min || x > this.max;
    const n = this.cfg.persistence;
    if (!this.active) {
      this.up = fault ? this.up + 1 : 0;
      if (this.up >= n) {
        this.active = true;
        this.down = 0;
        return 1;
      }
    } else {
      this.down = fault ? 0 : this.down + 1;
      if (this.down >= n) {
        this.active = false;
        this.up = 0;
        return -1;
      }
    }
    return 0;
  }

  evidence(): Record<string, unknown> {
    const min = Number.isFinite(this.min) ? this.min : null;
    const max = Number.isFinite(this.max) ? this.max : null;
    const x = this.lastValue;
    const reason =
      this.lastQuality !== 'good'
        ? `quality_${this.lastQuality}`
        : x < this.min
          ? 'below_min'
          : x > this.max
            ? 'above_max'
            : 'ok';
    return { min, max, limit: x < this.min ? min : max, quality: this.lastQuality, reason };
  }
}

const QUALITY_BIT: Record<Quality, number> = { good: 0, stale: 1, comm_error: 2, bad: 4 };
