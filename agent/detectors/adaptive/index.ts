import type { DetectorModule } from '../common.js';
import { AdaptiveDetector } from './detector.js';
import { schema } from './schema.js';

export default {
  type: 'adaptive',
  schema,
  sides: () => ({ high: true, low: true }),
  create: (c) => new AdaptiveDetector(c),
} satisfies DetectorModule<typeof schema, AdaptiveDetector>;
