import { type DetectorModule, learnChecks } from '../common.js';
import { MultivariateDetector } from './detector.js';
import { schema } from './schema.js';

export default {
  type: 'multivariate',
  schema,
  sides: () => ({ high: true, low: true }),
  check: (c) => learnChecks(c.learn),
  create: (c) => new MultivariateDetector(c),
} satisfies DetectorModule<typeof schema, MultivariateDetector>;
