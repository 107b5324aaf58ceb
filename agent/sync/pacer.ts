/**
 * Detection goes first: while a backlog drains, the agent's own event loop is watched, and when it is
 * delayed more than it is when nothing drains, the sync process pauses between the parts of a page.
 *
 * The sync process runs at a low priority (`sync.kafka.nice`), but that only ranks its own threads:
 * what a drain sets going elsewhere on the gateway (a local broker or proxy, interrupts, memory
 * traffic) competes with the detection thread at full priority. The event loop's delay is what a
 * reading on its way to a stop waits for, so it is the signal.
 *
 * Every `intervalMs` the 99th percentile of the loop's delay is sampled. While nothing drains it
 * sets the baseline (a moving average); while draining, the baseline only goes down. A sample above
 * 1.2 × baseline + `slackMs` doubles the pause (from `minPauseMs` up to `maxPauseMs`); a sample below
 * it shrinks the pause by 30 % until it ends.
 */
export interface PacerOptions {
  readonly minPauseMs: number;
  readonly maxPauseMs: number;
  /** Absolute slack over 1.2 × baseline before a sample counts as pressure (timer noise). */
  readonly slackMs: number;
}

export const PACER_DEFAULTS: PacerOptions = { minPauseMs: 10, maxPauseMs: 200, slackMs: 1 };

export class DrainPacer {
  private baseline: number | undefined;
  /** Pause between the parts of a page now (ms; 0: none). */
  pauseMs = 0;

  constructor(private readonly opts: PacerOptions = PACER_DEFAULTS) {}

  /** One sample of the loop delay's p99 (ms); returns the pause to apply. */
  sample(p99Ms: number, draining: boolean): number {
    if (!Number.isFinite(p99Ms) || p99Ms < 0) return this.pauseMs;
    if (!draining) {
      this.baseline = this.baseline === undefined ? p99Ms : this.baseline * 0.8 + p99Ms * 0.2;
      this.pauseMs = 0;
      return 0;
    }
    this.baseline = this.baseline === undefined ? p99Ms : Math.min(this.baseline, p99Ms);
    if (p99Ms > this.baseline * 1.2 + this.opts.slackMs)
      this.pauseMs = Math.min(this.opts.maxPauseMs, Math.max(this.opts.minPauseMs, this.pauseMs * 2));
    else {
      this.pauseMs *= 0.7;
      if (this.pauseMs < this.opts.minPauseMs) this.pauseMs = 0;
    }
    return this.pauseMs;
  }

  /** The loop delay p99 taken as normal (ms), or undefined before the first sample. */
  get normal(): number | undefined {
    return this.baseline;
  }
}
