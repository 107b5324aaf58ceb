import type { DetectorModule } from '../common.js';
import { RateOfChangeDetector } from './detector.js';
import { schema } from './schema.js';

export default {
  type: 'rate_of_change',
  schema,
  sides: (c) => ({ high: c.direction !== 'fall', low: c.direction !== 'rise' }),
  create: (c) => new RateOfChangeDetector(c),
} satisfies DetectorModule<typeof schema, RateOfChangeDetector>;
