/**
 * The agent's helper threads give way to its main thread (issue 20). Readings become stops on the main
 * thread; beside it the process runs helpers: the store's writer thread (SQLite), libuv's thread pool
 * (the latch journal's fdatasync, file reads), V8's platform threads (garbage-collection helpers, the
 * compiler) and any worker thread (the model runner, a config reload). Each wakes many times a second
 * under load, and on a two-core gateway a woken helper takes the core from the main thread in the middle
 * of a reading. Measured at 5k readings/s: the main thread was switched out involuntarily about 170 times
 * a second, about 80 with the helpers at nice 19, and the p99 of reading → stop fell with it (README,
 * "Plant scale").
 *
 * On Linux a thread has its own nice value (`setpriority(PRIO_PROCESS, tid)` acts on one thread), so
 * every thread of the process except the main thread is set to the configured value. A thread is only
 * ever lowered, never raised: one already at that value or lower in priority (the whole agent started
 * with `nice`, or `Nice=` in the unit at a higher value) is left as it is. Threads made later (the pool
 * starts on its first task, workers start on reload) are found by {@link HelperThreads.lower}, which the
 * service calls at start, after a reload and every {@link SWEEP_MS}. Elsewhere (no /proc/self/task) it
 * does nothing and says so once.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { getPriority, setPriority } from 'node:os';
import type { Logger } from '../log.js';

/** How often threads started since the last sweep are found (a sweep is one readdir and a syscall per thread). */
export const SWEEP_MS = 10_000;

export interface HelperThreadStats {
  /** Threads set to the configured nice value, in all sweeps. */
  lowered: number;
  /** Threads that could not be set (not permitted); the first error is logged. */
  failed: number;
}

/** The calling thread's id: `/proc/thread-self` links to `<pid>/task/<tid>`. */
export function ownThreadId(): number | undefined {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return undefined;
  }
}

/** Ids of this process's threads, or undefined where /proc/self/task does not exist. */
export function threadIds(): number[] | undefined {
  try {
    return readdirSync('/proc/self/task').map(Number);
  } catch {
    return undefined;
  }
}

export class HelperThreads {
  readonly stats: HelperThreadStats = { lowered: 0, failed: 0 };
  private timer: NodeJS.Timeout | undefined;
  private warned = false;
  private readonly main: number | undefined;

  /** Must be made on the thread that stays at full priority (the main thread). */
  constructor(
    private nice: number,
    private readonly logger: Logger,
  ) {
    this.main = ownThreadId();
  }

  /**
   * Starts libuv's thread pool (all its threads start with its first task) so that it is lowered now, not
   * at the first trip's journal flush, then lowers every helper and sweeps every {@link SWEEP_MS}.
   */
  async start(): Promise<void> {
    if (this.nice <= 0) return;
    await stat('.').catch(() => {});
    this.lower();
    this.timer ??= setInterval(() => this.lower(), SWEEP_MS);
    this.timer.unref();
  }

  /** A new nice value (reload): applies to threads above it; a thread already lower is not raised. */
  async configure(nice: number): Promise<void> {
    this.nice = nice;
    if (nice <= 0) this.stop();
    else await this.start();
  }

  /** Sets every thread but the main one whose nice value is below the configured one. Returns how many. */
  lower(): number {
    const ids = threadIds();
    if (ids === undefined || this.main === undefined) {
      if (!this.warned) this.logger.info('helper threads keep their priority: no /proc/self/task on this system');
      this.warned = true;
      return 0;
    }
    let n = 0;
    for (const tid of ids) {
      if (tid === this.main) continue;
      try {
        if (getPriority(tid) >= this.nice) continue;
        setPriority(tid, this.nice);
        n++;
      } catch (err) {
        // ESRCH: the thread ended between the listing and the call; anything else is a refusal.
        if ((err as { info?: { code?: string } }).info?.code === 'ESRCH') continue;
        this.stats.failed++;
        if (!this.warned) this.logger.warn({ tid, err: (err as Error).message }, 'cannot lower a helper thread');
        this.warned = true;
      }
    }
    this.stats.lowered += n;
    return n;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
