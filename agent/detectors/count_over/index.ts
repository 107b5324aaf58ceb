import type { DetectorModule } from '../common.js';
import { CountOverDetector } from './detector.js';
import { schema } from './schema.js';

export default {
  type: 'count_over',
  schema,
  sides: (c) => ({ high: c.direction === 'above', low: c.direction === 'below' }),
  create: (c) => new CountOverDetector(c),
} satisfies DetectorModule<typeof schema, CountOverDetector>;
