/**
 * Interlocks: a tripping anomaly latches the asset and issues its stop actions in configured order,
 * synchronously, in the same tick as the reading that caused it. Acknowledgements from the devices
 * arrive later and are audited as their own events; nothing here waits for the store.
 */

import type { InterlockConfig } from './config/schema.js';
import type { ActuatorDriver } from './driver.js';
import type { Logger } from './log.js';
import type { AgentEvent, Anomaly } from './types.js';

export type MachineState = 'running' | 'tripped';

interface AssetLatch {
  readonly config: InterlockConfig;
  state: MachineState;
  trippedAt: number | undefined;
  detector: string | undefined;
}

export class Interlocks {
  private readonly latches = new Map<string, AssetLatch>();
  tripCount = 0;

  constructor(
    interlocks: readonly InterlockConfig[],
    private readonly actuators: ReadonlyMap<string, ActuatorDriver>,
    private readonly emit: (ev: AgentEvent) => void,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    for (const il of interlocks)
      this.latches.set(il.asset, { config: il, state: 'running', trippedAt: undefined, detector: undefined });
  }

  state(asset: string): MachineState {
    return this.latches.get(asset)?.state ?? 'running';
  }

  /** Re-latches assets that were tripped and not acknowledged when the agent last stopped. */
  restore(tripped: readonly string[]): void {
    for (const asset of tripped) {
      const latch = this.latches.get(asset);
      if (latch) latch.state = 'tripped';
    }
  }

  /** Hot path. Returns true when this anomaly tripped the asset now. */
  onAnomaly(a: Anomaly): boolean {
    if (!a.trip || a.state !== 'raised') return false;
    const latch = this.latches.get(a.asset);
    if (!latch || latch.state === 'tripped') return false;
    const decidedAt = this.now();
    latch.state = 'tripped';
    latch.trippedAt = decidedAt;
    latch.detector = a.detector;
    this.tripCount++;
    const sent: Array<{ actuator: string; command: string; sent_at: number }> = [];
    for (const action of latch.config.actions) {
      const driver = this.actuators.get(action.actuator);
      if (!driver) continue;
      const sentAt = this.now();
      const cmd = {
        asset: a.asset,
        command: action.command,
        reason: { detector: a.detector, value: a.value, event_time: a.eventTime },
      };
      let result: ReturnType<ActuatorDriver['execute']>;
      try {
        result = driver.execute(cmd);
      } catch (err) {
        result = Promise.resolve({ ok: false, error: (err as Error).message });
      }
      sent.push({ actuator: action.actuator, command: action.command, sent_at: sentAt });
      result.then(
        (res) => this.recordAck(a, action.actuator, action.command, sentAt, res.ok, res.ack, res.error),
        (err: Error) => this.recordAck(a, action.actuator, action.command, sentAt, false, undefined, err.message),
      );
    }
    this.emit({
      kind: 'action',
      key: a.asset,
      eventTime: a.eventTime,
      payload: {
        type: 'trip',
        asset: a.asset,
        detector: a.detector,
        severity: a.severity,
        value: a.value,
        reading_event_time: a.eventTime,
        decided_at: decidedAt,
        commands: sent,
      },
    });
    this.logger.warn({ asset: a.asset, detector: a.detector, value: a.value }, 'asset tripped');
    return true;
  }

  private recordAck(
    a: Anomaly,
    actuator: string,
    command: string,
    sentAt: number,
    ok: boolean,
    ack: unknown,
    error: string | undefined,
  ): void {
    const at = this.now();
    this.emit({
      kind: 'action',
      key: a.asset,
      eventTime: a.eventTime,
      payload: {
        type: 'command_result',
        asset: a.asset,
        actuator,
        command,
        ok,
        sent_at: sentAt,
        acked_at: at,
        ...(ack ? { ack } : {}),
        ...(error ? { error } : {}),
      },
    });
    if (!ok)
      this.logger.error({ asset: a.asset, actuator, command, error }, 'stop command failed; a person must check the machine');
  }

  /** Operator acknowledgement: unlatches the asset. Returns false when it was not tripped. */
  ack(asset: string, by: string): boolean {
    const latch = this.latches.get(asset);
    if (latch?.state !== 'tripped') return false;
    latch.state = 'running';
    const at = this.now();
    this.emit({ kind: 'audit', key: asset, eventTime: at, payload: { type: 'ack', asset, by, at } });
    this.logger.info({ asset, by }, 'trip acknowledged');
    return true;
  }

  tripped(): string[] {
    return [...this.latches.entries()].filter(([, l]) => l.state === 'tripped').map(([a]) => a);
  }
}
