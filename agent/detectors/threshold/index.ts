import type { DetectorModule } from '../common.js';
import { ThresholdDetector } from './detector.js';
import { schema } from './schema.js';

export default {
  type: 'threshold',
  schema,
  sides: (c) => ({ high: c.direction === 'above', low: c.direction === 'below' }),
  create: (c) => new ThresholdDetector(c),
} satisfies DetectorModule<typeof schema, ThresholdDetector>;
