/** Config of the `count_over` detector (see README.md in this folder). */
import { z } from 'zod';
import { duration } from '../../config/primitives.js';
import { detectorBase } from '../common.js';

export const schema = z
  .strictObject({
    ...detectorBase,
    type: z.literal('count_over'),
    limit: z.number(),
    direction: z.enum(['above', 'below']).default('above'),
    count: z.int().min(1).meta({ description: 'Raise when MORE than this many readings pass the limit within the window' }),
    window: duration,
  })
  .meta({ description: 'Details and a sample: [agent/detectors/count_over/README.md](../agent/detectors/count_over/README.md)' });

export type CountOverConfig = z.output<typeof schema>;
