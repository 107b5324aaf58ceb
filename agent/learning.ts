/**
 * Learning that survives restarts (contract E). At start, every detector that learns (z-score,
 * multivariate; any detector with `snapshot()`/`restore()`) gets its stored baseline back when the
 * stored config hash matches its configuration in the file; otherwise it learns. While running, a
 * 1 s timer (never the hot path) saves a baseline when learning completes, deletes it when a detector
 * relearns, and the last state is saved at shutdown. The twin shows which detectors are learning and
 * until when.
 */
import type { DetectorConfig } from './config/schema.js';
import type { LearnedState, LearningProgress } from './detectors/common.js';
import type { Logger } from './log.js';
import { configHash, type LearnedStateStore } from './store/learned.js';

/** What persistence needs of a detector; detectors that learn nothing lack the optional methods. */
export interface Learner {
  learning(): boolean;
  snapshot?(): LearnedState | undefined;
  restore?(s: LearnedState): boolean;
  learningProgress?(): LearningProgress | undefined;
}

/** One learning detector, for the twin and the dashboard. */
export interface LearningView {
  readonly detector: string;
  readonly asset: string;
  readonly learning: boolean;
  /** Event time learning started (null: no reading yet). */
  readonly since: number | null;
  /** When learning ends, for a `learn.duration` (null: ends after `of` readings). */
  readonly until: number | null;
  readonly seen: number;
  readonly of: number | null;
  /** Event time the baseline in use was learned (null while learning). */
  readonly learned_at: number | null;
  /** The baseline came back from the store at start (no relearning after the restart). */
  readonly restored: boolean;
}

export class LearnedPersistence {
  private store: LearnedStateStore | undefined;
  private readonly hashes = new Map<string, string>();
  /** learned_at of the state in the store, per detector. */
  private readonly saved = new Map<string, number>();
  private readonly restored = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly detectors: () => Iterable<[string, Learner]>,
    configs: readonly DetectorConfig[],
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.configs = new Map(configs.map((d) => [d.id, d]));
    for (const d of configs) this.hashes.set(d.id, configHash(d));
  }

  private readonly configs: Map<string, DetectorConfig>;

  /** Gives every learning detector its stored baseline back (config unchanged), before the first reading. */
  restore(store: LearnedStateStore): void {
    this.store = store;
    const rows = new Map(store.all().map((r) => [r.detector, r]));
    for (const [id, det] of this.detectors()) {
      if (!det.restore) continue;
      const row = rows.get(id);
      if (!row) continue;
      if (row.configHash !== this.hashes.get(id)) {
        this.logger.info({ detector: id }, 'detector config changed since its baseline was learned: learning again');
        store.delete(id);
        continue;
      }
      if (det.restore(row.state)) {
        this.restored.add(id);
        this.saved.set(id, row.state.learned_at);
      } else {
        this.logger.warn({ detector: id }, 'stored baseline unusable: learning again');
        store.delete(id);
      }
    }
    for (const id of rows.keys()) if (!this.hashes.has(id)) store.delete(id);
    if (this.restored.size > 0) this.logger.info({ detectors: [...this.restored] }, 'learned baselines restored');
  }

  start(intervalMs = 1000): void {
    this.timer = setInterval(() => this.flush(), intervalMs);
    this.timer.unref();
  }

  /** Saves baselines learned since the last call and forgets those of detectors that relearn. */
  flush(): void {
    const store = this.store;
    if (!store) return;
    try {
      for (const [id, det] of this.detectors()) {
        if (!det.snapshot) continue;
        if (det.learning()) {
          if (this.saved.has(id)) {
            store.delete(id);
            this.saved.delete(id);
            this.restored.delete(id);
          }
          continue;
        }
        const s = det.snapshot();
        if (!s || this.saved.get(id) === s.learned_at) continue;
        store.save(id, this.hashes.get(id) ?? '', s, this.now());
        this.saved.set(id, s.learned_at);
        this.logger.info({ detector: id, learned_at: s.learned_at }, 'learned baseline saved');
      }
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'cannot save learned baselines; a restart would relearn them');
    }
  }

  /** Saves what is new and stops the timer. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.flush();
    this.store?.close();
    this.store = undefined;
  }

  /** Every detector that learns: learning or not, until when, restored or not. */
  views(asset?: string): LearningView[] {
    const out: LearningView[] = [];
    const learners = asset === undefined ? this.learners().all : (this.learners().byAsset.get(asset) ?? []);
    for (const { id, det, cfg } of learners) {
      const learning = det.learning();
      const p = det.learningProgress?.();
      out.push({
        detector: id,
        asset: cfg.asset,
        learning,
        since: p?.since ?? null,
        until: p?.until ?? null,
        seen: p?.seen ?? 0,
        of: p?.of ?? null,
        learned_at: learning ? null : (det.snapshot?.()?.learned_at ?? null),
        restored: !learning && this.restored.has(id),
      });
    }
    return out;
  }

  private index: { all: LearnerEntry[]; byAsset: Map<string, LearnerEntry[]> } | undefined;

  /**
   * The detectors that learn, per asset, found once: the twin asks per asset, and a walk over every
   * detector per asset cost O(assets × detectors) per round of twin writes (4 M steps with 2,000 assets).
   */
  private learners(): { all: LearnerEntry[]; byAsset: Map<string, LearnerEntry[]> } {
    if (this.index) return this.index;
    const all: LearnerEntry[] = [];
    const byAsset = new Map<string, LearnerEntry[]>();
    for (const [id, det] of this.detectors()) {
      const cfg = this.configs.get(id);
      if (!det.snapshot || !cfg) continue;
      const e = { id, det, cfg };
      all.push(e);
      let list = byAsset.get(cfg.asset);
      if (!list) byAsset.set(cfg.asset, (list = []));
      list.push(e);
    }
    this.index = { all, byAsset };
    return this.index;
  }
}

interface LearnerEntry {
  readonly id: string;
  readonly det: Learner;
  readonly cfg: DetectorConfig;
}
