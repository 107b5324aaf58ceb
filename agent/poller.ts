/**
 * The framework piece for polling drivers, so each driver only says what one poll does: a fixed-rate
 * cadence (slots at start + k·interval, never drifting), at most one poll in flight, overruns skipped
 * and counted, a failing poll never stops the cadence. Retry pacing is `Backoff` (backoff.ts).
 */
import type { Logger } from './log.js';
import { RateLimitedLog } from './log.js';

export interface PollerOptions {
  /** Bounded label for logs: a device or unit id. */
  readonly name: string;
  readonly intervalMs: number;
  /** One poll. A rejection is counted and logged (rate-limited); the cadence goes on. */
  readonly poll: () => Promise<void>;
  readonly logger: Logger;
  readonly now?: () => number;
}

export interface PollerStats {
  /** Slots skipped because the previous poll was still running (the driver publishes them per device). */
  overruns: number;
}

export class Poller {
  readonly stats: PollerStats = { overruns: 0 };
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private running = false;
  private next = 0;
  private readonly now: () => number;
  private readonly errors = new RateLimitedLog(60_000);

  constructor(private readonly opts: PollerOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Polls now, then every interval. Idempotent. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.next = this.now();
    this.tick();
  }

  private tick(): void {
    if (!this.running) return;
    this.timer = undefined;
    this.inFlight = this.opts.poll().then(
      () => {},
      (err: Error) => {
        this.errors.log(this.opts.logger, 'warn', 'poll', { poller: this.opts.name, err: err.message }, 'poll failed');
      },
    );
    void this.inFlight.then(() => this.schedule());
  }

  private schedule(): void {
    this.inFlight = undefined;
    if (!this.running) return;
    const interval = this.opts.intervalMs;
    const t = this.now();
    if (interval <= 0) {
      // Back to back (benchmarks): yield to the event loop between polls, nothing to skip.
      this.next = t;
      this.timer = setTimeout(() => this.tick(), 0);
      return;
    }
    this.next += interval;
    if (this.next <= t) {
      // The poll took longer than a slot: skip to the next future slot instead of bursting to catch up.
      const missed = Math.floor((t - this.next) / interval) + 1;
      this.stats.overruns += missed;
      this.next += missed * interval;
    }
    this.timer = setTimeout(() => this.tick(), this.next - t);
  }

  /** Stops the cadence and waits for a poll in flight. Idempotent. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }
}
