/**
 * The whole configuration schema: the core sections (agent/config/sections.ts) composed with the
 * detection sections their owners hand in: detector types from the registry
 * (agent/detectors/registry.ts), the model and ensembles (agent/model/schema.ts). The TS types, the
 * defaults, the JSON Schema for editors (`npm run schema`) and the README option tables all derive
 * from it. agent/config/ itself knows no detector.
 */
import { z } from 'zod';
import type { SemanticProblem } from './config/primitives.js';
import {
  aggregationSchema,
  apiSchema,
  assetSchema,
  captureSchema,
  controlSchema,
  driverEntrySchema,
  gatewaySchema,
  interlockSchema,
  logSchema,
  storeSchema,
  syncSchema,
  timeSchema,
  twinSchema,
} from './config/sections.js';
import { type DetectorConfig, detectionChecks, detectorSchema } from './detectors/registry.js';
import { ensembleSchema, modelSchema } from './model/schema.js';
import { modelProblems } from './model/semantic.js';

export const configSchema = z.strictObject({
  gateway: gatewaySchema,
  store: storeSchema,
  log: logSchema,
  aggregation: aggregationSchema,
  time: timeSchema,
  capture: captureSchema,
  control: controlSchema,
  sync: syncSchema,
  api: apiSchema,
  twin: twinSchema,
  sources: z.array(driverEntrySchema).min(1),
  assets: z.array(assetSchema).min(1),
  detectors: z.array(detectorSchema).default([]),
  actuators: z.array(driverEntrySchema).default([]),
  interlocks: z.array(interlockSchema).default([]),
  model: modelSchema.optional().meta({ description: 'On-device ONNX model (omit to run without one)' }),
  ensembles: z.array(ensembleSchema).default([]),
});

export type AgentConfig = z.output<typeof configSchema>;

/** The checks of the detection sections (the core sections' own are in agent/config/semantic.ts). */
export function detectionProblems(config: AgentConfig): SemanticProblem[] {
  return [...detectionChecks(config), ...modelProblems(config)];
}

export type { WindowConfig } from './judge/window-schema.js';
export type { EnsembleConfig, ModelConfig } from './model/schema.js';
export { type DetectorConfig, detectorSchema };
