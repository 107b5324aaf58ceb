/**
 * The detector registry: every detector type, each a folder under agent/detectors/<type>/ with its
 * schema, implementation, checks and README. Adding a type = a folder plus one line in DETECTORS
 * (a test checks both). The config composes `detectorSchema` in agent/schema.ts; the judge builds
 * detectors with `createDetector`.
 */
import { z } from 'zod';
import type { SemanticProblem } from '../config/primitives.js';
import type { AssetConfig, SensorConfig } from '../config/sections.js';
import { type DetectorModule, type ScalarDetector, type Sides, windowChecks } from './common.js';
import count_over from './count_over/index.js';
import flatline from './flatline/index.js';
import type { MultivariateDetector } from './multivariate/detector.js';
import multivariate from './multivariate/index.js';
import out_of_range from './out_of_range/index.js';
import rate_of_change from './rate_of_change/index.js';
import threshold from './threshold/index.js';
import zscore from './zscore/index.js';

const DETECTORS = [threshold, count_over, zscore, rate_of_change, flatline, out_of_range, multivariate] as const;

type Schemas<T extends readonly { schema: z.ZodObject }[]> = { -readonly [K in keyof T]: T[K]['schema'] };

export const DETECTOR_TYPES: readonly string[] = DETECTORS.map((d) => d.type);

export const detectorSchema = z.discriminatedUnion(
  'type',
  DETECTORS.map((d) => d.schema) as unknown as Schemas<typeof DETECTORS>,
);

export type DetectorConfig = z.output<typeof detectorSchema>;
/** The configs of detectors that judge one sensor. */
export type ScalarConfig = Exclude<DetectorConfig, { sensors: readonly string[] }>;
/** The configs of detectors that judge rows of several sensors of an asset. */
export type RowConfig = Extract<DetectorConfig, { sensors: readonly string[] }>;
export type AnyDetector = ScalarDetector | MultivariateDetector;

const byType = new Map<string, DetectorModule>(DETECTORS.map((d) => [d.type, d as unknown as DetectorModule]));

function moduleOf(cfg: DetectorConfig): DetectorModule {
  return byType.get(cfg.type) as DetectorModule;
}

/** The sensors a detector reads. */
export function sensorsOf(cfg: DetectorConfig): readonly string[] {
  return 'sensors' in cfg ? cfg.sensors : [cfg.sensor];
}

/** The sides of its sensors' physical range a tripping detector watches. */
export function sidesOf(cfg: DetectorConfig): Sides {
  return moduleOf(cfg).sides(cfg);
}

export function createDetector(cfg: ScalarConfig, sensor?: Pick<SensorConfig, 'min' | 'max'>): ScalarDetector;
export function createDetector(cfg: RowConfig): MultivariateDetector;
export function createDetector(cfg: DetectorConfig, sensor?: Pick<SensorConfig, 'min' | 'max'>): AnyDetector;
export function createDetector(cfg: DetectorConfig, sensor?: Pick<SensorConfig, 'min' | 'max'>): AnyDetector {
  return moduleOf(cfg).create(cfg, sensor) as AnyDetector;
}

/**
 * Every detector's own checks (feature names, learning, limits), then references to assets and
 * sensors and tripping without an interlock. Paths are from the config root.
 */
export function detectionChecks(config: {
  readonly assets: readonly AssetConfig[];
  readonly detectors: readonly DetectorConfig[];
  readonly interlocks?: readonly { readonly asset: string }[];
}): SemanticProblem[] {
  const problems: SemanticProblem[] = [];
  const sensors = new Map(config.assets.map((a) => [a.id, new Map(a.sensors.map((s) => [s.id, s]))]));
  const ctx = { sensor: (asset: string, id: string) => sensors.get(asset)?.get(id) };
  const interlocked = config.interlocks && new Set(config.interlocks.map((i) => i.asset));
  config.detectors.forEach((d, i) => {
    const at = (p: SemanticProblem) => problems.push({ ...p, path: ['detectors', i, ...p.path] });
    const own = sensors.get(d.asset);
    if (!own) {
      at({ path: ['asset'], message: `unknown asset "${d.asset}"`, hint: `defined assets: ${[...sensors.keys()].join(', ')}` });
    } else {
      const refs: Array<[string, (string | number)[]]> =
        'sensors' in d ? d.sensors.map((s, j) => [s, ['sensors', j]]) : [[d.sensor, ['sensor']]];
      for (const [s, path] of refs)
        if (!own.has(s))
          at({ path, message: `asset "${d.asset}" has no sensor "${s}"`, hint: `its sensors: ${[...own.keys()].join(', ')}` });
    }
    for (const p of windowChecks(d)) at(p);
    for (const p of moduleOf(d).check?.(d, ctx) ?? []) at(p);
    if (interlocked && d.trip && !interlocked.has(d.asset))
      at({
        path: ['trip'],
        message: `detector trips asset "${d.asset}", which has no interlock`,
        hint: 'add an interlock with a stop action for it, or set trip: false',
      });
  });
  return problems;
}
