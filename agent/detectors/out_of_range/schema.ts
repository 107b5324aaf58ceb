/** Config of the `out_of_range` detector (see README.md in this folder). */
import { z } from 'zod';
import { detectorBase } from '../common.js';

export const schema = z
  .strictObject({
    ...detectorBase,
    type: z.literal('out_of_range'),
    min: z.number().optional().meta({ description: "Lowest valid value (default: the sensor's min)" }),
    max: z.number().optional().meta({ description: "Highest valid value (default: the sensor's max)" }),
    faults: z
      .array(z.enum(['bad', 'comm_error', 'stale']))
      .default(['bad', 'comm_error'])
      .meta({ description: 'Reading qualities that count as a sensor fault' }),
    persistence: z.int().min(1).default(1).meta({ description: 'Consecutive faulty readings to raise (and good ones to clear)' }),
  })
  .meta({
    description: 'Details and a sample: [agent/detectors/out_of_range/README.md](../agent/detectors/out_of_range/README.md)',
  });

export type OutOfRangeConfig = z.output<typeof schema>;
