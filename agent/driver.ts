/**
 * The driver contract. Every sensor source and every actuator is a folder under drivers/ whose
 * index.ts exports a `DriverModule`. The framework (agent/supervisor.ts) wraps drivers with retry,
 * backoff, logging and counters so that drivers stay small.
 */

import type { z } from 'zod';
import type { SensorConfig } from './config/schema.js';
import type { DeviceHealth } from './health.js';
import type { Logger } from './log.js';
import type { AckResult, Quality, Reading } from './types.js';

/** A sensor this source is responsible for, as declared under `assets[].sensors[]`. */
export interface BoundSensor extends SensorConfig {
  readonly asset: string;
  /**
   * The sensor's place in the plant: its index when `assets[].sensors[]` are listed in config order
   * (`sensorSlots`). The agent's per-sensor tables are arrays in that order. Set by the agent.
   */
  readonly slot?: number;
}

/**
 * The one way a `BoundSensor` is made: every field of the sensor's config, named, in one order, then
 * `asset` and `slot`. So every bound sensor has the same V8 hidden class and the hot path's loads from
 * it (`makeReading`: `sensor.min`, `.max`, `.asset`, ...) stay monomorphic. A spread (`{ ...s, asset }`)
 * in a callback that runs once per asset, as this used to be, gave nearly every sensor a class of its
 * own (1,992 classes for 2,000 one-sensor assets), and each of those loads a megamorphic lookup that
 * got slower as sensors were added (agent/driver.test.ts).
 */
export function bindSensor(s: SensorConfig, asset: string, slot?: number): BoundSensor {
  return {
    id: s.id,
    metric: s.metric,
    unit: s.unit,
    source: s.source,
    address: s.address,
    min: s.min,
    max: s.max,
    range_trip: s.range_trip,
    asset,
    slot,
  };
}

export interface SourceContext {
  readonly id: string;
  readonly sensors: readonly BoundSensor[];
  readonly logger: Logger;
  /** Hands a batch of readings to the pipeline. Synchronous: returns once detection has run. */
  emit(batch: readonly Reading[]): void;
  /**
   * The same as `emit([r])` for one reading of `sensor` (one of `sensors`), without finding the sensor
   * again by its ids: for drivers that map a message to one known sensor. Optional (older contexts).
   */
  emitOne?(sensor: BoundSensor, r: Reading): void;
  /** Per-source counters, labelled by a bounded reason (never raw error text). */
  count(counter: SourceCounter, n?: number): void;
  /** Wall clock, ms. Injected so tests can control time. */
  now(): number;
  /**
   * Resources drivers of one agent share, by key (one owner per serial port: a Modbus RTU bus polled by a
   * source and written by an actuator). The same map for every driver of the agent.
   */
  readonly shared?: Map<string, unknown>;
}

export type SourceCounter = 'readings' | 'errors' | 'malformed' | 'reconnects' | 'dropped';

/**
 * Lifecycle, in order:
 * - constructor: assigns only.
 * - `init()`: validates and precomputes (request plans, mappings); no I/O. Its errors are config errors.
 * - `start()`: does I/O (connect, subscribe, start polling). Safe to retry; leaks nothing when it throws.
 * - `stop()`: drains in-flight work; idempotent; safe after a failed or missing start.
 */
export interface SourceDriver {
  init(): void | Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * The devices behind this source (a Modbus link and its units, an MQTT broker), after `init()`. The
   * same objects for the driver's life: the agent publishes them (/metrics, twin, dashboard, alarms).
   */
  health?(): readonly DeviceHealth[];
}

export interface ActuatorCommand {
  readonly asset: string;
  readonly command: string;
  /** Why: the detector and reading that tripped the asset. */
  readonly reason: Readonly<Record<string, unknown>>;
}

export interface ActuatorResult {
  readonly ok: boolean;
  /** What the device answered (read-back value, broker ack), for the audit trail. */
  readonly ack?: Readonly<Record<string, unknown>>;
  readonly error?: string;
}

export interface ActuatorContext {
  readonly id: string;
  readonly logger: Logger;
  now(): number;
  /** See `SourceContext.shared`. */
  readonly shared?: Map<string, unknown>;
  /**
   * Operator acknowledgement of a tripped asset arriving through this actuator's channel (e.g. an MQTT
   * ack topic). The outcome says whether it released the asset, was deferred, or was refused (not
   * tripped, or a tripping condition still holds: contract C); the channel answers with it.
   * Absent when nothing can acknowledge.
   */
  ack?(asset: string, by: string, via: string): AckResult;
}

/**
 * Same lifecycle as `SourceDriver`. `execute()` is called synchronously on the hot path: it must issue
 * the command before returning (the returned promise only reports the device's acknowledgement).
 */
export interface ActuatorDriver {
  init(): void | Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  execute(cmd: ActuatorCommand): Promise<ActuatorResult>;
  /**
   * Called once after the interlock has issued every command of one decision (a trip, a re-assert, a
   * release), so never between two of them. A driver whose commands go through a broker on this
   * machine may give that broker the CPU here for a bounded moment (mqtt-publish: `yield_to_broker_us`).
   */
  afterCommands?(): void;
}

interface DriverModuleBase<S extends z.ZodType> {
  readonly type: string;
  readonly description: string;
  /** Options of one instance, besides `id` and `type`. Must be a strict object schema. */
  readonly schema: S;
}

export interface SourceModule<S extends z.ZodType = z.ZodType> extends DriverModuleBase<S> {
  readonly role: 'source';
  /** Schema of `assets[].sensors[].address` for sensors read by this driver. */
  readonly addressSchema?: z.ZodType;
  create(config: z.output<S> & { id: string }, ctx: SourceContext): Promise<SourceDriver>;
}

export interface ActuatorModule<S extends z.ZodType = z.ZodType> extends DriverModuleBase<S> {
  readonly role: 'actuator';
  create(config: z.output<S> & { id: string }, ctx: ActuatorContext): Promise<ActuatorDriver>;
}

export type DriverModule = SourceModule | ActuatorModule;

export type { Quality };
