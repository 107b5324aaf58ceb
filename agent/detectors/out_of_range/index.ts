import type { DetectorModule } from '../common.js';
import { OutOfRangeDetector } from './detector.js';
import { schema } from './schema.js';
import { check } from './semantic.js';

export default {
  type: 'out_of_range',
  schema,
  // It judges the sensor itself (a fault), not the process value: no side of the range.
  sides: () => ({ high: false, low: false }),
  check,
  create: (c, sensor) => new OutOfRangeDetector(c, sensor),
} satisfies DetectorModule<typeof schema, OutOfRangeDetector>;
