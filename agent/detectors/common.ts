/**
 * What every detector type shares: the common config keys, the windowed-feature keys, the learning
 * phase, and the base class of the per-sensor (scalar) detectors.
 *
 * A scalar detector judges a stream of scalars in event-time order: either each reading (point
 * mode, decided in the same tick as the reading) or one feature of each closed window (window mode,
 * decided when the watermark closes the window). It reports only changes of state (raised /
 * cleared). Parameters can be replaced at run time (`reconfigure`) without losing state; learned
 * baselines are kept unless `relearn()` is called.
 *
 * Hot path: `judge` allocates nothing; evidence objects are built only on a change of state.
 */
import { z } from 'zod';
import { duration, id, type SemanticProblem, severity } from '../config/primitives.js';
import type { SensorConfig } from '../config/sections.js';
import { featureName, type WindowConfig, windowSchema } from '../judge/window-schema.js';
import type { Anomaly, Quality, Reading } from '../types.js';

export const detectorBase = {
  id,
  asset: id,
  sensor: id,
  severity: severity.default('warning'),
  trip: z.boolean().default(false).meta({ description: "A raised anomaly trips the asset's interlock" }),
};

export const windowedFields = {
  window: windowSchema.optional().meta({ description: 'Judge a feature of each closed window instead of each reading' }),
  feature: featureName.optional(),
};

export const learnSchema = z
  .strictObject({
    readings: z.int().min(3).max(1_000_000).optional().meta({
      description:
        'Learn the baseline from this many inputs: readings in point mode, closed windows for a detector with a window (400 one-hour windows are 16.7 days), rows for multivariate',
    }),
    duration: duration.optional().meta({
      description: 'Or learn for this long (event time); with both set, whichever is reached first ends learning',
    }),
  })
  .prefault({ readings: 400 })
  .meta({
    description:
      'Learning phase after commissioning (first data) or a relearn command; no alarms meanwhile. {readings: N} counts inputs (closed windows for a detector with a window: prefer {duration: 8h} there), {duration: D} event time',
  });

/** The keys every scalar (one-sensor) detector config has. */
export interface ScalarConfigBase {
  readonly id: string;
  readonly type: string;
  readonly asset: string;
  readonly sensor: string;
  readonly severity: 'info' | 'warning' | 'critical';
  readonly trip: boolean;
}

/** The window a detector config judges, if it judges windows. */
export function windowOf(d: object): WindowConfig | undefined {
  return 'window' in d && typeof d.window === 'object' ? (d.window as WindowConfig) : undefined;
}

/** 1 = raised, -1 = cleared, 0 = no change. */
export type Change = -1 | 0 | 1;

/**
 * A learned baseline that survives restarts (contract E): a JSON-serialisable plain object. `v` is the
 * layout version of that detector type's state; `learned_at` the event time learning completed.
 */
export interface LearnedState {
  readonly v: number;
  readonly learned_at: number;
  readonly [k: string]: unknown;
}

/** Where a learning detector stands: from when, until when (a duration), or how many readings of how many. */
export interface LearningProgress {
  readonly since: number | null;
  readonly until: number | null;
  readonly seen: number;
  readonly of: number | null;
}

export abstract class ScalarDetector<C extends ScalarConfigBase = ScalarConfigBase> {
  active = false;
  /** Count of inputs skipped because they were older than the last one judged (order-sensitive detectors). */
  outOfOrder = 0;

  constructor(public cfg: C) {}

  get id(): string {
    return this.cfg.id;
  }

  /** Judges one value at event time `t`. `quality` is the reading's (window features are 'good'). */
  abstract judge(t: number, x: number, quality: Quality): Change;

  /** What the detector saw at its last change of state: limits and score. */
  abstract evidence(): Record<string, unknown>;

  /** Replaces the parameters (already validated), keeping learned state and the alarm state. */
  reconfigure(cfg: C): void {
    this.cfg = cfg;
    this.prepare();
  }

  /** Forgets the learned baseline and learns again from the next inputs. */
  relearn(): void {}

  /** Learning state for status and control replies. */
  learning(): boolean {
    return false;
  }

  protected prepare(): void {}

  /** Point-mode convenience (tests, tools): judges a reading and builds the anomaly. */
  update(r: Reading): Anomaly | undefined {
    const c = this.judge(r.eventTime, r.value, r.quality);
    return c === 0 ? undefined : this.anomaly(c, r.eventTime, r.value, undefined);
  }

  anomaly(change: Change, t: number, value: number, extra: Record<string, unknown> | undefined): Anomaly {
    const c = this.cfg;
    return {
      detector: c.id,
      detectorType: c.type,
      asset: c.asset,
      sensor: c.sensor,
      severity: c.severity,
      state: change === 1 ? 'raised' : 'cleared',
      eventTime: t,
      value,
      trip: c.trip,
      evidence: extra ? { ...this.evidence(), ...extra } : this.evidence(),
    };
  }
}

/** The sides of a sensor's physical range a tripping detector watches (see `range_trip`). */
export interface Sides {
  readonly high: boolean;
  readonly low: boolean;
}

/** What a detector's config checks may look up besides its own config. */
export interface CheckContext {
  /** The sensor `id` of `asset` as configured, if it exists. */
  sensor(asset: string, id: string): SensorConfig | undefined;
}

/**
 * One detector type, as its folder hands it to the registry (agent/detectors/registry.ts).
 * `create` builds a scalar detector (`ScalarDetector`) or, for `sensors: [...]` types, a row
 * detector; the judge wires it by that shape.
 */
export interface DetectorModule<S extends z.ZodObject = z.ZodObject, D = unknown> {
  readonly type: string;
  readonly schema: S;
  /** The sides of its sensors' range a tripping instance watches: a reading past one trips. */
  sides(cfg: z.output<S>): Sides;
  /** Checks of one instance beyond its schema; paths are relative to the detector entry. */
  check?(cfg: z.output<S>, ctx: CheckContext): SemanticProblem[];
  create(cfg: z.output<S>, sensor: Pick<SensorConfig, 'min' | 'max'> | undefined): D;
}

/** Feature names against the window that computes them (every windowed detector type). */
export function windowChecks(d: object): SemanticProblem[] {
  const problems: SemanticProblem[] = [];
  const win = windowOf(d);
  const feature = 'feature' in d ? (d.feature as string | undefined) : undefined;
  if (feature !== undefined) {
    if (!win) {
      problems.push({
        path: ['feature'],
        message: 'a feature needs a window',
        hint: 'add window: { type: tumbling, size: 10s }',
      });
    } else if (feature.startsWith('band.')) {
      const name = feature.slice(5);
      if (!win.bands?.some((b) => b.name === name)) {
        problems.push({
          path: ['feature'],
          message: `window has no FFT band "${name}"`,
          hint: `declared bands: ${win.bands?.map((b) => b.name).join(', ') || 'none'}`,
        });
      }
    }
  }
  win?.bands?.forEach((b, j) => {
    if (b.high <= b.low) problems.push({ path: ['window', 'bands', j, 'high'], message: 'band high must be above low' });
  });
  return problems;
}

/** A learning phase needs an end. */
export function learnChecks(learn: { readings?: number | undefined; duration?: number | undefined }): SemanticProblem[] {
  return learn.readings === undefined && learn.duration === undefined
    ? [{ path: ['learn'], message: 'learn needs readings or duration' }]
    : [];
}
