/**
 * The main thread's side of the event store. `append()` only queues (O(1), no I/O); batches go to
 * the writer thread on a timer or when a batch fills. A failed write keeps its rows queued and is
 * retried, so an accepted event is never dropped because the disk hiccuped.
 */
import { type MessagePort, Worker } from 'node:worker_threads';
import { Backoff } from '../backoff.js';
import type { Logger } from '../log.js';
import { keepAfterWorkerStarts } from '../ops/young-gen.js';
import { type AgentEvent, EVENT_KINDS, EVENT_PRIORITY, type EventKind } from '../types.js';
import { workerUrl } from '../worker-url.js';
import type { EventRow, Synchronous } from './db.js';
import type { KeeperLimits, KeeperStats } from './keeper.js';
import type { WriterData, WriterReply, WriterRequest } from './worker.js';

const NO_LIMITS: KeeperLimits = {
  maxBytes: 0,
  minFreeBytes: 0,
  retentionAgeMs: Number.MAX_SAFE_INTEGER,
  retentionBytes: Number.MAX_SAFE_INTEGER,
};
const ALARM_INTERVAL_MS = 60_000;

export interface StoreOptions {
  readonly path: string;
  readonly synchronous: Synchronous;
  readonly flushInterval: number;
  readonly batchSize: number;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Cap, floor and retention (default: none). */
  readonly limits?: KeeperLimits;
  /** Events held in memory while the store cannot be written; beyond it routine events are dropped first. */
  readonly memoryBuffer?: number;
  /** Key of the store's alarm events. */
  readonly gatewayId?: string;
}

export interface StoreStats {
  /** Events handed to `append()`. */
  accepted: number;
  /** Events the writer committed. */
  persisted: number;
  /** Write attempts that failed (rows were kept and retried). */
  writeErrors: number;
  lastSeq: number;
  lastError: string | undefined;
  /** Cursor, unsent/synced sizes and evictions, as the writer last reported them. */
  keeper: KeeperStats | undefined;
  /** Events dropped from the memory buffer (store unwritable and the buffer full), by kind. */
  dropped: Record<string, number>;
  /** Unsent events evicted by the store limits since this store was opened, by kind. */
  evicted: Record<string, number>;
  /** The store could not be opened: events are held in memory (bounded) and opening is retried. */
  degraded: boolean;
  /** The last write failed and no write has succeeded since (events held in memory, retried). */
  failing: boolean;
}

export class EventStore {
  readonly stats: StoreStats = {
    accepted: 0,
    persisted: 0,
    writeErrors: 0,
    lastSeq: 0,
    lastError: undefined,
    keeper: undefined,
    dropped: Object.fromEntries(EVENT_KINDS.map((k) => [k, 0])),
    evicted: Object.fromEntries(EVENT_KINDS.map((k) => [k, 0])),
    degraded: false,
    failing: false,
  };
  /** Where alarms go (the agent points this at its emit, so taps see them); default: this store. */
  alarmSink: (ev: AgentEvent) => void = (ev) => this.append(ev);
  private readonly alarmAt = new Map<string, number>();
  private evictedSinceAlarm: Record<string, number> = {};
  private syncPort: MessagePort | undefined;
  private reopenTimer: NodeJS.Timeout | undefined;
  private quarantineInfo: { quarantined: string; reason: string } | undefined;
  private worker: Worker | undefined;
  private pending: EventRow[] = [];
  private readonly inFlight = new Map<number, readonly EventRow[]>();
  private nextId = 1;
  private timer: NodeJS.Timeout | undefined;
  /** Gates rewriting after a failed write: once a second, no jitter (one local disk, no herd). */
  private readonly retry = new Backoff({ baseMs: 1000, maxMs: 1000, jitter: false });
  private readonly waiters: Array<() => void> = [];
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly opts: StoreOptions) {
    this.now = opts.now ?? Date.now;
  }

  async open(): Promise<void> {
    const worker = keepAfterWorkerStarts(
      new Worker(workerUrl(import.meta.url), {
        workerData: {
          path: this.opts.path,
          synchronous: this.opts.synchronous,
          limits: this.opts.limits ?? NO_LIMITS,
        } satisfies WriterData,
      }),
    );
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: WriterReply) => {
        if (m.op === 'ready') {
          this.stats.lastSeq = m.lastSeq;
          this.stats.keeper = m.stats;
          if (m.quarantined) this.quarantineInfo = { quarantined: m.quarantined, reason: m.reason ?? 'corrupt' };
          resolve();
        } else if (m.op === 'error') reject(Object.assign(new Error(m.message), { code: m.code }));
      };
      worker.once('message', onMessage);
      worker.once('error', reject);
    }).catch(async (err) => {
      await worker.terminate();
      throw new Error(`cannot open event store ${this.opts.path}: ${(err as Error).message}`, { cause: err });
    });
    worker.on('message', (m: WriterReply) => this.onReply(m));
    worker.on('error', (err) => {
      this.opts.logger.error({ err }, 'store writer thread failed');
      this.stats.lastError = err.message;
    });
    this.worker = worker;
    this.stats.degraded = false;
    if (this.syncPort) worker.postMessage({ op: 'sync-port', port: this.syncPort } satisfies WriterRequest, [this.syncPort]);
    this.syncPort = undefined;
    this.timer ??= setInterval(() => this.flushPending(), this.opts.flushInterval);
    this.timer.unref();
    if (this.quarantineInfo) {
      this.alarm('store_quarantined', 'corrupt event store quarantined; a fresh store was started', this.quarantineInfo);
      this.quarantineInfo = undefined;
    }
  }

  /** Set when the writer found the file corrupt at open and quarantined it (reported as an alarm). */
  noteQuarantine(quarantined: string, reason: string): void {
    this.quarantineInfo = { quarantined, reason };
  }

  /**
   * Like open(), but a store that cannot be opened (disk full, unwritable path) does not stop the
   * agent: events are held in memory within `memoryBuffer`, an alarm is raised and opening is
   * retried every `retryMs`.
   */
  async openOrDegrade(retryMs = 5000): Promise<void> {
    try {
      await this.open();
    } catch (err) {
      this.stats.degraded = true;
      this.stats.lastError = (err as Error).message;
      this.opts.logger.error(
        { err: (err as Error).message, path: this.opts.path },
        'event store cannot be opened; events are held in memory (bounded) and opening is retried',
      );
      this.alarm('store_unavailable', 'event store cannot be opened; buffering in memory', { error: (err as Error).message });
      this.reopenTimer = setInterval(() => {
        if (this.closed || this.worker) return;
        this.open().then(
          () => {
            if (this.reopenTimer) clearInterval(this.reopenTimer);
            this.reopenTimer = undefined;
            this.opts.logger.info({ path: this.opts.path }, 'event store opened');
            this.flushPending();
          },
          (e: Error) => {
            this.stats.lastError = e.message;
          },
        );
      }, retryMs);
      this.reopenTimer.unref();
    }
  }

  /** Gives the sync thread its own channel to the writer (for cursor commits and append notices). */
  connectSync(port: MessagePort): void {
    if (this.worker) this.worker.postMessage({ op: 'sync-port', port } satisfies WriterRequest, [port]);
    else this.syncPort = port;
  }

  /** Raises an alarm event at most once a minute per code. */
  alarm(code: string, message: string, details: Record<string, unknown> = {}): void {
    const at = this.now();
    if (at - (this.alarmAt.get(code) ?? Number.NEGATIVE_INFINITY) < ALARM_INTERVAL_MS) return;
    this.alarmAt.set(code, at);
    this.alarmSink({
      kind: 'alarm',
      key: this.opts.gatewayId ?? 'gateway',
      eventTime: at,
      payload: { type: 'store', code, message, ...details, at },
    });
  }

  private noteEvictions(evicted: Record<string, number> | undefined): void {
    if (!evicted) return;
    for (const [k, n] of Object.entries(evicted)) {
      this.evictedSinceAlarm[k] = (this.evictedSinceAlarm[k] ?? 0) + n;
      this.stats.evicted[k] = (this.stats.evicted[k] ?? 0) + n;
    }
    const at = this.now();
    if (at - (this.alarmAt.get('store_evicting') ?? Number.NEGATIVE_INFINITY) < ALARM_INTERVAL_MS) return;
    const counts = this.evictedSinceAlarm;
    this.evictedSinceAlarm = {};
    this.opts.logger.error({ evicted: counts }, 'event store full: unsent events evicted (routine first)');
    this.alarm('store_evicting', 'event store full: unsent events evicted', { evicted: counts });
  }

  /** Keeps the memory buffer within its bound: drops the oldest routine events first, then the oldest. */
  private shed(): void {
    const bound = this.opts.memoryBuffer ?? Number.POSITIVE_INFINITY;
    if (this.pending.length <= bound) return;
    const target = Math.floor(bound * 0.9);
    let excess = this.pending.length - target;
    const dropped: Record<string, number> = {};
    const keep: EventRow[] = [];
    for (const r of this.pending) {
      if (excess > 0 && EVENT_PRIORITY[r[0]] <= 1) {
        excess--;
        dropped[r[0]] = (dropped[r[0]] ?? 0) + 1;
      } else keep.push(r);
    }
    if (excess > 0) {
      for (const r of keep.splice(0, excess)) dropped[r[0]] = (dropped[r[0]] ?? 0) + 1;
    }
    this.pending = keep;
    for (const [k, n] of Object.entries(dropped)) this.stats.dropped[k as EventKind] = (this.stats.dropped[k] ?? 0) + n;
    this.opts.logger.error({ dropped }, 'event store unwritable and the memory buffer is full: events dropped (routine first)');
    this.alarm('store_memory_full', 'event store unwritable and the memory buffer full: events dropped', { dropped });
  }

  /** Queues an event. Never blocks, never throws on I/O. */
  append(ev: AgentEvent): void {
    this.stats.accepted++;
    this.pending.push([ev.kind, ev.key, ev.eventTime, this.now(), JSON.stringify(ev.payload)]);
    if (this.pending.length >= this.opts.batchSize) {
      if (this.worker) this.scheduleFlush();
      else if (this.pending.length > (this.opts.memoryBuffer ?? Number.POSITIVE_INFINITY)) this.shed();
    }
  }

  get backlog(): number {
    let n = this.pending.length;
    for (const rows of this.inFlight.values()) n += rows.length;
    return n;
  }

  /**
   * Hands one batch (≤ `batch_size` rows) to the writer per event-loop turn: copying rows to the writer
   * thread is main-thread work, so a large backlog is spread over turns with I/O between them instead of
   * stalling the readings behind it (issue 20).
   */
  private flushPending(): void {
    if (!this.worker || this.pending.length === 0 || !this.retry.ready(this.now())) return;
    let rows: EventRow[];
    if (this.pending.length <= this.opts.batchSize) {
      rows = this.pending;
      this.pending = [];
    } else rows = this.pending.splice(0, this.opts.batchSize);
    const id = this.nextId++;
    this.inFlight.set(id, rows);
    this.worker.postMessage({ op: 'append', id, rows } satisfies WriterRequest);
    if (this.pending.length > 0) this.scheduleFlush();
  }

  private flushScheduled = false;
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushPending();
    });
  }

  private onReply(m: WriterReply): void {
    if (m.op === 'appended') {
      this.inFlight.delete(m.id);
      this.stats.persisted += m.count;
      this.stats.lastSeq = m.lastSeq;
      this.stats.keeper = m.stats;
      this.noteEvictions(m.evicted);
      this.retry.succeed();
      this.stats.failing = false;
    } else if (m.op === 'stats') {
      this.stats.keeper = m.stats;
      this.noteEvictions(m.evicted);
    } else if (m.op === 'error') {
      const failed = this.inFlight.get(m.id);
      this.inFlight.delete(m.id);
      this.stats.writeErrors++;
      this.stats.failing = true;
      if (this.stats.lastError !== m.message)
        this.opts.logger.error({ code: m.code, err: m.message }, 'event store write failed; events kept in memory and retried');
      this.stats.lastError = m.message;
      // Keep order: failed rows go back in front of anything queued since.
      if (failed) this.pending = [...failed, ...this.pending];
      this.shed();
      this.retry.fail(this.now());
    }
    if (this.inFlight.size === 0 && this.pending.length === 0) {
      for (const w of this.waiters.splice(0)) w();
    }
  }

  /** Resolves once every event appended so far is committed (or `timeoutMs` passes: then rejects). */
  async flush(timeoutMs = 30_000): Promise<void> {
    this.retry.retryNow();
    this.flushPending();
    if (this.inFlight.size === 0 && this.pending.length === 0) return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(
        () =>
          reject(
            new Error(`store flush timed out with ${this.backlog} events unwritten: ${this.stats.lastError ?? 'writer busy'}`),
          ),
        timeoutMs,
      );
      const retry = setInterval(() => {
        this.retry.retryNow();
        this.flushPending();
      }, 200);
      this.waiters.push(() => {
        clearTimeout(t);
        clearInterval(retry);
        resolve();
      });
    });
  }

  /** Flushes (for at most `flushTimeoutMs`) and closes. Idempotent. */
  async close(flushTimeoutMs = 30_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.reopenTimer) clearInterval(this.reopenTimer);
    const worker = this.worker;
    if (!worker) return;
    try {
      await this.flush(flushTimeoutMs);
    } finally {
      await new Promise<void>((resolve) => {
        const id = this.nextId++;
        const t = setTimeout(resolve, 5000);
        worker.on('message', (m: WriterReply) => {
          if (m.op === 'closed' && m.id === id) {
            clearTimeout(t);
            resolve();
          }
        });
        worker.postMessage({ op: 'close', id } satisfies WriterRequest);
      });
      await worker.terminate();
      this.worker = undefined;
    }
  }
}
