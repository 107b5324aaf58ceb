/**
 * Main-thread handle of the Kafka sync: starts the sync process (agent/sync/worker.ts, a child
 * process because the native Kafka client only runs on a process's main event loop), relays its
 * messages to and from the store's writer thread,
 * keeps the latest status for telemetry, /api/status and `edge-agent sync status`, shows drain
 * progress, and stops it last at shutdown (after the store has committed everything).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Backoff } from '../backoff.js';
import type { Logger } from '../log.js';
import type { EventStore } from '../store/store.js';
import type { WriterToSync } from '../store/worker.js';
import { workerUrl } from '../worker-url.js';
import type { KafkaSyncConfig } from './kafka.js';
import { DrainPacer } from './pacer.js';
import { Progress } from './progress.js';
import type { SyncStatus } from './syncer.js';
import type { SyncWorkerReply, SyncWorkerRequest } from './worker.js';

export interface SyncSnapshot {
  readonly lagEvents: number;
  readonly lagSeconds: number;
  /** Epoch seconds of the last successful send (0: never). */
  readonly lastSuccess: number;
  readonly status: SyncStatus | undefined;
  /** Times the sync process exited unexpectedly and was started again. */
  readonly restarts: number;
  /** The sync process: running, waiting to be restarted after a crash, or stopped. */
  readonly process: 'running' | 'restarting' | 'stopped';
}

/** Restart delay after the sync process died: 1 s doubling to 1 min; reset once a process ran this long. */
const RESTART = { baseMs: 1000, maxMs: 60_000 };
const HEALTHY_AFTER_MS = 60_000;

export class SyncService {
  status: SyncStatus | undefined;
  private worker: ChildProcess | undefined;
  private writer: MessagePort | undefined;
  private startTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private progress: Progress | undefined;
  private drainStart: { at: number; backlog: number } | undefined;
  private restarts = 0;
  private readonly restartBackoff = new Backoff(RESTART);
  private restartTimer: NodeJS.Timeout | undefined;
  /** When the last crash happened (0: none since the last clear); its alarm is cleared by the next committed page. */
  private crashedAt = 0;
  /** Why the running process is about to exit, when it said so (a stuck Kafka client). */
  private exitReason: string | undefined;
  /** `sync.kafka.yield_to_detection`: the sampler of this thread's event-loop delay (agent/sync/pacer.ts). */
  private pacerTimer: NodeJS.Timeout | undefined;
  private pacerStop: (() => void) | undefined;

  constructor(
    private readonly store: EventStore,
    private readonly path: string,
    private readonly gatewayId: string,
    private readonly config: KafkaSyncConfig,
    private readonly logger: Logger,
  ) {}

  /** Process id of the sync process (undefined until started). */
  get pid(): number | undefined {
    return this.worker?.pid;
  }

  /** Starts the sync process once the store is open (retries while it is not). Never blocks on Kafka. */
  start(): void {
    if (this.worker || this.stopped) return;
    if (this.store.stats.degraded || this.path === ':memory:') {
      if (this.path === ':memory:') {
        this.logger.warn('Kafka sync needs a store file; store.path is :memory:, nothing is synced');
        return;
      }
      this.startTimer ??= setInterval(() => {
        if (!this.store.stats.degraded) {
          clearInterval(this.startTimer);
          this.startTimer = undefined;
          this.start();
        }
      }, 1000).unref();
      return;
    }
    const channel = new MessageChannel();
    this.store.connectSync(channel.port1);
    const writer = channel.port2;
    const worker = fork(fileURLToPath(workerUrl(import.meta.url)), [], {
      execArgv: [],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const send = (m: SyncWorkerRequest) => {
      if (worker.connected) worker.send(m);
    };
    writer.on('message', (m: WriterToSync) => {
      // Stopping: new events wait for the next start; a commit in flight is still passed on.
      if (this.stopped && m.op === 'appended') return;
      send({ op: 'writer', m });
    });
    writer.on('close', () => send({ op: 'writer-closed' }));
    worker.on('message', (m: SyncWorkerReply) => {
      if (m.op === 'writer') writer.postMessage(m.m);
      else this.onMessage(m);
    });
    worker.on('error', (err) => {
      // Stopping, the process may exit before a last message to it is written (its channel is still
      // open on this side): nothing is lost, a commit it did not get is recovered from Kafka at the next start.
      const code = (err as NodeJS.ErrnoException).code;
      if (this.stopped && (code === 'EPIPE' || code === 'ECONNRESET' || code === 'ERR_IPC_CHANNEL_CLOSED')) {
        this.logger.debug({ err: err.message }, 'the sync process exited before a message to it was written (shutting down)');
        return;
      }
      this.logger.error({ err: err.message }, 'Kafka sync process failed; events stay buffered');
    });
    const startedAt = Date.now();
    worker.on('exit', (code, signal) => {
      if (this.stopped || this.worker !== worker) return;
      this.onCrash(worker, code, signal, Date.now() - startedAt);
    });
    send({ op: 'start', data: { path: this.path, gatewayId: this.gatewayId, config: this.config } });
    this.worker = worker;
    this.writer = writer;
    if (this.config.yield_to_detection) this.startPacer();
    this.logger.info({ brokers: this.config.brokers, prefix: this.config.topic_prefix }, 'Kafka sync started');
  }

  /**
   * The sync process died (killed, out of memory, a native crash): the events stay in the store, and a
   * new process starts after a backoff. Exactly once holds across it as across an agent restart: the new
   * producer fences the old transactional session and reads the committed cursor back from Kafka.
   */
  private onCrash(worker: ChildProcess, code: number | null, signal: NodeJS.Signals | null, ranMs: number): void {
    this.worker = undefined;
    this.writer?.close();
    this.writer = undefined;
    this.pacerStop?.();
    this.pacerStop = undefined;
    worker.removeAllListeners('message');
    if (ranMs >= HEALTHY_AFTER_MS) this.restartBackoff.succeed();
    const delay = this.restartBackoff.fail();
    this.restarts++;
    const now = Date.now();
    const reason = this.exitReason;
    this.exitReason = undefined;
    this.logger.error(
      { code, signal, restarts: this.restarts, restart_in_ms: delay, ...(reason ? { reason } : {}) },
      reason
        ? 'Kafka sync process exited: its Kafka client was stuck; events stay buffered, restarting it'
        : 'Kafka sync process exited unexpectedly; events stay buffered, restarting it',
    );
    // One raised alarm per outage: a process that keeps dying without committing raises no more.
    if (this.crashedAt === 0)
      this.store.alarmSink({
        kind: 'alarm',
        key: this.gatewayId,
        eventTime: now,
        payload: {
          type: 'sync',
          state: 'raised',
          code: 'sync_process_exited',
          message: reason
            ? `the Kafka sync process exited because its Kafka client was stuck (${reason}); restarting it in ${delay} ms`
            : `the Kafka sync process exited (${signal ?? `code ${code}`}); restarting it in ${delay} ms`,
          restarts: this.restarts,
          at: now,
        },
      });
    this.crashedAt = now;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.start();
    }, delay);
    this.restartTimer.unref();
  }

  /**
   * Samples this thread's event-loop delay (the thread that turns readings into stops) every 200 ms and
   * tells the sync process how long to pause between the parts of a page (agent/sync/pacer.ts).
   */
  private startPacer(): void {
    if (this.pacerTimer) return;
    const pacer = new DrainPacer();
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    let sent = 0;
    this.pacerTimer = setInterval(() => {
      const p99 = loop.percentile(99) / 1e6;
      const count = loop.count;
      loop.reset();
      if (count === 0) return;
      const pause = Math.round(pacer.sample(p99, this.status?.state === 'sending'));
      if (pause !== sent && this.worker?.connected) {
        this.worker.send({ op: 'pace', pauseMs: pause } satisfies SyncWorkerRequest);
        sent = pause;
      }
    }, 200).unref();
    this.pacerStop = () => {
      clearInterval(this.pacerTimer);
      this.pacerTimer = undefined;
      loop.disable();
    };
  }

  private onMessage(m: SyncWorkerReply): void {
    if (m.op === 'status') {
      this.status = m.status;
      if (this.crashedAt > 0 && m.status.lastSuccess > this.crashedAt) {
        this.crashedAt = 0;
        this.store.alarmSink({
          kind: 'alarm',
          key: this.gatewayId,
          eventTime: Date.now(),
          payload: { type: 'sync', state: 'cleared', code: 'sync_process_exited', restarts: this.restarts, at: Date.now() },
        });
      }
      this.showProgress();
    } else if (m.op === 'log') this.logger[m.level](m.obj, m.msg);
    else if (m.op === 'stuck') this.exitReason = m.message;
    else if (m.op === 'refused') {
      // Never sent: one record larger than the topics accept. The event stays in the local store.
      const e = m.event;
      this.store.alarmSink({
        kind: 'alarm',
        key: this.gatewayId,
        eventTime: Date.now(),
        payload: {
          type: 'sync_refused',
          state: 'raised',
          code: 'record_too_large',
          message: `event ${e.seq} (${e.kind} ${e.key}) is ${e.bytes} bytes as a Kafka record; the topics accept ${e.limit} (max.message.bytes); not sent`,
          seq: e.seq,
          event_kind: e.kind,
          event_key: e.key,
          event_time: e.event_time,
          bytes: e.bytes,
          limit: e.limit,
        },
      });
    } else if (m.op === 'failed') this.logger.error({ err: m.message }, 'Kafka sync could not start; events stay buffered');
  }

  /** Drain progress: a bar on a TTY, an INFO line every 30 s otherwise, for backlogs over 10,000 events. */
  private showProgress(): void {
    const backlog = this.store.stats.keeper?.unsentEvents ?? 0;
    const s = this.status;
    if (!s) return;
    if (s.state === 'sending' && backlog > 10_000 && !this.drainStart) {
      this.drainStart = { at: Date.now(), backlog };
      this.progress = new Progress({ total: backlog, label: 'draining backlog to Kafka', logger: this.logger });
    }
    if (!this.drainStart || !this.progress) return;
    this.progress.update(Math.max(0, this.drainStart.backlog - backlog));
    if (s.state === 'idle' || backlog === 0) {
      this.progress.done();
      this.progress = undefined;
      this.drainStart = undefined;
    }
  }

  snapshot(): SyncSnapshot {
    const k = this.store.stats.keeper;
    const s = this.status;
    return {
      lagEvents: k?.unsentEvents ?? 0,
      lagSeconds: s && s.state !== 'idle' ? s.lagMs / 1000 : 0,
      lastSuccess: Math.round((s?.lastSuccess || k?.lastSuccess || 0) / 1000),
      status: s,
      restarts: this.restarts,
      process: this.worker ? 'running' : this.stopped ? 'stopped' : 'restarting',
    };
  }

  /** Finishes the transaction in flight, then closes Kafka. Idempotent. */
  async stop(timeoutMs = 15_000): Promise<void> {
    this.stopped = true;
    this.pacerStop?.();
    this.pacerStop = undefined;
    if (this.startTimer) clearInterval(this.startTimer);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.progress?.done();
    const worker = this.worker;
    this.worker = undefined;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => {
      if (worker.exitCode !== null || worker.signalCode !== null) resolve();
      else worker.once('exit', () => resolve());
    });
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      worker.on('message', (m: SyncWorkerReply) => {
        if (m.op === 'stopped') {
          clearTimeout(t);
          resolve();
        }
      });
      void exited.then(() => {
        clearTimeout(t);
        resolve();
      });
      if (worker.connected) worker.send({ op: 'stop' } satisfies SyncWorkerRequest);
    });
    this.writer?.close();
    this.writer = undefined;
    const kill = setTimeout(() => worker.kill('SIGKILL'), 2000);
    if (worker.connected) worker.disconnect();
    await exited;
    clearTimeout(kill);
  }
}
