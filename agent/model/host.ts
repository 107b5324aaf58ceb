/**
 * Holds ONNX sessions by slot id and runs batches on them. The same class serves the in-process
 * runner and the worker thread (worker.ts), so both validate and score identically.
 * A slot is loaded and validated completely before anyone can score on it; releasing a slot only
 * happens once the caller knows no batch is using it.
 */
import * as ort from 'onnxruntime-node';
import { checkCardAgainstSession, type ModelCard, ModelCardError } from './card.js';

interface Slot {
  readonly card: ModelCard;
  readonly session: ort.InferenceSession;
  readonly inputName: string;
  readonly outputName: string;
  readonly mean: Float32Array;
  readonly invStd: Float32Array;
  readonly n: number;
}

export class SessionHost {
  private readonly slots = new Map<number, Slot>();

  /** Creates a session from the model bytes and checks it against the card; throws ModelCardError. */
  async load(id: number, card: ModelCard, bytes: Uint8Array, file?: string): Promise<void> {
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        // Tiny models: a thread pool costs more in hand-offs than it saves.
        intraOpNumThreads: 1,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        // The arena pre-reserves memory sized for large tensors; these windows are a few KB.
        enableCpuMemArena: false,
      });
    } catch (err) {
      throw new ModelCardError('model_file', `not a loadable ONNX graph: ${(err as Error).message.split('\n')[0]}`, file);
    }
    try {
      await checkCardAgainstSession(card, session, ort.Tensor, file);
    } catch (err) {
      await session.release().catch(() => {});
      throw err;
    }
    const n = card.features.names.length;
    this.slots.set(id, {
      card,
      session,
      inputName: (card.inputs[0] as ModelCard['inputs'][number]).name,
      outputName: card.output.name,
      mean: Float32Array.from(card.normalization.mean),
      invStd: Float32Array.from(card.normalization.std, (s) => 1 / s),
      n,
    });
  }

  /**
   * Scores `rows` windows of raw features laid out row-major in `data` (normalised here, in place).
   * Returns one score per window.
   */
  async run(id: number, data: Float32Array, rows: number): Promise<Float32Array> {
    const slot = this.slots.get(id);
    if (!slot) throw new Error(`model slot ${id} is not loaded`);
    const { n, mean, invStd } = slot;
    for (let r = 0; r < rows; r++) {
      const o = r * n;
      for (let j = 0; j < n; j++) data[o + j] = ((data[o + j] as number) - (mean[j] as number)) * (invStd[j] as number);
    }
    const out = await slot.session.run({ [slot.inputName]: new ort.Tensor('float32', data.subarray(0, rows * n), [rows, n]) });
    return (out[slot.outputName] as ort.Tensor).data as Float32Array;
  }

  async release(id: number): Promise<void> {
    const slot = this.slots.get(id);
    this.slots.delete(id);
    await slot?.session.release();
  }

  async releaseAll(): Promise<void> {
    for (const id of [...this.slots.keys()]) await this.release(id);
  }
}
