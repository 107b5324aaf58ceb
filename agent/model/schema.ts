/** The `model` and `ensembles` sections: the on-device model and how it is combined with rule detectors. */
import { z } from 'zod';
import { duration, id, severity } from '../config/primitives.js';

export const modelSchema = z.strictObject({
  dir: z
    .string()
    .default('./models')
    .meta({ description: 'Directory of ONNX models and their cards; watched for dropped-in models' }),
  card: z.string().default('default.card.json').meta({ description: 'Card (in dir) of the model loaded at start' }),
  runner: z
    .enum(['worker', 'inline'])
    .default('worker')
    .meta({ description: 'worker: inference in its own thread; inline: onnxruntime called from the agent thread' }),
  queue_size: z.int().min(1).max(100_000).default(256).meta({
    description: 'Windows waiting for inference; when full, only the newest window per asset is kept (counted)',
  }),
  batch_size: z.int().min(1).max(1024).default(16).meta({ description: 'Most windows scored in one inference call' }),
  watch: z.boolean().default(true).meta({ description: 'Swap in a model dropped into dir (validated first)' }),
  watch_debounce: duration.prefault('500ms').meta({ description: 'Quiet time after the last file change before a swap' }),
  assets: z
    .array(id)
    .optional()
    .meta({ description: "Assets the model scores (default: every asset with all the card's sensors)" }),
  clear_ratio: z
    .number()
    .positive()
    .max(1)
    .default(0.8)
    .meta({ description: "The model's alarm clears when the score falls below threshold × clear_ratio (hysteresis)" }),
});

export const ensembleSchema = z.strictObject({
  id,
  asset: id,
  members: z
    .array(id)
    .min(1)
    .meta({ description: 'Detector ids of this asset, and/or "model" for the model verdict on the asset' }),
  combine: z.enum(['any', 'all', 'k_of_n', 'weighted']),
  k: z.int().min(1).optional().meta({ description: 'k_of_n: how many members must be active' }),
  weights: z
    .record(z.string(), z.number())
    .optional()
    .meta({ description: 'weighted: weight per member (default 1); raises when active weights sum to >= threshold' }),
  threshold: z.number().optional().meta({ description: 'weighted: the sum of active weights that raises' }),
  severity: severity.default('warning'),
  trip: z.boolean().default(false).meta({ description: "This combination may trip the asset's interlock" }),
});

export type ModelConfig = z.output<typeof modelSchema>;
export type EnsembleConfig = z.output<typeof ensembleSchema>;
