/**
 * What a control message may change, per detector type, and which way is weaker protection.
 *
 * Only numeric tuning parameters are ever changeable, and only those declared with bounds in
 * `control.limits`. Protection itself (`trip`, `direction`, `severity`, which asset/sensor/window a
 * detector watches, interlock membership) is not in these tables: it changes only by a validated
 * config reload.
 */
import type { AgentConfig, DetectorConfig } from '../config/schema.js';

/** 'up': a higher value than the file's weakens protection; 'down': a lower one does; null: neither. */
type Weaker = 'up' | 'down' | null;

type Table = Record<string, (d: DetectorConfig) => Weaker>;

const up = (): Weaker => 'up';
const none = (): Weaker => null;
const dirUp = (d: DetectorConfig): Weaker => ((d as { direction?: string }).direction === 'below' ? 'down' : 'up');

const TUNABLE: Record<DetectorConfig['type'], Table> = {
  threshold: { setpoint: dirUp, delta_up: up, delta_down: none },
  count_over: { limit: dirUp, count: up },
  zscore: { limit: up, limit_factor: up, clear_ratio: none, persistence: up, smoothing: up },
  rate_of_change: { limit: up, clear_limit: none },
  flatline: { duration: up, tolerance: up },
  out_of_range: { min: () => 'down', max: up, persistence: up },
  multivariate: { limit_factor: up, on_count: up, off_count: none, smoothing: up },
  adaptive: { sensitivity: () => 'down', accept_after: () => 'down' },
};

/** The parameters of this detector type that `control.limits` may declare. */
export function tunableParams(type: DetectorConfig['type']): string[] {
  return Object.keys(TUNABLE[type]);
}

/** Whether `value` for `param` makes protection weaker than the file's value. */
export function isWeakening(file: DetectorConfig, param: string, value: number): boolean {
  const dir = TUNABLE[file.type][param]?.(file) ?? null;
  const base = (file as unknown as Record<string, unknown>)[param];
  if (dir === null) return false;
  // A parameter the file leaves unset (e.g. out_of_range min from the sensor) counts as weakened by any value: be strict.
  if (typeof base !== 'number') return true;
  return dir === 'up' ? value > base : value < base;
}

export interface ControlProblem {
  readonly path: (string | number)[];
  readonly message: string;
  readonly hint?: string;
}

/** Config checks for the `control` section: limits name existing detectors and tunable parameters, and hold the file's values. */
export function controlChecks(config: AgentConfig): ControlProblem[] {
  const problems: ControlProblem[] = [];
  const detectors = new Map(config.detectors.map((d) => [d.id, d]));
  for (const [id, params] of Object.entries(config.control.limits)) {
    const d = detectors.get(id);
    if (!d) {
      problems.push({ path: ['control', 'limits', id], message: `unknown detector "${id}"` });
      continue;
    }
    const tunable = tunableParams(d.type);
    for (const [param, [lo, hi]] of Object.entries(params)) {
      const path = ['control', 'limits', id, param];
      if (!tunable.includes(param)) {
        problems.push({
          path,
          message: `"${param}" cannot be changed at run time on a ${d.type} detector`,
          hint: `changeable: ${tunable.join(', ')}; protection (trip, direction, severity, sensors, windows) changes only in this file`,
        });
        continue;
      }
      if (lo > hi) {
        problems.push({ path, message: `bounds [${lo}, ${hi}]: the first must not exceed the second` });
        continue;
      }
      const v = (d as unknown as Record<string, unknown>)[param];
      if (typeof v === 'number' && (v < lo || v > hi))
        problems.push({ path, message: `the file's ${param} (${v}) is outside its bounds [${lo}, ${hi}]` });
    }
  }
  return problems;
}
