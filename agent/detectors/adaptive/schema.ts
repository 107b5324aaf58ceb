/**
 * Config of the `adaptive` detector (agent/detectors/adaptive/README.md). It is the detector a
 * technician gets by naming only the sensor: an entry without `type` is an adaptive one.
 *
 */
import { z } from 'zod';
import { detectorBase } from '../common.js';

export const schema = z
  .strictObject({
    ...detectorBase,
    type: z
      .literal('adaptive')
      .default('adaptive')
      .meta({ description: 'The default: an entry with only id, asset and sensor is an adaptive detector' }),
    sensitivity: z.number().min(0.25).max(4).default(1).meta({
      description:
        'Scales the learned alarm limit: 2 raises at half the deviation (more alarms), 0.5 at twice it. The default suits most sensors; no other setting is needed',
    }),
    learn: z
      .strictObject({
        readings: z.int().min(10).max(1_000_000).default(150).meta({
          description: 'Readings learned before the first alarm (the detector keeps learning afterwards)',
        }),
      })
      .prefault({})
      .meta({
        description:
          'Start-up learning: {readings: N} (default 150) readings after commissioning or a relearn command; no alarms meanwhile. It keeps learning afterwards',
      }),
    memory: z.int().min(20).max(10_000_000).default(2000).meta({
      description:
        "Readings over which normal behaviour is remembered: the baseline follows slow drift on this scale, not a fault's quick change",
    }),
    accept_after: z.int().min(1).max(10_000_000).default(300).meta({
      description:
        'A raised deviation that holds this many readings is accepted as a new operating level (a level or load change): the baseline re-learns there and the alarm clears. It is never accepted sooner',
    }),
  })
  .meta({
    description:
      "The default detector: an entry with only id, asset and sensor (no type) is adaptive. Unsupervised, it learns the sensor's normal behaviour and keeps learning it, follows drift and accepts a lasting level change, and learns nothing while raised. Use it to watch for the unusual; use threshold (a hard setpoint) for protection against a known limit. [agent/detectors/adaptive/README.md](../agent/detectors/adaptive/README.md)",
  });
