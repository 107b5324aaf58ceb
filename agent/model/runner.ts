/**
 * Where inference runs. `inline`: onnxruntime in the agent's thread (its `run()` is already
 * asynchronous native work, so the event loop only pays for the hand-off). `worker`: a dedicated
 * worker thread owns the sessions, so even tensor setup and normalisation stay off the event loop.
 * `npm run bench -- model` measures both.
 */
import { Worker } from 'node:worker_threads';
import { keepAfterWorkerStarts } from '../ops/young-gen.js';
import { workerUrl } from '../worker-url.js';
import { type CardFile, type ModelCard, ModelCardError } from './card.js';
import type { SessionHost } from './host.js';

export type RunnerKind = 'inline' | 'worker';

export interface ModelRunner {
  /** Loads and validates a model into `slot`. Rejects with ModelCardError on any mismatch. */
  load(slot: number, file: CardFile): Promise<void>;
  /** Scores `rows` windows of raw features (row-major). May take ownership of `data`. */
  run(slot: number, data: Float32Array, rows: number): Promise<Float32Array>;
  release(slot: number): Promise<void>;
  close(): Promise<void>;
}

export class InlineRunner implements ModelRunner {
  /** onnxruntime (native, several MB resident) is loaded with the first model, not at start. */
  private host: Promise<SessionHost> | undefined;
  private session(): Promise<SessionHost> {
    this.host ??= import('./host.js').then((m) => new m.SessionHost());
    return this.host;
  }
  load(slot: number, f: CardFile): Promise<void> {
    return this.session().then((h) => h.load(slot, f.card, f.bytes, f.cardPath));
  }
  run(slot: number, data: Float32Array, rows: number): Promise<Float32Array> {
    return this.session().then((h) => h.run(slot, data, rows));
  }
  release(slot: number): Promise<void> {
    return this.host ? this.host.then((h) => h.release(slot)) : Promise.resolve();
  }
  close(): Promise<void> {
    return this.host ? this.host.then((h) => h.releaseAll()) : Promise.resolve();
  }
}

export type WorkerRequest =
  | { op: 'load'; req: number; slot: number; card: ModelCard; bytes: ArrayBuffer; file: string }
  | { op: 'run'; req: number; slot: number; data: ArrayBuffer; rows: number }
  | { op: 'release'; req: number; slot: number };

export type WorkerReply =
  | { op: 'ok'; req: number }
  | { op: 'scores'; req: number; scores: ArrayBuffer }
  | { op: 'error'; req: number; field: string | undefined; message: string };

export class WorkerRunner implements ModelRunner {
  private worker: Worker | undefined;
  private nextReq = 1;
  private readonly pending = new Map<number, { resolve: (v: ArrayBuffer | undefined) => void; reject: (e: Error) => void }>();

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const w = keepAfterWorkerStarts(new Worker(workerUrl(import.meta.url)));
    w.on('message', (m: WorkerReply) => {
      const p = this.pending.get(m.req);
      if (!p) return;
      this.pending.delete(m.req);
      if (m.op === 'error') p.reject(m.field ? new ModelCardError(m.field, m.message) : new Error(m.message));
      else p.resolve(m.op === 'scores' ? m.scores : undefined);
    });
    w.on('error', (err) => this.failAll(err));
    w.on('exit', (code) => {
      this.worker = undefined;
      this.failAll(new Error(`model worker exited with code ${code}`));
    });
    this.worker = w;
    return w;
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private call(msg: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<ArrayBuffer | undefined> {
    const w = this.ensure();
    return new Promise((resolve, reject) => {
      this.pending.set(msg.req, { resolve, reject });
      w.postMessage(msg, transfer);
    });
  }

  async load(slot: number, f: CardFile): Promise<void> {
    // A copy with its own buffer: a Buffer from readFileSync may be a view into a shared pool.
    const bytes = new Uint8Array(f.bytes).buffer as ArrayBuffer;
    try {
      await this.call({ op: 'load', req: this.nextReq++, slot, card: f.card, bytes, file: f.cardPath }, [bytes]);
    } catch (err) {
      // Re-attach the file name the worker's error lost in transit.
      if (err instanceof ModelCardError) throw new ModelCardError(err.field, err.detail, f.cardPath);
      throw err;
    }
  }

  async run(slot: number, data: Float32Array, rows: number): Promise<Float32Array> {
    const buf =
      data.byteOffset === 0 && data.byteLength === data.buffer.byteLength
        ? (data.buffer as ArrayBuffer)
        : (new Float32Array(data).buffer as ArrayBuffer);
    const out = await this.call({ op: 'run', req: this.nextReq++, slot, data: buf, rows }, [buf]);
    return new Float32Array(out as ArrayBuffer);
  }

  async release(slot: number): Promise<void> {
    if (this.worker) await this.call({ op: 'release', req: this.nextReq++, slot });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
    this.failAll(new Error('model runner closed'));
  }
}

export function createRunner(kind: RunnerKind): ModelRunner {
  return kind === 'worker' ? new WorkerRunner() : new InlineRunner();
}
