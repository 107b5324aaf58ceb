/**
 * The reading → actuator-call measurement shared by bench sections: between background batches, a
 * reading crosses the setpoint of `hot`, the time until the actuator is called is taken, then the
 * value falls back and the trip is acknowledged so the next sample can trip again.
 */
import type { ActuatorDriver, BoundSensor } from '../../agent/driver.js';
import type { Interlocks } from '../../agent/interlock.js';
import type { Pipeline } from '../../agent/pipeline.js';
import { makeReading } from '../../agent/reading.js';
import type { Reading } from '../../agent/types.js';
import type { SignalGenerator } from '../../drivers/simulator/simulator.js';

export interface TripProbe {
  readonly pipeline: Pipeline;
  readonly interlocks: Interlocks;
  readonly gen: SignalGenerator;
  readonly hot: BoundSensor;
  /** hrtime of the latest actuator call (the bench's actuator records it). */
  readonly calledAt: () => bigint;
}

/** µs per sample. Yields to the event loop every `yieldEvery` samples so the store and model work. */
export async function measureTrips(p: TripProbe, samples: number, yieldEvery: number): Promise<number[]> {
  const background: Reading[] = [];
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    background.length = 0;
    p.gen.generateSteps(2, 0, background);
    p.pipeline.ingest(background);
    const t = p.gen.nextTime;
    const trip = [makeReading(p.hot, 200, t, t)];
    const start = process.hrtime.bigint();
    p.pipeline.ingest(trip);
    out.push(Number(p.calledAt() - start) / 1000);
    p.pipeline.ingest([makeReading(p.hot, 20, t + 1, t + 1)]);
    p.interlocks.ack(p.hot.asset, 'bench');
    if (i % yieldEvery === 0) await new Promise((r) => setImmediate(r));
  }
  return out;
}

/** An actuator that does nothing but note when it was called, for the latency figures. */
export function timingActuator(): { actuator: ActuatorDriver; calledAt: () => bigint } {
  let at = 0n;
  return {
    actuator: {
      init() {},
      async start() {},
      async stop() {},
      execute() {
        at = process.hrtime.bigint();
        return Promise.resolve({ ok: true });
      },
    },
    calledAt: () => at,
  };
}

/**
 * The benches' small plant: 10 simulated pumps (temperature, pressure, vibration), a threshold trip on
 * each temperature and a log actuator as the stop; `extra` YAML lines are appended (e.g. a model).
 */
export function tripPlantYaml(extra: readonly string[] = []): string {
  const lines = ['sources: [{ id: sim, type: simulator }]', 'assets:'];
  for (let a = 0; a < 10; a++) {
    lines.push(`  - id: pump-${a}`, '    sensors:');
    for (const m of ['temperature', 'pressure', 'vibration']) lines.push(`      - { id: ${m}, metric: ${m}, source: sim }`);
  }
  lines.push('detectors:');
  for (let a = 0; a < 10; a++)
    lines.push(
      `  - { id: hot-${a}, type: threshold, asset: pump-${a}, sensor: temperature, setpoint: 150, delta_down: 10, trip: true }`,
    );
  lines.push('actuators: [{ id: stop, type: log }]', 'interlocks:');
  for (let a = 0; a < 10; a++) lines.push(`  - { asset: pump-${a}, actions: [{ actuator: stop }] }`);
  lines.push(...extra);
  return lines.join('\n');
}
