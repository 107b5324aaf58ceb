/**
 * The main thread's side of the event store. `append()` only queues (O(1), no I/O); batches go to
 * the writer thread on a timer or when a batch fills. A failed write keeps its rows queued and is
 * retried, so an accepted event is never dropped because the disk hiccuped.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.js';
import type { AgentEvent } from '../types.js';
import type { EventRow, Synchronous } from './db.js';
import type { WriterReply, WriterRequest } from './worker.js';

export interface StoreOptions {
  readonly path: string;
  readonly synchronous: Synchronous;
  readonly flushInterval: number;
  readonly batchSize: number;
  readonly logger: Logger;
  readonly now?: () => number;
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
}

export class EventStore {
  readonly stats: StoreStats = { accepted: 0, persisted: 0, writeErrors: 0, lastSeq: 0, lastError: undefined };
  private worker: Worker | undefined;
  private pending: EventRow[] = [];
  private readonly inFlight = new Map<number, readonly EventRow[]>();
  private nextId = 1;
  private timer: NodeJS.Timeout | undefined;
  private retryAt = 0;
  private readonly waiters: Array<() => void> = [];
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly opts: StoreOptions) {
    this.now = opts.now ?? Date.now;
  }

  async open(): Promise<void> {
    const worker = new Worker(new URL('./worker-entry.mjs', import.meta.url), {
      workerData: { path: this.opts.path, synchronous: this.opts.synchronous },
    });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: WriterReply) => {
        if (m.op === 'ready') {
          this.stats.lastSeq = m.lastSeq;
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
    this.timer = setInterval(() => this.flushPending(), this.opts.flushInterval);
    this.timer.unref();
  }

  /** Queues an event. Never blocks, never throws on I/O. */
  append(ev: AgentEvent): void {
    this.stats.accepted++;
    this.pending.push([ev.kind, ev.key, ev.eventTime, this.now(), JSON.stringify(ev.payload)]);
    if (this.pending.length >= this.opts.batchSize) setImmediate(() => this.flushPending());
  }

  get backlog(): number {
    let n = this.pending.length;
    for (const rows of this.inFlight.values()) n += rows.length;
    return n;
  }

  private flushPending(): void {
    if (!this.worker || this.pending.length === 0 || this.now() < this.retryAt) return;
    while (this.pending.length > 0) {
      const rows = this.pending.splice(0, this.opts.batchSize);
      const id = this.nextId++;
      this.inFlight.set(id, rows);
      this.worker.postMessage({ op: 'append', id, rows } satisfies WriterRequest);
    }
  }

  private onReply(m: WriterReply): void {
    if (m.op === 'appended') {
      this.inFlight.delete(m.id);
      this.stats.persisted += m.count;
      this.stats.lastSeq = m.lastSeq;
      this.retryAt = 0;
    } else if (m.op === 'error') {
      const failed = this.inFlight.get(m.id);
      this.inFlight.delete(m.id);
      this.stats.writeErrors++;
      if (this.stats.lastError !== m.message)
        this.opts.logger.error({ code: m.code, err: m.message }, 'event store write failed; events kept in memory and retried');
      this.stats.lastError = m.message;
      // Keep order: failed rows go back in front of anything queued since.
      if (failed) this.pending = [...failed, ...this.pending];
      this.retryAt = this.now() + 1000;
    }
    if (this.inFlight.size === 0 && this.pending.length === 0) {
      for (const w of this.waiters.splice(0)) w();
    }
  }

  /** Resolves once every event appended so far is committed (or `timeoutMs` passes: then rejects). */
  async flush(timeoutMs = 30_000): Promise<void> {
    this.retryAt = 0;
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
        this.retryAt = 0;
        this.flushPending();
      }, 200);
      this.waiters.push(() => {
        clearTimeout(t);
        clearInterval(retry);
        resolve();
      });
    });
  }

  /** Flushes and closes. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    const worker = this.worker;
    if (!worker) return;
    try {
      await this.flush();
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
