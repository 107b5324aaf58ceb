/**
 * The configuration's types and schemas in one import: the value types (primitives.ts), the core
 * sections (sections.ts), and the whole composed schema with its detection sections
 * (agent/schema.ts, where the detectors, the model and the ensembles hand theirs in).
 */

export {
  type AgentConfig,
  configSchema,
  type DetectorConfig,
  detectorSchema,
  type EnsembleConfig,
  type ModelConfig,
  type WindowConfig,
} from '../schema.js';
export * from './primitives.js';
export * from './sections.js';
