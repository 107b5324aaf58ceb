/**
 * The agent's one backoff: exponential from `baseMs`, capped at `maxMs`, with jitter, reset on success.
 * It answers "how long until the next attempt?" and "may I try again now?" without sleeping, so a
 * caller can sleep, set a timer, or skip (a Modbus unit) as it needs.
 */

export interface BackoffOptions {
  /** Delay after the first failure; doubles per failure. */
  readonly baseMs: number;
  readonly maxMs: number;
  /**
   * Default true: the delay is uniform in [ceiling/2, ceiling], so gateways that lost the same broker
   * do not retry in step. false: exactly the ceiling (a fixed retry gate).
   */
  readonly jitter?: boolean;
  readonly random?: () => number;
}

/** The delay before attempt `failures + 1`, after `failures` (0-based: 0 = the first failure) failures. */
export function backoffDelay(failures: number, opts: BackoffOptions): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(failures, 20));
  if (opts.jitter === false) return ceiling;
  const random = opts.random ?? Math.random;
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Failure count and the earliest time of the next attempt. */
export class Backoff {
  failures = 0;
  private until = 0;

  constructor(private readonly opts: BackoffOptions) {}

  /** Whether an attempt is allowed at `now`. */
  ready(now: number): boolean {
    return now >= this.until;
  }

  /** Records a failure at `now`; returns the delay until the next attempt is allowed. */
  fail(now = 0): number {
    const delay = backoffDelay(this.failures++, this.opts);
    this.until = now + delay;
    return delay;
  }

  succeed(): void {
    this.failures = 0;
    this.until = 0;
  }

  /** Allows the next attempt at once (an explicit flush); the failure count stays. */
  retryNow(): void {
    this.until = 0;
  }

  get failing(): boolean {
    return this.failures > 0;
  }
}
