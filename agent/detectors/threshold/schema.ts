/** Config of the `threshold` detector (see README.md in this folder). */
import { z } from 'zod';
import { detectorBase, windowedFields } from '../common.js';

export const schema = z
  .strictObject({
    ...detectorBase,
    type: z.literal('threshold'),
    direction: z.enum(['above', 'below']).default('above'),
    setpoint: z.number(),
    delta_up: z.number().nonnegative().default(0).meta({ description: 'Raise when the value passes setpoint + delta_up' }),
    delta_down: z
      .number()
      .nonnegative()
      .default(0)
      .meta({ description: 'Clear when the value is back past setpoint - delta_down (hysteresis)' }),
    ...windowedFields,
  })
  .meta({ description: 'Details and a sample: [agent/detectors/threshold/README.md](../agent/detectors/threshold/README.md)' });

export type ThresholdConfig = z.output<typeof schema>;
