import type { DetectorModule } from '../common.js';
import { FlatlineDetector } from './detector.js';
import { schema } from './schema.js';

export default {
  type: 'flatline',
  schema,
  // It judges the sensor itself (stuck), not the process value: no side of the range.
  sides: () => ({ high: false, low: false }),
  create: (c) => new FlatlineDetector(c),
} satisfies DetectorModule<typeof schema, FlatlineDetector>;
