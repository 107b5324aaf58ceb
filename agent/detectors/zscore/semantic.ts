import type { SemanticProblem } from '../../config/primitives.js';
import { learnChecks } from '../common.js';
import type { ZscoreConfig } from './schema.js';

export function check(d: ZscoreConfig): SemanticProblem[] {
  const problems: SemanticProblem[] = [];
  if ((d.limit === undefined) === (d.limit_factor === undefined))
    problems.push({ path: [], message: 'zscore needs exactly one of limit or limit_factor' });
  problems.push(...learnChecks(d.learn));
  return problems;
}
