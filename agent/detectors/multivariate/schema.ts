/** Config of the `multivariate` detector (see README.md in this folder). */
import { z } from 'zod';
import { duration, id, severity } from '../../config/primitives.js';
import { learnSchema } from '../common.js';

export const schema = z
  .strictObject({
    id,
    asset: id,
    sensors: z.array(id).min(1).meta({ description: 'Sensors of the asset that form one row' }),
    severity: severity.default('warning'),
    trip: z.boolean().default(false).meta({ description: "A raised anomaly trips the asset's interlock" }),
    type: z.literal('multivariate'),
    statistic: z.enum(['max_abs_z', 'rms_z', 't2', 'q', 't2q', 'adaptive']).default('max_abs_z').meta({
      description:
        'max |z| over sensors, RMS z, PCA Hotelling T², PCA Q (SPE), or max of both normalised, against a baseline fixed after learning; or adaptive: the multivariate form of the adaptive detector, which keeps learning the joint normal behaviour (agent/detectors/adaptive/README.md)',
    }),
    smoothing: duration.prefault('8s').meta({ description: 'Per-sensor EWMA time constant before scoring' }),
    limit_factor: z.number().positive().default(1.4).meta({ description: 'Limit = this × the largest statistic while learning' }),
    on_count: z.int().min(1).default(5).meta({ description: 'Consecutive rows over the limit to raise' }),
    off_count: z.int().min(1).default(5).meta({ description: 'Consecutive rows under it to clear' }),
    learn: learnSchema,
    memory: z.int().min(20).max(10_000_000).default(2000).meta({
      description: 'statistic adaptive only: rows over which the joint normal behaviour is remembered (follows slow drift)',
    }),
    accept_after: z.int().min(1).max(10_000_000).default(300).meta({
      description:
        'statistic adaptive only: a raise that holds this many rows is accepted as a new operating point (levels re-learnt there, alarm cleared); never sooner',
    }),
  })
  .meta({
    description: 'Details and a sample: [agent/detectors/multivariate/README.md](../agent/detectors/multivariate/README.md)',
  });

export type MultivariateConfig = z.output<typeof schema>;
