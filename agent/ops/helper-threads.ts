/**
 * The agent's helper threads give way to its main thread (issue 20). Readings become stops on the main
 * thread; beside it the process runs helpers: the store's writer thread (SQLite), libuv's thread pool
 * (the latch journal's fdatasync, file reads) and any worker thread (the model runner, a config reload).
 * Each wakes many times a second under load, and on a two-core gateway a woken helper takes the core from
 * the main thread in the middle of a reading. Measured at 5k readings/s: the main thread was switched out
 * involuntarily about 170 times a second, about 90 with the helpers at nice 19, and the p99 of reading →
 * stop fell with it (docs/plant-scale.md).
 *
 * V8's platform threads (started with the process, before any of the agent's code) are not lowered: the
 * main thread waits for them at the end of each garbage collection it shares with them, so a preempted
 * low-priority helper would hold the main thread (measured at 50k readings/s with them lowered: a single
 * 82 ms scavenge). They are told apart from libuv's pool, which Node's module loader has already started
 * by then, by a probe: one short key derivation per pool thread (crypto.pbkdf2 runs on the pool), and the
 * threads that ran it are the pool.
 *
 * On Linux a thread has its own nice value (`setpriority(PRIO_PROCESS, tid)` acts on one thread). A thread
 * is only ever lowered, never raised: one already at the value or lower in priority (the whole agent
 * started with `nice`, or `Nice=` in the unit at a higher value) is left as it is. Threads made later
 * (workers start on reload) are found by {@link HelperThreads.lower}, which runs at start, after a reload
 * and every {@link SWEEP_MS}. Elsewhere (no /proc/self/task) it does nothing and says so once.
 */
import { pbkdf2, pbkdf2Sync } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import type { Logger } from '../log.js';

/** How often threads started since the last sweep are found (a sweep is one readdir and a syscall per thread). */
export const SWEEP_MS = 10_000;

/** The calling thread's id: `/proc/thread-self` links to `<pid>/task/<tid>`. */
export function ownThreadId(): number | undefined {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return undefined;
  }
}

/** A thread's time on a CPU in ns (first field of its schedstat), or 0 once it is gone. */
function cpuNs(tid: number): number {
  try {
    return Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return 0;
  }
}

/** Key-derivation iterations of one probe job: about 4 ms of CPU on a 2020s x86 core, more on a gateway's ARM. */
const PROBE_ITERATIONS = 10_000;
/** Probe rounds at most: a pool thread that got no CPU in one round (a busy machine) takes a job in the next. */
const PROBE_ROUNDS = 10;

/** CPU time of one probe job, run on the calling thread. */
function probeJobNs(): number {
  const t = process.cpuUsage();
  pbkdf2Sync('probe', 'pool', PROBE_ITERATIONS, 32, 'sha256');
  const d = process.cpuUsage(t);
  return (d.user + d.system) * 1000;
}

/**
 * Which of `candidates` (the calling thread aside) are libuv's pool threads. As many key derivations as the pool has threads
 * (UV_THREADPOOL_SIZE, default 4) are queued at once, and a thread that spent at least half a job's CPU
 * time meanwhile took one; rounds repeat until every pool thread was seen or {@link PROBE_ROUNDS}. A
 * thread starved in every round stays unfound (it keeps its priority); one of V8's would be taken for the
 * pool only if it worked half a job's time in a round.
 */
export async function findPoolThreads(candidates: readonly number[]): Promise<number[]> {
  const size = Math.min(1024, Math.max(1, Number(process.env.UV_THREADPOOL_SIZE) || 4));
  const self = ownThreadId();
  const others = candidates.filter((t) => t !== self);
  const found = new Set<number>();
  for (let round = 0; round < PROBE_ROUNDS && found.size < size; round++) {
    const min = probeJobNs() / 2;
    const before = new Map(others.map((t) => [t, cpuNs(t)]));
    await Promise.all(
      Array.from(
        { length: size },
        () => new Promise((resolve) => pbkdf2('probe', 'pool', PROBE_ITERATIONS, 32, 'sha256', resolve)),
      ),
    );
    for (const t of others) if (cpuNs(t) - (before.get(t) ?? 0) >= min) found.add(t);
  }
  return others.filter((t) => found.has(t));
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
  private timer: NodeJS.Timeout | undefined;
  private warned = false;
  private readonly main: number | undefined;
  /** Threads there before the agent's code ran (V8's platform threads, libuv's pool once started). */
  private readonly early: ReadonlySet<number>;
  /** Threads left at the process's priority: the main thread and V8's; known after the first start. */
  private kept: ReadonlySet<number> | undefined;

  /** Must be made on the thread that stays at full priority (the main thread), before the agent starts threads. */
  constructor(
    private nice: number,
    private readonly logger: Logger,
  ) {
    this.main = ownThreadId();
    this.early = new Set(threadIds() ?? []);
  }

  /**
   * Finds libuv's pool among the threads that were there early (and starts it if it was not), then lowers
   * every helper and sweeps every {@link SWEEP_MS}.
   */
  async start(): Promise<void> {
    if (this.nice <= 0) return;
    if (!this.kept && this.main !== undefined) {
      // The early threads but the pool: the main thread (never taken for the pool) and V8's.
      const early = [...this.early];
      const pool = new Set(await findPoolThreads(early));
      this.kept = new Set(early.filter((t) => !pool.has(t)));
      const lowered = this.lower();
      this.logger.info(
        { nice: this.nice, lowered, kept: [...this.kept].sort((a, b) => a - b) },
        "helper threads lowered; the main thread and V8's keep the process's priority",
      );
    } else this.lower();
    this.timer ??= setInterval(() => this.lower(), SWEEP_MS);
    this.timer.unref();
  }

  /** A new nice value (reload): applies to threads above it; a thread already lower is not raised. */
  async configure(nice: number): Promise<void> {
    this.nice = nice;
    if (nice <= 0) this.stop();
    else await this.start();
  }

  /** Sets every thread but the kept ones whose nice value is below the configured one. Returns how many. */
  lower(): number {
    const ids = threadIds();
    if (ids === undefined || this.main === undefined) {
      if (!this.warned) this.logger.info('helper threads keep their priority: no /proc/self/task on this system');
      this.warned = true;
      return 0;
    }
    let n = 0;
    for (const tid of ids) {
      if (tid === this.main || this.kept?.has(tid)) continue;
      try {
        if (getPriority(tid) >= this.nice) continue;
        setPriority(tid, this.nice);
        n++;
      } catch (err) {
        // ESRCH: the thread ended between the listing and the call; anything else is a refusal (logged once).
        if ((err as { info?: { code?: string } }).info?.code === 'ESRCH') continue;
        if (!this.warned) this.logger.warn({ tid, err: (err as Error).message }, 'cannot lower a helper thread');
        this.warned = true;
      }
    }
    return n;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
