/** Config of the `flatline` detector (see README.md in this folder). */
import { z } from 'zod';
import { duration } from '../../config/primitives.js';
import { detectorBase } from '../common.js';

export const schema = z
  .strictObject({
    ...detectorBase,
    type: z.literal('flatline'),
    duration: duration.meta({ description: 'Raise when the value has not moved for this long (stuck sensor)' }),
    tolerance: z.number().nonnegative().default(0).meta({ description: 'Changes up to this count as "not moved"' }),
  })
  .meta({ description: 'Details and a sample: [agent/detectors/flatline/README.md](../agent/detectors/flatline/README.md)' });

export type FlatlineConfig = z.output<typeof schema>;
