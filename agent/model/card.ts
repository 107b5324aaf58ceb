/**
 * Model cards: the JSON that ships next to every ONNX file and says what the graph expects and
 * means. A model is only used after its card checks out against the file (sha256) and the graph
 * (input/output names, order, types, shapes, and a smoke inference on zeros). Every refusal is a
 * `ModelCardError` naming the card field that does not match.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { InferenceSession } from 'onnxruntime-node';
import { z } from 'zod';
import { parseFeatureName } from './features.js';

export const CARD_FORMAT = 'edge-agent-model-card/1';

/** A dimension: a fixed size, or a string / -1 for a dynamic one (the batch). */
const dim = z.union([z.int().min(-1), z.string()]);
const tensorSpec = z.strictObject({
  name: z.string().min(1),
  dtype: z.enum(['float32']),
  shape: z.array(dim).min(1),
});

export const modelCardSchema = z.looseObject({
  format: z.literal(CARD_FORMAT),
  version: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/),
  model_file: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  inputs: z.array(tensorSpec).length(1),
  outputs: z.array(tensorSpec).min(1),
  features: z.strictObject({
    window_ms: z.int().positive(),
    names: z.array(z.string()).min(1),
  }),
  normalization: z.strictObject({
    mean: z.array(z.number()),
    std: z.array(z.number().positive()),
  }),
  output: z.looseObject({
    name: z.string(),
    meaning: z.string(),
  }),
  threshold: z.number().positive(),
  training: z.looseObject({ description: z.string() }),
  metrics: z.record(z.string(), z.unknown()),
});

export type ModelCard = z.output<typeof modelCardSchema>;

export class ModelCardError extends Error {
  constructor(
    readonly field: string,
    readonly detail: string,
    readonly file?: string,
  ) {
    super(`${file ? `${basename(file)}: ` : ''}${field}: ${detail}`);
    this.name = 'ModelCardError';
  }
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Parses and cross-checks a card's own fields (no graph yet). */
export function parseCard(json: unknown, file?: string): ModelCard {
  const res = modelCardSchema.safeParse(json);
  if (!res.success) {
    const issue = res.error.issues[0] as z.core.$ZodIssue;
    throw new ModelCardError(issue.path.join('.') || '(card)', issue.message, file);
  }
  const card = res.data;
  const n = card.features.names.length;
  card.features.names.forEach((name, i) => {
    try {
      parseFeatureName(name);
    } catch (err) {
      throw new ModelCardError(`features.names.${i}`, (err as Error).message, file);
    }
  });
  if (card.normalization.mean.length !== n)
    throw new ModelCardError('normalization.mean', `has ${card.normalization.mean.length} values for ${n} features`, file);
  if (card.normalization.std.length !== n)
    throw new ModelCardError('normalization.std', `has ${card.normalization.std.length} values for ${n} features`, file);
  const input = card.inputs[0] as z.output<typeof tensorSpec>;
  if (input.shape.length !== 2 || input.shape[1] !== n)
    throw new ModelCardError(
      'inputs.0.shape',
      `must be [batch, ${n}] for ${n} features, is ${JSON.stringify(input.shape)}`,
      file,
    );
  if (!card.outputs.some((o) => o.name === card.output.name))
    throw new ModelCardError('output.name', `"${card.output.name}" is not one of outputs[].name`, file);
  return card;
}

export interface CardFile {
  readonly card: ModelCard;
  readonly cardPath: string;
  readonly modelPath: string;
  readonly bytes: Uint8Array;
}

/** Reads a card and its model file, and checks the file's sha256. No ONNX runtime involved. */
export function readCardFile(cardPath: string): CardFile {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(cardPath, 'utf8'));
  } catch (err) {
    throw new ModelCardError('(card)', `cannot read card: ${(err as Error).message}`, cardPath);
  }
  const card = parseCard(json, cardPath);
  const modelPath = join(dirname(cardPath), card.model_file);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(modelPath);
  } catch (err) {
    throw new ModelCardError('model_file', `cannot read ${card.model_file}: ${(err as Error).message}`, cardPath);
  }
  const actual = sha256(bytes);
  if (actual !== card.sha256)
    throw new ModelCardError('sha256', `card says ${card.sha256}, ${card.model_file} is ${actual}`, cardPath);
  return { card, cardPath, modelPath, bytes };
}

const dynamicDim = (d: number | string): boolean => typeof d === 'string' || d < 0;

function checkSpecs(
  kind: 'inputs' | 'outputs',
  specs: ModelCard['inputs'],
  meta: readonly InferenceSession.ValueMetadata[],
  file?: string,
): void {
  if (meta.length !== specs.length)
    throw new ModelCardError(
      kind,
      `card lists ${specs.length} (${specs.map((s) => s.name).join(', ')}), graph has ${meta.length} (${meta.map((m) => m.name).join(', ')})`,
      file,
    );
  specs.forEach((spec, i) => {
    const m = meta[i] as InferenceSession.ValueMetadata;
    if (m.name !== spec.name)
      throw new ModelCardError(`${kind}.${i}.name`, `card says "${spec.name}", graph has "${m.name}"`, file);
    if (!m.isTensor) throw new ModelCardError(`${kind}.${i}`, `graph ${kind} "${m.name}" is not a tensor`, file);
    if (m.type !== spec.dtype)
      throw new ModelCardError(`${kind}.${i}.dtype`, `card says ${spec.dtype}, graph has ${m.type}`, file);
    const gs = m.shape;
    if (gs.length > 0) {
      const bad =
        gs.length !== spec.shape.length ||
        spec.shape.some((d, j) => {
          const g = gs[j] as number | string;
          return dynamicDim(d) ? !dynamicDim(g) : g !== d;
        });
      if (bad)
        throw new ModelCardError(
          `${kind}.${i}.shape`,
          `card says ${JSON.stringify(spec.shape)}, graph has ${JSON.stringify(gs)}`,
          file,
        );
    }
  });
}

/**
 * Checks a card against a loaded graph: names, order, types and shapes of inputs and outputs, then
 * a smoke inference on zeros (batch of 2) whose score output must have one finite value per row.
 */
export async function checkCardAgainstSession(
  card: ModelCard,
  session: InferenceSession,
  Tensor: typeof import('onnxruntime-node').Tensor,
  file?: string,
): Promise<void> {
  checkSpecs('inputs', card.inputs, session.inputMetadata, file);
  checkSpecs('outputs', card.outputs, session.outputMetadata, file);
  const input = card.inputs[0] as ModelCard['inputs'][number];
  const n = card.features.names.length;
  let out: InferenceSession.OnnxValueMapType;
  try {
    out = await session.run({ [input.name]: new Tensor('float32', new Float32Array(2 * n), [2, n]) });
  } catch (err) {
    throw new ModelCardError('inputs', `smoke inference on zeros failed: ${(err as Error).message}`, file);
  }
  const score = out[card.output.name] as import('onnxruntime-node').Tensor | undefined;
  if (!score) throw new ModelCardError('output.name', `smoke inference returned no "${card.output.name}"`, file);
  if (score.data.length !== 2)
    throw new ModelCardError(
      'output.name',
      `"${card.output.name}" must give one score per window; gave ${score.data.length} values for 2 windows`,
      file,
    );
  for (const v of score.data as Float32Array)
    if (!Number.isFinite(v)) throw new ModelCardError('output.name', `smoke inference gave a non-finite score (${v})`, file);
}
