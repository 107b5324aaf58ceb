/** Config of the `rate_of_change` detector (see README.md in this folder). */
import { z } from 'zod';
import { detectorBase, windowedFields } from '../common.js';

export const schema = z
  .strictObject({
    ...detectorBase,
    type: z.literal('rate_of_change'),
    limit: z.number().positive().meta({ description: 'Units per second' }),
    direction: z.enum(['rise', 'fall', 'both']).default('both'),
    clear_limit: z.number().nonnegative().optional().meta({ description: 'Clear at or below this rate (default: limit)' }),
    ...windowedFields,
  })
  .meta({
    description: 'Details and a sample: [agent/detectors/rate_of_change/README.md](../agent/detectors/rate_of_change/README.md)',
  });

export type RateOfChangeConfig = z.output<typeof schema>;
