import type { BoundSensor, SourceContext, SourceDriver } from '../../agent/driver.js';
import { rng } from '../../agent/prng.js';
import { makeReading } from '../../agent/reading.js';
import type { Metric, Reading } from '../../agent/types.js';
import { type FaultConfig, type SimulatorAddress, type SimulatorConfig, simulatorAddressSchema } from './schema.js';

interface Shape {
  base: number;
  noise: number;
  driftPerHour: number;
  loadAmplitude: number;
  loadPeriod: number;
}

const DEFAULT_SHAPES: Partial<Record<Metric, Shape>> = {
  temperature: { base: 65, noise: 0.3, driftPerHour: 0.5, loadAmplitude: 3, loadPeriod: 300_000 },
  pressure: { base: 6, noise: 0.05, driftPerHour: 0, loadAmplitude: 0.4, loadPeriod: 300_000 },
  vibration: { base: 2.5, noise: 0.15, driftPerHour: 0.02, loadAmplitude: 0.5, loadPeriod: 300_000 },
  current: { base: 40, noise: 0.5, driftPerHour: 0, loadAmplitude: 5, loadPeriod: 300_000 },
  flow: { base: 30, noise: 0.4, driftPerHour: 0, loadAmplitude: 3, loadPeriod: 300_000 },
  voltage: { base: 400, noise: 1, driftPerHour: 0, loadAmplitude: 0, loadPeriod: 300_000 },
};
const FALLBACK_SHAPE: Shape = { base: 0, noise: 1, driftPerHour: 0, loadAmplitude: 0, loadPeriod: 300_000 };

function hashString(seed: number, s: string): number {
  let h = (seed ^ 0x811c9dc5) >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

interface SensorState {
  sensor: BoundSensor;
  shape: Shape;
  rand: () => number;
  spare: number | undefined;
  ar: number;
  phase: number;
  faults: FaultConfig[];
  stuckAt: number | undefined;
}

/**
 * Deterministic signal source: the same seed, sensors and faults give the same readings, whatever
 * the wall clock does. Each sensor has its own random stream, so adding a sensor changes no other.
 */
export class SignalGenerator {
  private readonly states: SensorState[];
  private readonly period: number;
  private step = 0;

  constructor(
    sensors: readonly BoundSensor[],
    config: Pick<SimulatorConfig, 'seed' | 'rate' | 'faults'>,
    readonly t0: number,
  ) {
    this.period = 1000 / config.rate;
    this.states = sensors.map((sensor) => {
      const addr: SimulatorAddress = simulatorAddressSchema.parse(sensor.address ?? {});
      const d = DEFAULT_SHAPES[sensor.metric] ?? FALLBACK_SHAPE;
      const rand = rng(hashString(config.seed, `${sensor.asset}/${sensor.id}`));
      return {
        sensor,
        shape: {
          base: addr.base ?? d.base,
          noise: addr.noise ?? d.noise,
          driftPerHour: addr.drift_per_hour ?? d.driftPerHour,
          loadAmplitude: addr.load_amplitude ?? d.loadAmplitude,
          loadPeriod: addr.load_period ?? d.loadPeriod,
        },
        rand,
        spare: undefined,
        ar: 0,
        // Load cycles are shared by the sensors of one asset (they follow the same pump).
        phase: (hashString(config.seed, sensor.asset) / 4294967296) * 2 * Math.PI,
        faults: config.faults.filter((f) => f.asset === sensor.asset && f.sensor === sensor.id),
        stuckAt: undefined,
      };
    });
  }

  /** Event time of the next reading to be generated. */
  get nextTime(): number {
    return this.t0 + this.step * this.period;
  }

  /** Appends every reading with event time before `until` to `out`; returns how many. */
  generateUntil(until: number, ingestTime: number, out: Reading[]): number {
    const before = out.length;
    while (this.nextTime < until) this.generateStep(ingestTime, out);
    return out.length - before;
  }

  /** Appends exactly `n` steps (one reading per sensor each, fewer during dropouts). */
  generateSteps(n: number, ingestTime: number, out: Reading[]): void {
    for (let i = 0; i < n; i++) this.generateStep(ingestTime, out);
  }

  private generateStep(ingestTime: number, out: Reading[]): void {
    const t = this.nextTime;
    const elapsed = t - this.t0;
    for (const s of this.states) {
      const v = this.valueAt(s, elapsed);
      if (v !== undefined) out.push(makeReading(s.sensor, v, Math.round(t), ingestTime));
    }
    this.step++;
  }

  private gauss(s: SensorState): number {
    if (s.spare !== undefined) {
      const v = s.spare;
      s.spare = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = s.rand();
    const r = Math.sqrt(-2 * Math.log(u));
    const th = 2 * Math.PI * s.rand();
    s.spare = r * Math.sin(th);
    return r * Math.cos(th);
  }

  private valueAt(s: SensorState, elapsed: number): number | undefined {
    const { shape } = s;
    // AR(1) noise: sensors wander a little instead of jumping white-noise style.
    s.ar = 0.9 * s.ar + 0.4359 * shape.noise * this.gauss(s);
    const load = Math.sin((2 * Math.PI * elapsed) / shape.loadPeriod + s.phase);
    let v = shape.base + shape.loadAmplitude * load + (shape.driftPerHour * elapsed) / 3_600_000 + s.ar;
    for (const f of s.faults) {
      const into = elapsed - f.start;
      if (into < 0 || into >= f.duration) {
        if (f.kind === 'stuck' && into >= f.duration) s.stuckAt = undefined;
        continue;
      }
      switch (f.kind) {
        case 'overheat_ramp':
          v += f.magnitude * (into / f.duration);
          break;
        case 'pressure_drop':
          v -= f.magnitude * (1 - Math.exp(-into / 2000));
          break;
        case 'bearing_wear': {
          const p = into / f.duration;
          v *= 1 + f.magnitude * p * p;
          if (s.rand() < 0.02 * p) v += shape.base * f.magnitude * s.rand();
          break;
        }
        case 'stuck':
          s.stuckAt ??= v;
          v = s.stuckAt;
          break;
        case 'dropout':
          return undefined;
      }
    }
    return v;
  }
}

export class SimulatorSource implements SourceDriver {
  private timer: NodeJS.Timeout | undefined;
  private gen: SignalGenerator | undefined;
  private wallStart = 0;
  private readonly batch: Reading[] = [];

  constructor(
    private readonly config: SimulatorConfig & { id: string },
    private readonly ctx: SourceContext,
  ) {}

  init(): void {
    if (this.ctx.sensors.length === 0) throw new Error(`simulator "${this.ctx.id}" has no sensors (assets[].sensors[].source)`);
    const known = new Set(this.ctx.sensors.map((s) => `${s.asset}/${s.id}`));
    for (const f of this.config.faults) {
      if (!known.has(`${f.asset}/${f.sensor}`)) {
        throw new Error(`fault on ${f.asset}/${f.sensor}: no such sensor on simulator "${this.ctx.id}"`);
      }
    }
  }

  async start(): Promise<void> {
    if (this.timer) return;
    const t0 = this.config.start_time ? Date.parse(this.config.start_time) : this.ctx.now();
    this.gen = new SignalGenerator(this.ctx.sensors, this.config, t0);
    this.wallStart = this.ctx.now();
    this.timer = setInterval(() => this.tick(), this.config.tick);
  }

  private tick(): void {
    const gen = this.gen as SignalGenerator;
    const now = this.ctx.now();
    this.batch.length = 0;
    gen.generateUntil(gen.t0 + (now - this.wallStart), now, this.batch);
    if (this.batch.length > 0) this.ctx.emit(this.batch);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
