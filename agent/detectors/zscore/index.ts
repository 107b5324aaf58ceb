import type { DetectorModule } from '../common.js';
import { ZScoreDetector } from './detector.js';
import { schema } from './schema.js';
import { check } from './semantic.js';

export default {
  type: 'zscore',
  schema,
  sides: () => ({ high: true, low: true }),
  check,
  create: (c) => new ZScoreDetector(c),
} satisfies DetectorModule<typeof schema, ZScoreDetector>;
