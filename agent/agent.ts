/**
 * The agent: wires sources → pipeline → interlocks/actuators, and the event store, from a config.
 * Startup order: store, actuators, pipeline, then sources (so the first reading can already stop a
 * machine). Shutdown order is the reverse: sources, pipeline flush, actuators, store.
 */
import { existsSync } from 'node:fs';
import { loadActuator, loadSource } from '../drivers/index.js';
import type { AgentConfig } from './config/schema.js';
import type { ActuatorDriver, BoundSensor, SourceCounter, SourceDriver } from './driver.js';
import { Interlocks } from './interlock.js';
import type { Logger } from './log.js';
import { Pipeline } from './pipeline.js';
import { openDb } from './store/db.js';
import { activeTrips } from './store/queries.js';
import { EventStore } from './store/store.js';
import { Supervised } from './supervisor.js';
import type { Reading } from './types.js';

export interface AgentOptions {
  readonly logger: Logger;
  readonly now?: () => number;
}

export class Agent {
  readonly store: EventStore;
  readonly interlocks: Interlocks;
  readonly pipeline: Pipeline;
  readonly sourceCounters = new Map<string, Record<SourceCounter, number>>();
  private readonly sources: Supervised[] = [];
  private readonly actuators = new Map<string, ActuatorDriver>();
  private readonly now: () => number;
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly config: AgentConfig,
    private readonly logger: Logger,
    now: (() => number) | undefined,
  ) {
    this.now = now ?? Date.now;
    const s = config.store;
    this.store = new EventStore({
      path: s.path,
      synchronous: s.synchronous,
      flushInterval: s.flush_interval,
      batchSize: s.batch_size,
      logger: logger.child({ component: 'store' }),
      now: this.now,
    });
    const emit = this.store.append.bind(this.store);
    this.interlocks = new Interlocks(
      config.interlocks,
      this.actuators,
      emit,
      logger.child({ component: 'interlock' }),
      this.now,
      config.detectors,
    );
    this.pipeline = new Pipeline(config, this.interlocks, emit);
  }

  /** Builds and initialises every component (no I/O besides reading the trip state back). */
  static async create(config: AgentConfig, opts: AgentOptions): Promise<Agent> {
    const agent = new Agent(config, opts.logger, opts.now);
    await agent.init();
    return agent;
  }

  private async init(): Promise<void> {
    for (const a of this.config.actuators) {
      const mod = await loadActuator(a.type);
      const driver = await mod.create(a as never, {
        id: a.id,
        logger: this.logger.child({ actuator: a.id }),
        now: this.now,
        ack: (asset, by, via) => this.interlocks.ack(asset, by, via),
      });
      await driver.init();
      this.actuators.set(a.id, driver);
    }
    for (const src of this.config.sources) {
      const mod = await loadSource(src.type);
      const sensors: BoundSensor[] = this.config.assets.flatMap((asset) =>
        asset.sensors.filter((s) => s.source === src.id).map((s) => ({ ...s, asset: asset.id })),
      );
      const counters: Record<SourceCounter, number> = { readings: 0, errors: 0, malformed: 0, reconnects: 0, dropped: 0 };
      this.sourceCounters.set(src.id, counters);
      const logger = this.logger.child({ source: src.id });
      const driver: SourceDriver = await mod.create(src as never, {
        id: src.id,
        sensors,
        logger,
        emit: (batch: readonly Reading[]) => {
          counters.readings += batch.length;
          this.pipeline.ingest(batch);
        },
        count: (c, n = 1) => {
          counters[c] += n;
        },
        now: this.now,
      });
      await driver.init();
      this.sources.push(new Supervised(src.id, driver, logger));
    }
  }

  async start(): Promise<void> {
    const path = this.config.store.path;
    if (path !== ':memory:' && existsSync(path)) {
      const db = openDb(path, this.config.store.synchronous);
      try {
        this.interlocks.restore(activeTrips(db).map((t) => t.asset));
      } finally {
        db.close();
      }
    }
    await this.store.open();
    for (const a of this.actuators.values()) await a.start();
    this.interlocks.start();
    for (const s of this.sources) await s.start();
    this.logger.info(
      { sources: this.sources.length, actuators: this.actuators.size, tripped: this.interlocks.tripped(), store: path },
      'agent started',
    );
  }

  /** Stops sources, closes open windows, stops actuators, commits the store. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const s of this.sources) {
        await s.stop().catch((err: Error) => this.logger.warn({ source: s.name, err: err.message }, 'source stop failed'));
      }
      this.pipeline.flush();
      this.interlocks.stop();
      for (const [id, a] of this.actuators) {
        await a.stop().catch((err: Error) => this.logger.warn({ actuator: id, err: err.message }, 'actuator stop failed'));
      }
      await this.store.close();
      this.logger.info({ readings: this.pipeline.counters.readings, events: this.store.stats.persisted }, 'agent stopped');
    })();
    return this.stopping;
  }
}
