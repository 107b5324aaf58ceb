/**
 * The event-time gate, first stage of the judge: a reading stamped more than `time.max_clock_skew`
 * ahead of the gateway clock is rejected and counted (so one bad clock cannot push the watermark
 * ahead); one stamped before `time.trusted_after` is flagged (counted; its anomalies carry
 * `clock_trusted: false`); one older than its source's watermark is late: dropped and counted, or
 * emitted as a late event (`time.late_policy`).
 */
import type { TimeConfig } from '../config/sections.js';
import type { Reading } from '../types.js';
import type { SourceClock } from './engine.js';

export interface GateCounters {
  late: number;
  future: number;
  untrustedClock: number;
}

/** What the gate decided: pass, or why not. */
export type Gate = 'pass' | 'future' | 'late';

export class EventTimeGate {
  readonly maxSkew: number;
  readonly trustedAfter: number;
  readonly emitLate: boolean;

  constructor(
    t: TimeConfig,
    private readonly counters: GateCounters,
  ) {
    this.maxSkew = t.max_clock_skew;
    this.trustedAfter = Date.parse(t.trusted_after);
    this.emitLate = t.late_policy === 'emit';
  }

  /** `now` is the gateway clock, read once per batch; `clockTrusted` is now >= trusted_after. */
  check(r: Reading, src: SourceClock, now: number, clockTrusted: boolean): Gate {
    const t = r.eventTime;
    const c = this.counters;
    if (clockTrusted && t > now + this.maxSkew) {
      c.future++;
      return 'future';
    }
    if (t < this.trustedAfter) {
      c.untrustedClock++;
    }
    if (t < src.watermark) {
      c.late++;
      return 'late';
    }
    return 'pass';
  }
}
