/** What the window engine computes: window shapes (tumbling, sliding, count) and feature names. */
import { z } from 'zod';
import { duration } from '../config/primitives.js';

export const FEATURES = [
  'count',
  'good',
  'min',
  'max',
  'mean',
  'std',
  'rms',
  'slope',
  'peak',
  'crest',
  'kurtosis',
  'last',
] as const;

/** A window feature: one of FEATURES, a percentile `p50`..`p99.9`, or a configured FFT band `band.<name>`. */
export const featureName = z
  .string()
  .regex(new RegExp(`^(${FEATURES.join('|')}|p\\d{1,2}(\\.\\d+)?|band\\.[A-Za-z0-9_-]+)$`), {
    message: `expected a feature: ${FEATURES.join(', ')}, a percentile such as p95, or band.<name>`,
  })
  .meta({ description: 'Window feature judged by the detector (default mean)' });

export const fftBandSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_-]+$/),
  low: z.number().nonnegative().meta({ description: 'Lower band edge, Hz (inclusive)' }),
  high: z.number().positive().meta({ description: 'Upper band edge, Hz (exclusive)' }),
});

const windowExtras = {
  bands: z
    .array(fftBandSchema)
    .optional()
    .meta({ description: 'FFT band energies (mean-square power per band) for high-rate streams; feature band.<name>' }),
};

export const windowSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('tumbling'),
    size: duration.meta({ description: 'Event-time window length; windows are aligned to the epoch' }),
    ...windowExtras,
  }),
  z.strictObject({
    type: z.literal('sliding'),
    size: duration.meta({ description: 'Event-time window length' }),
    hop: duration.meta({ description: 'A window closes every hop (hopping windows)' }),
    ...windowExtras,
  }),
  z.strictObject({
    type: z.literal('count'),
    count: z.int().min(2).max(1_000_000).meta({ description: 'Readings per window (arrival order)' }),
    hop: z.int().min(1).optional().meta({ description: 'Readings between windows (default: count, i.e. tumbling)' }),
    ...windowExtras,
  }),
]);

export type WindowConfig = z.output<typeof windowSchema>;
