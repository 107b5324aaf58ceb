/**
 * A small plant driven through the real `Interlocks` and `Pipeline` with a real latch journal in a temp
 * dir, for the hazard tests and the property test: readings in, acknowledgements, restarts (a new
 * interlock and pipeline that read the journal back, as `Agent.start()` does).
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../agent/config/load.js';
import type { AgentConfig } from '../../agent/config/schema.js';
import {
  type ActuatorCommand,
  type ActuatorDriver,
  type ActuatorResult,
  type BoundSensor,
  bindSensor,
} from '../../agent/driver.js';
import { Interlocks } from '../../agent/interlock.js';
import { LatchJournal } from '../../agent/latch-journal.js';
import { Pipeline } from '../../agent/pipeline.js';
import { makeReading } from '../../agent/reading.js';
import type { AgentEvent, Quality } from '../../agent/types.js';

const silent = pino({ level: 'silent' });

/**
 * pump-1: overheat above 95 degC (clears below 80), sensor range -40..200, reset refuse (the default).
 * pump-2: low pressure below 3.8 bar (clears above 4.5), range 0..25, reset when_clear.
 * Both fail-safe stop (the default) with silent_after 5s.
 */
export const PLANT_YAML = `
sources: [{ id: sim, type: simulator }]
assets:
  - id: pump-1
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim, min: -40, max: 200 }
  - id: pump-2
    sensors:
      - { id: pressure, metric: pressure, unit: bar, source: sim, min: 0, max: 25 }
detectors:
  - { id: overheat, type: threshold, asset: pump-1, sensor: temperature, setpoint: 90, delta_up: 5, delta_down: 10, severity: critical, trip: true }
  - { id: low-pressure, type: threshold, asset: pump-2, sensor: pressure, direction: below, setpoint: 4, delta_up: 0.2, delta_down: 0.5, severity: critical, trip: true }
actuators: [{ id: stop, type: log }]
interlocks:
  - asset: pump-1
    reassert_every: 1s
    fail_safe: { silent_after: 5s }
    actions: [{ actuator: stop, command: stop, release: reset }]
  - asset: pump-2
    reset: when_clear
    reassert_every: 1s
    fail_safe: { silent_after: 5s }
    actions: [{ actuator: stop, command: stop, release: reset }]
`;

export async function plantConfig(yaml = PLANT_YAML): Promise<AgentConfig> {
  const res = await parseConfig(yaml, 'plant.yaml');
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  return res.config;
}

export interface Command {
  readonly asset: string;
  readonly command: string;
  readonly phase: unknown;
  /** Which incarnation (0 = first start, +1 per restart) sent it. */
  readonly life: number;
}

export class Plant {
  readonly commands: Command[] = [];
  readonly events: AgentEvent[] = [];
  interlocks!: Interlocks;
  pipeline!: Pipeline;
  journal!: LatchJournal;
  life = -1;
  /** What the actuator answers (a device that fails or whose read-back disagrees: ok false). */
  result: () => Promise<ActuatorResult> = () => Promise.resolve({ ok: true });
  private readonly sensors = new Map<string, BoundSensor>();
  private readonly actuator: ActuatorDriver = {
    init() {},
    async start() {},
    async stop() {},
    execute: (cmd: ActuatorCommand) => {
      this.commands.push({ asset: cmd.asset, command: cmd.command, phase: cmd.reason.phase, life: this.life });
      return this.result();
    },
  };

  constructor(
    readonly config: AgentConfig,
    readonly dir: string,
  ) {
    for (const a of config.assets) for (const s of a.sensors) this.sensors.set(`${a.id}/${s.id}`, bindSensor(s, a.id));
  }

  /** Starts (or, after `crash()`, restarts) the interlocks as the agent does: journal, restore, start. */
  start(): void {
    this.life++;
    this.journal = new LatchJournal(join(this.dir, 'agent.db.latches'));
    const emit = (e: AgentEvent) => this.events.push(e);
    this.interlocks = new Interlocks(
      this.config.interlocks,
      new Map([['stop', this.actuator]]),
      emit,
      silent,
      Date.now,
      this.config.detectors,
      { journal: this.journal },
    );
    this.pipeline = new Pipeline(this.config, this.interlocks, emit);
    const { latched } = this.journal.open();
    this.interlocks.restore([...latched.values()]);
    this.interlocks.start();
  }

  /** The process ends without any shutdown work: timers stop, the journal file is left as written. */
  crash(): void {
    this.interlocks.stop();
    this.journal.close();
  }

  feed(asset: string, sensor: string, value: number, quality: Quality = 'good', at = Date.now()): void {
    const s = this.sensors.get(`${asset}/${sensor}`);
    if (!s) throw new Error(`no sensor ${asset}/${sensor}`);
    this.pipeline.ingest([makeReading(s, value, at, Date.now(), quality)]);
  }

  ofType(type: string): Array<Record<string, unknown>> {
    return this.events.map((e) => e.payload as Record<string, unknown>).filter((p) => p.type === type);
  }
}
