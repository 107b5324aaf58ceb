/**
 * Liveness: decides whether the agent is still doing its job and, under systemd, pings the watchdog
 * (WATCHDOG=1) only when it is. The check runs on the same event loop as the pipeline, so a detector
 * or driver that blocks the loop stops the pings; on top of that it withholds them when
 *  - the loop stalled longer than `maxLagMs` since the last check (stop commands would be that late), or
 *  - the store's writer thread made no progress on a non-empty backlog for `storeStallMs`.
 * A quiet sensor is deliberately not a reason: restarting the agent would interrupt protection of
 * every machine, and reconnecting a source is its supervisor's job.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import type { Telemetry } from '../telemetry.js';

export interface LivenessOptions {
  /** How often to check (and ping). Under systemd: a third of WatchdogSec. */
  readonly intervalMs: number;
  readonly maxLagMs: number;
  readonly storeStallMs: number;
  /** Current store progress; undefined while no store is open (reload in progress). */
  readonly store: () => { readonly backlog: number; readonly persisted: number } | undefined;
  /** Sends WATCHDOG=1; absent when not supervised by a watchdog. */
  readonly ping?: () => void;
  readonly logger: Logger;
  readonly telemetry?: Telemetry;
  readonly now?: () => number;
}

export interface LivenessResult {
  readonly ok: boolean;
  readonly reasons: readonly string[];
  readonly at: number;
}

export class Liveness {
  private readonly now: () => number;
  private histogram: IntervalHistogram | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastPersisted = -1;
  private lastProgressAt: number;
  last: LivenessResult;
  private lastTickAt: number | undefined;

  constructor(private readonly opts: LivenessOptions) {
    this.now = opts.now ?? Date.now;
    this.lastProgressAt = this.now();
    this.last = { ok: true, reasons: [], at: this.lastProgressAt };
  }

  start(): void {
    this.lastTickAt = undefined;
    this.histogram = monitorEventLoopDelay({ resolution: 10 });
    this.histogram.enable();
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.histogram?.disable();
  }

  /** Evaluates the checks with the loop delay observed since the previous call. */
  check(loopDelayMs: number): LivenessResult {
    const now = this.now();
    const reasons: string[] = [];
    if (loopDelayMs > this.opts.maxLagMs) {
      reasons.push(`event loop stalled ${Math.round(loopDelayMs)} ms (limit ${this.opts.maxLagMs} ms)`);
      this.opts.telemetry?.watchdogWithheld.inc({ reason: 'event_loop' });
    }
    const store = this.opts.store();
    if (!store || store.backlog === 0 || store.persisted !== this.lastPersisted) this.lastProgressAt = now;
    if (store) this.lastPersisted = store.persisted;
    if (now - this.lastProgressAt > this.opts.storeStallMs) {
      reasons.push(`store writer made no progress for ${now - this.lastProgressAt} ms with ${store?.backlog} events waiting`);
      this.opts.telemetry?.watchdogWithheld.inc({ reason: 'store' });
    }
    const ok = reasons.length === 0;
    if (!ok && this.last.ok)
      this.opts.logger.error({ reasons }, 'liveness check failed; watchdog pings withheld, systemd will restart the agent');
    else if (ok && !this.last.ok) this.opts.logger.warn({ was: this.last.reasons }, 'liveness recovered');
    this.last = { ok, reasons, at: now };
    return this.last;
  }

  private tick(): void {
    const h = this.histogram;
    // The histogram can record a stall only after this timer has already run and reset it, so the
    // lateness of this very timer is measured too: either one catches a blocked loop.
    const t = performance.now();
    const late = this.lastTickAt === undefined ? 0 : t - this.lastTickAt - this.opts.intervalMs;
    this.lastTickAt = t;
    const delayMs = Math.max(h ? h.max / 1e6 : 0, late);
    h?.reset();
    if (this.check(delayMs).ok) {
      this.opts.ping?.();
      this.opts.telemetry?.watchdogPings.inc();
    }
  }
}
