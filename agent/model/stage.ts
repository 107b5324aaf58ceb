/**
 * The model as a stage of the judge. The judge's window engine feeds it closed feature windows (one
 * tumbling window of the card's `window_ms` per needed sensor of each scored asset); it assembles
 * them into the card's feature vector and offers it to the model service's queue (synchronous,
 * O(1)). Scores come back asynchronously; `verdict` turns them into the model's anomaly per asset
 * (raised above the card's threshold, cleared below threshold × clear_ratio), from detector
 * `model`, whose evidence carries the model version. The judge handles that anomaly like any other.
 */
import type { AssetConfig } from '../config/sections.js';
import type { ClosedWindow } from '../judge/windows.js';
import type { Logger } from '../log.js';
import type { Anomaly } from '../types.js';
import { MODEL_MEMBER } from './ensemble.js';
import { type AssemblerCounters, FeatureAssembler, sensorsOf } from './features.js';
import type { ModelConfig } from './schema.js';
import type { ActiveModel, ModelScore, ModelService } from './service.js';

/** How the stage gets windows from the judge's engine: attach returns the detach. */
export type AttachWindow = (asset: string, sensor: string, windowMs: number, sink: (w: ClosedWindow) => void) => () => void;

export class ModelStage {
  private scoredAssets = new Set<string>();
  private layout = '';
  private detach: Array<() => void> = [];
  private readonly raisedAssets = new Set<string>();
  readonly counters: AssemblerCounters = { incomplete: 0, partial: 0 };

  constructor(
    private readonly config: { readonly assets: readonly AssetConfig[]; readonly model?: ModelConfig | undefined },
    private readonly service: ModelService,
    private readonly attach: AttachWindow,
    private readonly logger: Logger,
  ) {
    service.onSwap((m) => this.configure(m));
    if (service.current) this.configure(service.current);
  }

  /** The version of the model scoring `asset`; null when no model scores it. */
  modelVersion(asset: string): string | null {
    return this.scoredAssets.has(asset) ? (this.service.current?.version ?? null) : null;
  }

  /** A score's verdict: the model anomaly when the asset's alarm state flips, else undefined. */
  verdict(s: ModelScore): Anomaly | undefined {
    const raised = this.raisedAssets.has(s.asset);
    const clearBelow = s.threshold * (this.config.model?.clear_ratio ?? 0.8);
    const next = raised ? !(s.score < clearBelow) : s.score > s.threshold;
    if (next === raised) return undefined;
    if (next) this.raisedAssets.add(s.asset);
    else this.raisedAssets.delete(s.asset);
    const windowMs = this.service.current?.card.features.window_ms ?? 0;
    return {
      detector: MODEL_MEMBER,
      detectorType: 'model',
      asset: s.asset,
      sensor: MODEL_MEMBER,
      severity: 'warning',
      state: next ? 'raised' : 'cleared',
      eventTime: s.windowStart + windowMs,
      value: s.score,
      evidence: {
        model_version: s.modelVersion,
        score: s.score,
        threshold: s.threshold,
        clear_below: clearBelow,
        window_start: s.windowStart,
      },
      trip: false,
    };
  }

  /** A model became active: (re)attach the windows its card needs. */
  private configure(m: ActiveModel): void {
    if (m.layout === this.layout) return;
    for (const d of this.detach) d();
    this.detach = [];
    const needed = sensorsOf(m.card.features.names);
    const listed = this.config.model?.assets;
    const has = (a: AssetConfig, s: string) => a.sensors.some((x) => x.id === s);
    const assets = this.config.assets.filter((a) => (listed ? listed.includes(a.id) : needed.every((s) => has(a, s))));
    for (const a of assets) {
      const missing = needed.filter((s) => !has(a, s));
      if (missing.length > 0)
        this.logger.warn({ asset: a.id, model: m.version, missing }, 'asset lacks sensors the model needs; not scored');
    }
    const scored = assets.filter((a) => needed.every((s) => has(a, s)));
    this.scoredAssets = new Set(scored.map((a) => a.id));
    this.layout = m.layout;
    const windowMs = m.card.features.window_ms;
    const layout = m.layout;
    for (const a of scored) {
      const asm = new FeatureAssembler(
        a.id,
        needed,
        m.card.features.names,
        windowMs,
        (asset, start, f) => this.service.offer(asset, start, f, layout),
        this.counters,
      );
      needed.forEach((s, k) => {
        this.detach.push(this.attach(a.id, s, windowMs, (w) => asm.add(k, w)));
      });
    }
    this.logger.info({ model: m.version, assets: [...this.scoredAssets], window_ms: windowMs }, 'model scoring');
  }
}
