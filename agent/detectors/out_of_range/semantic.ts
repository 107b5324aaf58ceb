import type { SemanticProblem } from '../../config/primitives.js';
import type { CheckContext } from '../common.js';
import type { OutOfRangeConfig } from './schema.js';

export function check(d: OutOfRangeConfig, ctx: CheckContext): SemanticProblem[] {
  const sensor = ctx.sensor(d.asset, d.sensor);
  if (sensor && d.min === undefined && d.max === undefined && sensor.min === undefined && sensor.max === undefined)
    return [
      {
        path: [],
        message: 'out_of_range has no limits: set min/max here or on the sensor',
        hint: 'it still reports bad-quality readings, but probably a limit was meant',
      },
    ];
  return [];
}
