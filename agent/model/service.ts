/**
 * The model service: owns the active model, the window queue and the runner, scores windows in
 * batches off the hot path, and swaps models atomically.
 *
 * Contract:
 *  - `offer()` is synchronous, O(1) and never waits; scores arrive later through `onScore`.
 *  - One batch is in flight at a time; windows that queue up meanwhile form the next batch (up to
 *    `batchSize`), so a quiet plant gets batch size 1 and no added latency.
 *  - A swap loads and validates the new model completely (sha256, card vs graph, smoke inference)
 *    before the active pointer moves. A batch already running finishes on the model it started on
 *    and its scores carry that model's version. On failure the old model stays active and an
 *    `alarm` event says why; on success an `audit` event records the swap.
 */

import { type FSWatcher, readdirSync, readFileSync, watch } from 'node:fs';
import { basename, join } from 'node:path';
import type { AgentConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { AgentEvent } from '../types.js';
import { type CardFile, type ModelCard, ModelCardError, readCardFile } from './card.js';
import { type QueueCounters, WindowQueue } from './queue.js';
import { createRunner, type ModelRunner, type RunnerKind } from './runner.js';

export interface ModelScore {
  readonly asset: string;
  readonly windowStart: number;
  readonly score: number;
  readonly threshold: number;
  readonly modelVersion: string;
}

export interface ActiveModel {
  readonly slot: number;
  readonly card: ModelCard;
  readonly cardPath: string;
  readonly version: string;
  /** Feature layout key: windows computed for another layout are not scored by this model. */
  readonly layout: string;
}

export type SwapSource = 'startup' | 'file' | 'control';
export type SwapResult =
  | { ok: true; version: string; previous: string | undefined }
  | { ok: false; reason: string; field?: string; kept: string | undefined };

export interface ModelServiceOptions {
  readonly dir: string;
  /** Card file name (in `dir`) loaded at start. */
  readonly card: string;
  readonly runner: RunnerKind | ModelRunner;
  readonly queueSize: number;
  readonly batchSize: number;
  /** Watch `dir` for dropped-in models. */
  readonly watch: boolean;
  readonly watchDebounceMs: number;
  readonly emit: (ev: AgentEvent) => void;
  readonly logger: Logger;
  /** Key of gateway-wide events (swap audits and rejections). */
  readonly gatewayId: string;
  readonly now?: () => number;
}

/** The options that come from the `model:` config section. */
export function modelOptionsFromConfig(
  m: NonNullable<AgentConfig['model']>,
): Pick<ModelServiceOptions, 'dir' | 'card' | 'runner' | 'queueSize' | 'batchSize' | 'watch' | 'watchDebounceMs'> {
  return {
    dir: m.dir,
    card: m.card,
    runner: m.runner,
    queueSize: m.queue_size,
    batchSize: m.batch_size,
    watch: m.watch,
    watchDebounceMs: m.watch_debounce,
  };
}

export interface ModelCounters extends QueueCounters {
  scored: number;
  batches: number;
  failedBatches: number;
  /** Windows lost because their batch failed. */
  failedWindows: number;
  /** Windows computed for a previous model's feature layout, not scored after a swap. */
  discardedOnSwap: number;
  swaps: number;
  rejected: number;
}

export const layoutOf = (card: ModelCard): string => `${card.features.window_ms}|${card.features.names.join(',')}`;

export class ModelService {
  private readonly queue: WindowQueue;
  private readonly runner: ModelRunner;
  private active: ActiveModel | undefined;
  private nextSlot = 1;
  private inFlight: Promise<void> | undefined;
  private inFlightSlot = 0;
  private readonly retired = new Set<number>();
  private swapChain: Promise<unknown> = Promise.resolve();
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private readonly touched = new Set<string>();
  private readonly listeners: Array<(s: ModelScore) => void> = [];
  private readonly swapListeners: Array<(m: ActiveModel) => void> = [];
  private readonly inferenceListeners: Array<(seconds: number) => void> = [];
  private readonly now: () => number;
  private stopped = false;
  private lastFailure = '';
  readonly counters: ModelCounters;

  constructor(private readonly opts: ModelServiceOptions) {
    this.queue = new WindowQueue(opts.queueSize);
    this.counters = Object.assign(this.queue.counters as ModelCounters, {
      scored: 0,
      batches: 0,
      failedBatches: 0,
      failedWindows: 0,
      discardedOnSwap: 0,
      swaps: 0,
      rejected: 0,
    });
    this.runner = typeof opts.runner === 'string' ? createRunner(opts.runner) : opts.runner;
    this.now = opts.now ?? Date.now;
  }

  get current(): ActiveModel | undefined {
    return this.active;
  }

  get queued(): number {
    return this.queue.size;
  }

  onScore(fn: (s: ModelScore) => void): void {
    this.listeners.push(fn);
  }

  onSwap(fn: (m: ActiveModel) => void): void {
    this.swapListeners.push(fn);
  }

  /** Each scored batch, with its wall time from handing it to the runner to its scores (telemetry). */
  onInference(fn: (seconds: number) => void): void {
    this.inferenceListeners.push(fn);
  }

  /** Loads the configured model; throws ModelCardError (the agent refuses to start) on a mismatch. */
  async start(): Promise<void> {
    const f = readCardFile(join(this.opts.dir, this.opts.card));
    await this.install(f, 'startup');
    if (this.opts.watch) this.startWatching();
  }

  /** Hot path: queue a window's raw features. Never waits. */
  offer(asset: string, windowStart: number, features: Float32Array, layout: string): void {
    if (this.stopped) return;
    this.queue.offer({ asset, windowStart, features, layout });
    if (!this.inFlight) this.pump();
  }

  /** Validates the model of `cardPath` and makes it active; the old model stays on any failure. */
  swapTo(cardPath: string, source: SwapSource): Promise<SwapResult> {
    const next = this.swapChain.then(() => this.trySwap(cardPath, source));
    this.swapChain = next;
    return next;
  }

  /** Swaps to the model whose card in the models directory has `version`. */
  applyVersion(version: string, source: SwapSource = 'control'): Promise<SwapResult> {
    const card = this.findCard(version);
    if (!card)
      return Promise.resolve(this.reject(source, version, new Error(`no card with version "${version}" in ${this.opts.dir}`)));
    return this.swapTo(card, source);
  }

  /** Resolves when the queue is empty and no batch is running. */
  async idle(): Promise<void> {
    while (this.inFlight || (this.queue.size > 0 && this.active)) {
      if (this.inFlight) await this.inFlight;
      else this.pump();
      await new Promise((r) => setImmediate(r));
    }
  }

  /** Stops watching, scores what is queued, releases the sessions. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.watcher?.close();
    if (this.debounce) clearTimeout(this.debounce);
    await this.swapChain.catch(() => {});
    await this.idle();
    this.stopped = true;
    await this.runner.close();
  }

  private async install(f: CardFile, source: SwapSource): Promise<ActiveModel> {
    const slot = this.nextSlot++;
    await this.runner.load(slot, f);
    const previous = this.active;
    const model: ActiveModel = { slot, card: f.card, cardPath: f.cardPath, version: f.card.version, layout: layoutOf(f.card) };
    this.active = model;
    if (previous) {
      this.retired.add(previous.slot);
      this.releaseRetired();
    }
    this.counters.swaps++;
    this.opts.emit({
      kind: 'audit',
      key: this.opts.gatewayId,
      eventTime: this.now(),
      payload: {
        type: 'model_swap',
        source,
        from: previous?.version ?? null,
        to: model.version,
        card: basename(f.cardPath),
        sha256: f.card.sha256,
        threshold: f.card.threshold,
      },
    });
    this.opts.logger.info({ from: previous?.version, to: model.version, source }, 'model active');
    for (const fn of this.swapListeners) fn(model);
    if (this.queue.size > 0 && !this.inFlight) this.pump();
    return model;
  }

  private async trySwap(cardPath: string, source: SwapSource): Promise<SwapResult> {
    if (this.stopped) return { ok: false, reason: 'model service stopped', kept: this.active?.version };
    const previous = this.active?.version;
    try {
      const f = readCardFile(cardPath);
      const m = await this.install(f, source);
      return { ok: true, version: m.version, previous };
    } catch (err) {
      return this.reject(source, basename(cardPath), err as Error);
    }
  }

  private reject(source: SwapSource, what: string, err: Error): SwapResult {
    this.counters.rejected++;
    const field = err instanceof ModelCardError ? err.field : undefined;
    const kept = this.active?.version;
    this.opts.emit({
      kind: 'alarm',
      key: this.opts.gatewayId,
      eventTime: this.now(),
      payload: {
        type: 'model_rejected',
        source,
        model: what,
        field: field ?? null,
        reason: err.message,
        kept_version: kept ?? null,
      },
    });
    this.opts.logger.warn({ model: what, source, reason: err.message, kept }, 'model rejected; previous model kept');
    return { ok: false, reason: err.message, ...(field ? { field } : {}), kept };
  }

  private pump(): void {
    const model = this.active;
    if (!model || this.inFlight || this.queue.size === 0 || this.stopped) return;
    const batch = this.queue.take(this.opts.batchSize).filter((w) => {
      if (w.layout === model.layout) return true;
      this.counters.discardedOnSwap++;
      return false;
    });
    if (batch.length === 0) {
      this.pump();
      return;
    }
    const n = model.card.features.names.length;
    const data = new Float32Array(batch.length * n);
    for (let i = 0; i < batch.length; i++) data.set((batch[i] as { features: Float32Array }).features, i * n);
    this.inFlightSlot = model.slot;
    const started = performance.now();
    this.inFlight = this.runner.run(model.slot, data, batch.length).then(
      (scores) => {
        this.counters.batches++;
        const seconds = (performance.now() - started) / 1000;
        for (const fn of this.inferenceListeners) fn(seconds);
        for (let i = 0; i < batch.length; i++) {
          const w = batch[i] as (typeof batch)[number];
          this.counters.scored++;
          const s: ModelScore = {
            asset: w.asset,
            windowStart: w.windowStart,
            score: scores[i] as number,
            threshold: model.card.threshold,
            modelVersion: model.version,
          };
          for (const fn of this.listeners) fn(s);
        }
      },
      (err: Error) => {
        this.counters.failedBatches++;
        this.counters.failedWindows += batch.length;
        if (err.message !== this.lastFailure)
          this.opts.logger.error(
            { model: model.version, err: err.message, windows: batch.length },
            'model inference failed; windows not scored',
          );
        this.lastFailure = err.message;
      },
    );
    this.inFlight.finally(() => {
      this.inFlight = undefined;
      this.inFlightSlot = 0;
      this.releaseRetired();
      if (this.queue.size > 0) this.pump();
    });
  }

  private releaseRetired(): void {
    for (const slot of this.retired) {
      if (slot === this.inFlightSlot) continue;
      this.retired.delete(slot);
      this.runner.release(slot).catch(() => {});
    }
  }

  private cards(): string[] {
    try {
      return readdirSync(this.opts.dir).filter((f) => f.endsWith('.card.json') && !f.startsWith('.'));
    } catch {
      return [];
    }
  }

  private cardField(file: string, field: 'version' | 'model_file'): unknown {
    try {
      return (JSON.parse(readFileSync(join(this.opts.dir, file), 'utf8')) as Record<string, unknown>)[field];
    } catch {
      return undefined;
    }
  }

  private findCard(version: string): string | undefined {
    const f = this.cards().find((c) => this.cardField(c, 'version') === version);
    return f ? join(this.opts.dir, f) : undefined;
  }

  private startWatching(): void {
    this.watcher = watch(this.opts.dir, (_event, name) => {
      if (!name || name.startsWith('.') || !(name.endsWith('.card.json') || name.endsWith('.onnx'))) return;
      this.touched.add(name);
      if (this.debounce) clearTimeout(this.debounce);
      // Copies arrive in several writes (and card and graph in two files): act once it settles.
      this.debounce = setTimeout(() => this.onTouched(), this.opts.watchDebounceMs);
    });
    this.watcher.on('error', (err) =>
      this.opts.logger.warn({ dir: this.opts.dir, err: err.message }, 'models directory watch failed'),
    );
  }

  private onTouched(): void {
    const names = [...this.touched];
    this.touched.clear();
    const cards = new Set<string>();
    for (const name of names) {
      if (name.endsWith('.card.json')) cards.add(name);
      else for (const c of this.cards()) if (this.cardField(c, 'model_file') === name) cards.add(c);
    }
    for (const c of cards) {
      const path = join(this.opts.dir, c);
      const cur = this.active;
      if (cur && cur.cardPath === path) {
        // The active model's own files changed: only act if they now differ from what runs.
        try {
          const raw = readFileSync(path, 'utf8');
          if ((JSON.parse(raw) as { sha256?: string }).sha256 === cur.card.sha256 && this.sameBytes(cur)) continue;
        } catch {
          // fall through: the swap attempt reports what is wrong
        }
      }
      void this.swapTo(path, 'file');
    }
  }

  private sameBytes(m: ActiveModel): boolean {
    try {
      return readCardFile(m.cardPath).card.sha256 === m.card.sha256;
    } catch {
      return false;
    }
  }
}
