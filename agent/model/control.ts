/**
 * The control-message side of hot swap, for the MQTT/Kafka control path: a message naming a model
 * version makes the agent validate that model from its models directory and swap to it. Failures
 * keep the old model and are reported as an `alarm` event by the service, and in the result.
 */
import { z } from 'zod';
import type { ModelService, SwapResult } from './service.js';

export const modelControlMessage = z.strictObject({ model_version: z.string().min(1) });
export type ModelControlMessage = z.output<typeof modelControlMessage>;

export interface ModelControl {
  /** Validates `msg` and swaps to the named version. Never throws; the result says what happened. */
  apply(msg: unknown): Promise<SwapResult>;
  /** Version of the active model. */
  current(): string | undefined;
}

export function createModelControl(service: ModelService): ModelControl {
  return {
    async apply(msg) {
      const parsed = modelControlMessage.safeParse(msg);
      if (!parsed.success)
        return {
          ok: false,
          reason: `bad model control message: ${parsed.error.issues[0]?.message}`,
          kept: service.current?.version,
        };
      return service.applyVersion(parsed.data.model_version, 'control');
    },
    current: () => service.current?.version,
  };
}
