/**
 * Glue between the pipeline and the model subsystem (a `PipelineHook`).
 *
 * On the hot path it only adds readings to per-asset tumbling windows and, when a window closes,
 * offers its feature vector to the model service's queue. Scores come back asynchronously; the
 * model's verdict per asset (raised above the card's threshold, cleared below threshold ×
 * clear_ratio) becomes an anomaly from detector `model`, whose evidence carries the model version.
 * Every anomaly (rule detectors and model) updates the ensemble policies, whose flips are raised
 * through the pipeline like any other anomaly, so a policy with `trip: true` stops the machine.
 */
import type { AgentConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { PipelineHook } from '../pipeline.js';
import type { Anomaly, Reading } from '../types.js';
import { Ensembles, MODEL_MEMBER } from './ensemble.js';
import { extractFeatures, sensorsOf, WindowExtractor, type WindowReadings } from './features.js';
import type { ActiveModel, ModelScore, ModelService } from './service.js';

export class ModelHook implements PipelineHook {
  private readonly ensembles: Ensembles;
  private extractor: WindowExtractor | undefined;
  private scoredAssets = new Set<string>();
  private names: readonly string[] = [];
  private layout = '';
  private readonly raisedAssets = new Set<string>();
  /** Windows skipped because a needed sensor had no good reading. */
  incompleteWindows = 0;

  constructor(
    private readonly config: Pick<AgentConfig, 'assets' | 'model' | 'ensembles'>,
    private readonly service: ModelService | undefined,
    private readonly raise: (a: Anomaly) => void,
    private readonly logger: Logger,
  ) {
    this.ensembles = new Ensembles(config.ensembles);
    if (service) {
      service.onSwap((m) => this.configure(m));
      service.onScore((s) => this.onScore(s));
      if (service.current) this.configure(service.current);
    }
  }

  onReading(r: Reading): void {
    if (this.extractor && this.scoredAssets.has(r.asset)) this.extractor.add(r);
  }

  onAnomaly(a: Anomaly): void {
    if (!this.ensembles.watches(a.asset, a.detector)) return;
    const evidence =
      a.detector === MODEL_MEMBER ? { score: a.value, model_version: a.evidence.model_version } : { value: a.value };
    for (const e of this.ensembles.update(a.asset, a.detector, a.state === 'raised', a.eventTime, evidence)) this.raise(e);
  }

  flush(): void {
    this.extractor?.flush();
  }

  /** The version of the model scoring `asset`; null when no model scores it. */
  modelVersion(asset: string): string | null {
    return this.scoredAssets.has(asset) ? (this.service?.current?.version ?? null) : null;
  }

  private configure(m: ActiveModel): void {
    if (m.layout === this.layout) return;
    const needed = sensorsOf(m.card.features.names);
    const listed = this.config.model?.assets;
    const assets = this.config.assets.filter((a) =>
      listed ? listed.includes(a.id) : needed.every((s) => a.sensors.some((x) => x.id === s)),
    );
    for (const a of assets) {
      const missing = needed.filter((s) => !a.sensors.some((x) => x.id === s));
      if (missing.length > 0)
        this.logger.warn({ asset: a.id, model: m.version, missing }, 'asset lacks sensors the model needs; not scored');
    }
    this.scoredAssets = new Set(assets.filter((a) => needed.every((s) => a.sensors.some((x) => x.id === s))).map((a) => a.id));
    this.names = m.card.features.names;
    this.layout = m.layout;
    this.extractor = new WindowExtractor(m.card.features.window_ms, new Set(needed), (w) => this.onWindow(w));
    this.logger.info({ model: m.version, assets: [...this.scoredAssets], window_ms: m.card.features.window_ms }, 'model scoring');
  }

  private onWindow(w: WindowReadings): void {
    const f = extractFeatures(w, this.names);
    if (!f) {
      this.incompleteWindows++;
      return;
    }
    this.service?.offer(w.asset, w.start, f, this.layout);
  }

  private onScore(s: ModelScore): void {
    const raised = this.raisedAssets.has(s.asset);
    const clearBelow = s.threshold * (this.config.model?.clear_ratio ?? 0.8);
    const next = raised ? !(s.score < clearBelow) : s.score > s.threshold;
    if (next === raised) return;
    if (next) this.raisedAssets.add(s.asset);
    else this.raisedAssets.delete(s.asset);
    const windowMs = this.service?.current?.card.features.window_ms ?? 0;
    this.raise({
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
    });
  }
}
