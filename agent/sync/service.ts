/**
 * Main-thread handle of the Kafka sync: starts the sync process (agent/sync/worker.ts, a child
 * process because the native Kafka client only runs on a process's main event loop), relays its
 * messages to and from the store's writer thread,
 * keeps the latest status for telemetry, /api/status and `edge-agent sync status`, shows drain
 * progress, and stops it last at shutdown (after the store has committed everything).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import type { Logger } from '../log.js';
import type { EventStore } from '../store/store.js';
import type { WriterToSync } from '../store/worker.js';
import { workerUrl } from '../worker-url.js';
import type { KafkaSyncConfig } from './kafka.js';
import { Progress } from './progress.js';
import type { SyncStatus } from './syncer.js';
import type { SyncWorkerReply, SyncWorkerRequest } from './worker.js';

export interface SyncSnapshot {
  readonly lagEvents: number;
  readonly lagSeconds: number;
  /** Epoch seconds of the last successful send (0: never). */
  readonly lastSuccess: number;
  readonly status: SyncStatus | undefined;
}

export class SyncService {
  status: SyncStatus | undefined;
  private worker: ChildProcess | undefined;
  private writer: MessagePort | undefined;
  private startTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private progress: Progress | undefined;
  private drainStart: { at: number; backlog: number } | undefined;

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
    writer.on('message', (m: WriterToSync) => send({ op: 'writer', m }));
    writer.on('close', () => send({ op: 'writer-closed' }));
    worker.on('message', (m: SyncWorkerReply) => {
      if (m.op === 'writer') writer.postMessage(m.m);
      else this.onMessage(m);
    });
    worker.on('error', (err) => this.logger.error({ err: err.message }, 'Kafka sync process failed; events stay buffered'));
    worker.on('exit', (code, signal) => {
      if (!this.stopped)
        this.logger.error({ code, signal }, 'Kafka sync process exited; events stay buffered until the agent restarts');
    });
    send({ op: 'start', data: { path: this.path, gatewayId: this.gatewayId, config: this.config } });
    this.worker = worker;
    this.writer = writer;
    this.logger.info({ brokers: this.config.brokers, prefix: this.config.topic_prefix }, 'Kafka sync started');
  }

  private onMessage(m: SyncWorkerReply): void {
    if (m.op === 'status') {
      this.status = m.status;
      this.showProgress();
    } else if (m.op === 'log') this.logger[m.level](m.obj, m.msg);
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
    };
  }

  /** Finishes the transaction in flight, then closes Kafka. Idempotent. */
  async stop(timeoutMs = 15_000): Promise<void> {
    this.stopped = true;
    if (this.startTimer) clearInterval(this.startTimer);
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
