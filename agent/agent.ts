/**
 * The agent: wires sources → pipeline → interlocks/actuators, and the event store, from a config.
 * Startup order: store, actuators, pipeline, then sources (so the first reading can already stop a
 * machine). Shutdown order is the reverse: sources, pipeline flush, actuators, store.
 */
import { existsSync } from 'node:fs';
import { loadActuator, loadSource } from '../drivers/index.js';
import { Aftermath } from './aftermath.js';
import type { AgentConfig } from './config/schema.js';
import { ControlPlane } from './control/control.js';
import type { MqttControl } from './control/mqtt.js';
import { SetpointStore } from './control/setpoints.js';
import { type ActuatorDriver, type BoundSensor, bindSensor, type SourceCounter, type SourceDriver } from './driver.js';
import type { DeviceErrorKind, DeviceHealth } from './health.js';
import { Interlocks, type RestoredLatch } from './interlock.js';
import { LatchJournal } from './latch-journal.js';
import { LearnedPersistence } from './learning.js';
import type { Logger } from './log.js';
import { createModelControl, type ModelControl } from './model/control.js';
import { ModelService, modelOptionsFromConfig } from './model/service.js';
import { Pipeline } from './pipeline.js';
import { sensorSlots } from './reading.js';
import { openDb } from './store/db.js';
import { checkStoreFile } from './store/file.js';
import { LearnedStateStore } from './store/learned.js';
import { activeTrips } from './store/queries.js';
import { EventStore } from './store/store.js';
import { Supervised } from './supervisor.js';
import type { KafkaControl } from './sync/control.js';
import { SyncService } from './sync/service.js';
import type { AgentEvent, Reading } from './types.js';

const DEVICE_ALARM_INTERVAL_MS = 60_000;
/**
 * Window closes in the live agent (agent/judge/engine.ts): none with a reading, since the readings of one
 * TCP chunk run in one go and a few closes each add up to every sensor's close before the chunk's last
 * reading (a 40 ms stretch every 10 s with 2,000 sensors at 20k/s). They run between event-loop turns
 * instead, 4 sensors at a time for at most half a millisecond per turn.
 */
export const SPREAD_CLOSES = { perReading: 0, perTurn: 4, turnMs: 0.5 } as const;

export interface AgentOptions {
  readonly logger: Logger;
  readonly now?: () => number;
}

export class Agent {
  readonly store: EventStore;
  readonly interlocks: Interlocks;
  /** Where trips are made durable before the store hears of them (undefined for a :memory: store). */
  readonly journal: LatchJournal | undefined;
  /** Why the latch journal is unusable, when it is (reported by /readyz and STATUS=). */
  journalError: string | undefined;
  readonly pipeline: Pipeline;
  readonly control: ControlPlane;
  private setpoints: SetpointStore | undefined;
  /** The MQTT control topic, when configured (started by start()). */
  controlTopic: MqttControl | undefined;
  /** The Kafka sync of the store (when `sync.kafka` is configured) and the Kafka control topic. */
  sync: SyncService | undefined;
  kafkaControl: KafkaControl | undefined;
  readonly sourceCounters = new Map<string, Record<SourceCounter, number>>();
  /** The on-device model, when configured; `modelControl` is what control messages call. */
  readonly model: ModelService | undefined;
  readonly modelControl: ModelControl | undefined;
  /** Observers of every reading batch after detection ran (twin, dashboard). Must be cheap and synchronous. */
  readonly readingTaps: Array<(batch: readonly Reading[]) => void> = [];
  /** Like `readingTaps`, with a path for one reading of a sensor known by its slot (no lookup by ids). */
  readonly sensorTaps: Array<{ batch(batch: readonly Reading[]): void; one(slot: number, r: Reading): void }> = [];
  /** Observers of every event handed to the store (twin, telemetry). Must be cheap and synchronous. */
  readonly eventTaps: Array<(ev: AgentEvent) => void> = [];
  /** Every device behind the sources (Modbus links and units, MQTT brokers): /metrics, twin, dashboard. */
  readonly devices: DeviceHealth[] = [];
  /** Learned baselines of the detectors, kept in the store across restarts (contract E). */
  readonly learned: LearnedPersistence;
  /** What drivers of this agent share (one session per Modbus serial bus). */
  private readonly shared = new Map<string, unknown>();
  private readonly deviceAlarms = new Map<DeviceHealth, { open: boolean; lastRaise: number }>();
  private readonly sources: Supervised[] = [];
  private readonly actuators = new Map<string, ActuatorDriver>();
  private readonly now: () => number;
  private readonly emit: (ev: AgentEvent) => void;
  private readonly aftermath: Aftermath;
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
      limits: {
        maxBytes: s.max_bytes,
        minFreeBytes: s.min_free_bytes,
        retentionAgeMs: s.retention_age,
        retentionBytes: s.retention_bytes,
      },
      memoryBuffer: s.memory_buffer,
      gatewayId: config.gateway.id,
    });
    const deliver = (ev: AgentEvent): void => {
      this.store.append(ev);
      for (const tap of this.eventTaps) tap(ev);
    };
    // Events wait, in order, while the records of a command just sent are held (agent/aftermath.ts).
    const aftermath = new Aftermath((err) =>
      this.logger.error({ err: (err as Error).message }, 'recording what followed a command failed'),
    );
    this.aftermath = aftermath;
    // The interlocks are given `deliver` and the aftermath: they hold their own records.
    const emit = (ev: AgentEvent): void => aftermath.run(() => deliver(ev));
    this.emit = emit;
    this.store.alarmSink = emit;
    const journalPath = s.latch_journal ?? (s.path === ':memory:' ? undefined : `${s.path}.latches`);
    this.journal = journalPath ? new LatchJournal(journalPath) : undefined;
    if (this.journal)
      this.journal.onError = (err) => {
        this.journalError = err.message;
        this.logger.error({ err: err.message, path: journalPath }, 'latch journal write failed: a trip may not survive a crash');
        this.store.alarm('latch_journal_failed', 'latch journal write failed', { error: err.message });
      };
    this.interlocks = new Interlocks(
      config.interlocks,
      this.actuators,
      deliver,
      logger.child({ component: 'interlock' }),
      this.now,
      config.detectors,
      this.journal ? { journal: this.journal, aftermath } : { aftermath },
    );
    const m = config.model;
    if (m) {
      this.model = new ModelService({
        ...modelOptionsFromConfig(m),
        emit,
        logger: logger.child({ component: 'model' }),
        gatewayId: config.gateway.id,
        now: this.now,
      });
      this.modelControl = createModelControl(this.model);
    }
    this.pipeline = new Pipeline(config, this.interlocks, emit, this.now, {
      ...(this.model ? { model: { service: this.model, logger: logger.child({ component: 'model' }) } } : {}),
      spreadCloses: SPREAD_CLOSES,
    });
    this.learned = new LearnedPersistence(
      () => this.pipeline.detectorsById(),
      config.detectors,
      logger.child({ component: 'learning' }),
      this.now,
    );
    this.control = new ControlPlane({
      config,
      pipeline: this.pipeline,
      emit,
      logger: logger.child({ component: 'control' }),
      now: this.now,
      ...(this.modelControl ? { model: this.modelControl } : {}),
    });
  }

  /** The version of the on-device model scoring `asset`; null when none does (the twin shows it). */
  modelVersion(asset: string): string | null {
    return this.pipeline.modelVersion(asset);
  }

  /** Builds and initialises every component (no I/O besides reading the trip state back). */
  static async create(config: AgentConfig, opts: AgentOptions): Promise<Agent> {
    const agent = new Agent(config, opts.logger, opts.now);
    await agent.init();
    return agent;
  }

  private async init(): Promise<void> {
    if (this.config.control.mqtt) {
      // As a driver's init: a missing TLS file or password variable is a config error, not a failed start.
      const { mqttClientOptions } = await import('./mqtt-client.js');
      mqttClientOptions(this.config.control.mqtt, {});
    }
    for (const a of this.config.actuators) {
      const mod = await loadActuator(a.type);
      const driver = await mod.create(a as never, {
        id: a.id,
        logger: this.logger.child({ actuator: a.id }),
        now: this.now,
        shared: this.shared,
        ack: (asset, by, via) => this.interlocks.ack(asset, by, via),
      });
      await driver.init();
      this.actuators.set(a.id, driver);
    }
    const slots = sensorSlots(this.config.assets);
    for (const src of this.config.sources) {
      const mod = await loadSource(src.type);
      const sensors: BoundSensor[] = this.config.assets.flatMap((asset) =>
        asset.sensors
          .filter((s) => s.source === src.id)
          .map((s) => bindSensor(s, asset.id, slots.get(asset.id)?.get(s.id) as number)),
      );
      const one: Reading[] = [];
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
          for (const tap of this.sensorTaps) tap.batch(batch);
          for (const tap of this.readingTaps) tap(batch);
        },
        emitOne: (sensor: BoundSensor, r: Reading) => {
          const slot = sensor.slot;
          counters.readings++;
          if (slot === undefined) this.pipeline.ingest([r]);
          else this.pipeline.ingestOne(slot, r);
          const taps = this.sensorTaps;
          for (let i = 0; i < taps.length; i++) {
            const tap = taps[i] as (typeof taps)[number];
            if (slot === undefined) tap.batch([r]);
            else tap.one(slot, r);
          }
          if (this.readingTaps.length === 0) return;
          one[0] = r;
          for (const tap of this.readingTaps) tap(one);
        },
        count: (c, n = 1) => {
          counters[c] += n;
        },
        now: this.now,
        shared: this.shared,
      });
      await driver.init();
      for (const h of driver.health?.() ?? []) {
        h.onChange = (d, healthy, cause) => this.deviceChanged(d, healthy, cause);
        this.devices.push(h);
      }
      this.sources.push(new Supervised(src.id, driver, logger));
    }
  }

  /**
   * A device stopped answering (or answers again): an alarm event (`type: device`, raised/cleared). At
   * most one raise per device a minute, so a flapping unit cannot flood the store; a suppressed raise
   * has no clear either. Its sensors go stale or comm_error at the same time, and the fail-safe acts on them.
   */
  private deviceChanged(d: DeviceHealth, healthy: boolean, cause: DeviceErrorKind | undefined): void {
    const at = this.now();
    let st = this.deviceAlarms.get(d);
    if (!st) {
      st = { open: false, lastRaise: Number.NEGATIVE_INFINITY };
      this.deviceAlarms.set(d, st);
    }
    if (healthy === !st.open) return;
    if (!healthy && at - st.lastRaise < DEVICE_ALARM_INTERVAL_MS) return;
    st.open = !healthy;
    if (!healthy) st.lastRaise = at;
    const fields = { source: d.source, device: d.device, describe: d.describe };
    if (healthy) this.logger.info(fields, 'device answering again');
    else this.logger.warn({ ...fields, cause }, 'device not answering');
    this.emit({
      kind: 'alarm',
      key: this.config.gateway.id,
      eventTime: at,
      payload: {
        type: 'device',
        state: healthy ? 'cleared' : 'raised',
        ...fields,
        ...(cause ? { cause } : {}),
        dead_links: d.deadLinks,
        at,
      },
    });
  }

  /** Whether each source's driver has started (false while its supervisor is retrying). */
  sourceStates(): Array<{ id: string; started: boolean }> {
    return this.sources.map((s) => ({ id: s.name, started: s.started }));
  }

  async start(): Promise<void> {
    const path = this.config.store.path;
    // A corrupt or unopenable store must never keep the agent from protecting the machines.
    const check = checkStoreFile(path, this.config.store.startup_check);
    if (check.quarantined) {
      this.logger.error(
        { path, quarantined: check.quarantined, reason: check.reason },
        'event store is corrupt: moved aside, a fresh store starts; latched trips in it are lost',
      );
      this.store.noteQuarantine(check.quarantined, check.reason ?? 'corrupt');
    }
    if (check.volatile) {
      this.logger.error(
        { path },
        'event store is on tmpfs/ramfs: a reboot or power loss erases every event not yet synced. Move store.path to persistent storage',
      );
      this.store.alarm('store_volatile', 'event store is on tmpfs/ramfs: a reboot erases unsynced events', { path });
    }
    // Latched trips: the journal is authoritative for every asset it knows (it is written before the
    // store); the store's open trips cover the rest (a journal lost or from before it existed).
    let journaled: ReturnType<LatchJournal['open']> | undefined;
    try {
      journaled = this.journal?.open();
    } catch (err) {
      this.journalError = (err as Error).message;
      this.logger.error(
        { err: this.journalError, path: this.journal?.path },
        'latch journal unusable: trips are latched in memory and in the store only',
      );
    }
    let stored: ReturnType<typeof activeTrips> = [];
    if (path !== ':memory:' && existsSync(path)) {
      try {
        const db = openDb(path, this.config.store.synchronous);
        try {
          stored = activeTrips(db);
        } finally {
          db.close();
        }
      } catch (err) {
        this.logger.error({ err: (err as Error).message }, 'cannot read latched trips back from the store');
      }
    }
    const restored: RestoredLatch[] = [...(journaled?.latched.values() ?? [])];
    for (const t of stored) if (!journaled?.latched.has(t.asset) && !journaled?.released.has(t.asset)) restored.push(t.asset);
    this.interlocks.restore(restored);
    await this.store.openOrDegrade();
    this.control.loadKeys();
    if (journaled) this.recordJournaled(journaled, stored);
    if (path !== ':memory:') {
      try {
        this.setpoints = SetpointStore.open(path);
        this.control.restore(this.setpoints);
      } catch (err) {
        this.logger.error({ err: (err as Error).message }, 'run-time setpoints unavailable; config file values apply');
      }
      try {
        // Before the first reading: a detector that had finished learning judges it.
        this.learned.restore(LearnedStateStore.open(path));
      } catch (err) {
        this.logger.error({ err: (err as Error).message }, 'learned baselines unavailable; learning detectors learn again');
      }
    }
    this.learned.start();
    const kafka = this.config.sync.kafka;
    if (kafka) {
      this.sync = new SyncService(this.store, path, this.config.gateway.id, kafka, this.logger.child({ component: 'sync' }));
      this.sync.start();
      if (this.config.control.kafka) {
        // Loaded only when configured: kafkajs and mqtt.js are a large part of start-up time and memory.
        const { KafkaControl } = await import('./sync/control.js');
        this.kafkaControl = new KafkaControl(
          this.config.control.kafka,
          kafka,
          this.control,
          this.logger.child({ component: 'control-kafka' }),
          this.config.gateway.id,
        );
        this.kafkaControl.start();
      }
    }
    if (this.config.control.mqtt) {
      const { MqttControl } = await import('./control/mqtt.js');
      this.controlTopic = new MqttControl(
        this.config.control.mqtt,
        this.control,
        this.logger.child({ component: 'control-mqtt' }),
        this.config.gateway.id,
      );
      await this.controlTopic.start();
    }
    await this.model?.start();
    for (const a of this.actuators.values()) await a.start();
    this.interlocks.start();
    for (const s of this.sources) await s.start();
    this.logger.info(
      { sources: this.sources.length, actuators: this.actuators.size, tripped: this.interlocks.tripped(), store: path },
      'agent started',
    );
  }

  /**
   * A crash between the journal write and the store's flush leaves a trip (or release) only in the
   * journal: it is recorded in the store now, marked `restored_from: latch_journal`.
   */
  private recordJournaled(j: ReturnType<LatchJournal['open']>, stored: ReturnType<typeof activeTrips>): void {
    const open = new Map(stored.map((t) => [t.asset, t]));
    for (const rec of j.latched.values()) {
      const s = open.get(rec.asset);
      if (s && s.event_time === rec.reading_event_time && s.detector === rec.detector) continue;
      const { commands, ...decision } = rec;
      this.store.append({
        kind: 'anomaly',
        key: rec.asset,
        eventTime: rec.reading_event_time,
        payload: {
          detector: rec.detector,
          asset: rec.asset,
          sensor: rec.sensor,
          severity: rec.severity,
          state: 'raised',
          eventTime: rec.reading_event_time,
          value: rec.value,
          trip: true,
          restored_from: 'latch_journal',
        },
      });
      this.store.append({
        kind: 'action',
        key: rec.asset,
        eventTime: rec.reading_event_time,
        payload: { type: 'trip', ...decision, commands, restored_from: 'latch_journal' },
      });
      this.logger.warn(
        { asset: rec.asset, detector: rec.detector },
        'trip found only in the latch journal: recorded in the store',
      );
    }
    for (const [asset, r] of j.released) {
      if (!open.has(asset)) continue;
      this.store.append({
        kind: 'audit',
        key: asset,
        eventTime: r.at,
        payload: { type: 'ack', asset, by: r.by, via: 'latch_journal', at: r.at, restored_from: 'latch_journal' },
      });
    }
  }

  /** Stops sources, closes open windows, stops actuators, commits the store. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const s of this.sources) {
        await s.stop().catch((err: Error) => this.logger.warn({ source: s.name, err: err.message }, 'source stop failed'));
      }
      await this.controlTopic?.stop().catch((err: Error) => this.logger.warn({ err: err.message }, 'control topic stop failed'));
      this.pipeline.flush();
      this.learned.stop();
      await this.model?.stop().catch((err: Error) => this.logger.warn({ err: err.message }, 'model stop failed'));
      this.interlocks.stop();
      this.aftermath.flush();
      this.journal?.close();
      for (const [id, a] of this.actuators) {
        await a.stop().catch((err: Error) => this.logger.warn({ actuator: id, err: err.message }, 'actuator stop failed'));
      }
      await this.kafkaControl?.stop().catch((err: Error) => this.logger.warn({ err: err.message }, 'Kafka control stop failed'));
      this.control.stop();
      this.setpoints?.close();
      // The syncer stops taking new pages now and finishes the transaction in flight while the store
      // commits. The store closes only after the syncer has stopped, so the local cursor of that last
      // transaction is written too (the syncer's stop is bounded: 15 s, then the process is killed and
      // the cursor is recovered from Kafka at the next start). Events committed after its last page
      // wait for the next start.
      const syncStopped = this.sync
        ?.stop()
        .catch((err: Error) => this.logger.warn({ err: err.message }, 'Kafka sync stop failed'));
      // One 30 s budget for the store's flush, whether it completes before or after the syncer stops.
      const flushBy = Date.now() + 30_000;
      await this.store.flush(30_000).catch(() => {}); // close() below flushes again and reports the error
      await syncStopped;
      await this.store.close(Math.max(1000, flushBy - Date.now()));
      this.logger.info({ readings: this.pipeline.counters.readings, events: this.store.stats.persisted }, 'agent stopped');
    })();
    return this.stopping;
  }
}
