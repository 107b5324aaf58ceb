/** Cross-reference checks for the `model` and `ensembles` sections (composed in agent/schema.ts). */

import type { SemanticProblem } from '../config/primitives.js';
import { MODEL_MEMBER, policyProblems } from './ensemble.js';
import type { EnsembleConfig, ModelConfig } from './schema.js';

/** The parts of the config these checks read. */
interface ModelSections {
  readonly assets: readonly { readonly id: string }[];
  readonly interlocks: readonly { readonly asset: string }[];
  readonly detectors: readonly { readonly id: string; readonly asset: string }[];
  readonly model?: ModelConfig | undefined;
  readonly ensembles: readonly EnsembleConfig[];
}

export function modelProblems(config: ModelSections): SemanticProblem[] {
  const problems: SemanticProblem[] = [];
  const assets = new Set(config.assets.map((a) => a.id));
  const interlocked = new Set(config.interlocks.map((i) => i.asset));
  config.model?.assets?.forEach((a, i) => {
    if (!assets.has(a)) problems.push({ path: ['model', 'assets', i], message: `unknown asset "${a}"` });
  });
  const ids = new Set<string>();
  config.ensembles.forEach((e, i) => {
    const at = (...p: (string | number)[]) => ['ensembles', i, ...p];
    if (ids.has(e.id) || config.detectors.some((d) => d.id === e.id))
      problems.push({ path: at('id'), message: `id "${e.id}" is already used by a detector or ensemble` });
    ids.add(e.id);
    if (!assets.has(e.asset)) problems.push({ path: at('asset'), message: `unknown asset "${e.asset}"` });
    const own = config.detectors.filter((d) => d.asset === e.asset).map((d) => d.id);
    e.members.forEach((m, j) => {
      if (m === MODEL_MEMBER) {
        if (!config.model)
          problems.push({
            path: at('members', j),
            message: 'member "model" but no model is configured',
            hint: 'add a model: section',
          });
      } else if (!own.includes(m)) {
        problems.push({
          path: at('members', j),
          message: `"${m}" is not a detector of asset "${e.asset}"`,
          hint: `its detectors: ${own.join(', ') || 'none'}; or "model"`,
        });
      }
    });
    for (const [field, message] of policyProblems(e)) problems.push({ path: at(field), message });
    if (e.trip && !interlocked.has(e.asset))
      problems.push({
        path: at('trip'),
        message: `ensemble trips asset "${e.asset}", which has no interlock`,
        hint: 'add an interlock with a stop action for it, or set trip: false',
      });
  });
  return problems;
}
