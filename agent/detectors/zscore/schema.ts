/** Config of the `zscore` detector (see README.md in this folder). */
import { z } from 'zod';
import { duration } from '../../config/primitives.js';
import { detectorBase, learnSchema, windowedFields } from '../common.js';

export const schema = z
  .strictObject({
    ...detectorBase,
    type: z.literal('zscore'),
    smoothing: duration.prefault('0s').meta({ description: 'EWMA time constant applied before scoring (0 = raw values)' }),
    limit: z.number().positive().optional().meta({ description: 'Raise when |z| exceeds this' }),
    limit_factor: z
      .number()
      .positive()
      .optional()
      .meta({ description: 'Or: limit = this × the largest |z| seen while learning' }),
    clear_ratio: z.number().positive().max(1).default(1).meta({ description: 'Clear below limit × clear_ratio' }),
    persistence: z
      .int()
      .min(1)
      .default(1)
      .meta({ description: 'Consecutive exceedances to raise (and non-exceedances to clear)' }),
    learn: learnSchema,
    ...windowedFields,
  })
  .meta({ description: 'Details and a sample: [agent/detectors/zscore/README.md](../agent/detectors/zscore/README.md)' });

export type ZscoreConfig = z.output<typeof schema>;
