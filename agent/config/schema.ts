/**
 * The one description of the configuration. The TS types, the defaults, the JSON Schema for editors
 * (`npm run schema`) and the README option tables all derive from these definitions.
 * Driver-specific options live in each driver's own schema (drivers/<name>/schema.ts) and are
 * validated in a second pass once the driver type is known.
 */
import { z } from 'zod';
import { METRICS } from '../types.js';

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration written as `250ms`, `10s`, `5m`, `1h`, or a number of milliseconds. Parses to ms. */
export const duration = z
  .union([
    z.number().nonnegative(),
    z.string().regex(DURATION_RE, { message: 'expected a duration such as 500ms, 10s, 5m or 1h' }),
  ])
  .transform((v) => {
    if (typeof v === 'number') return v;
    const m = DURATION_RE.exec(v) as RegExpExecArray;
    return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  })
  .meta({ description: 'Duration: 500ms, 10s, 5m, 1h, or milliseconds as a number' });

export const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, {
  message: 'ids are 1-64 characters: letters, digits, "_", "-", "." (start with a letter or digit)',
});

export const severity = z.enum(['info', 'warning', 'critical']);

export const gatewaySchema = z
  .strictObject({
    id: id.default('gateway-1').meta({ description: 'Identifies this gateway in every synced record' }),
    site: z.string().optional().meta({ description: 'Free text: plant, line or cell' }),
  })
  .prefault({});

export const storeSchema = z
  .strictObject({
    path: z.string().default('./data/agent.db').meta({ description: 'SQLite event store file' }),
    synchronous: z.enum(['FULL', 'NORMAL', 'OFF']).default('FULL').meta({
      description:
        'SQLite durability. FULL: an acknowledged batch survives power loss (gateway default). NORMAL: faster, the last batches may be lost on power loss. OFF: tests only.',
    }),
    flush_interval: duration.prefault('200ms').meta({ description: 'Longest an accepted event waits before it is written' }),
    batch_size: z.int().min(1).max(100_000).default(2000).meta({ description: 'Events per write transaction' }),
  })
  .prefault({});

export const logSchema = z
  .strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  })
  .prefault({});

export const aggregationSchema = z
  .strictObject({
    window: duration
      .prefault('10s')
      .meta({ description: 'Tumbling event-time window of the routine per-sensor aggregates kept in the store' }),
  })
  .prefault({});

export const sensorSchema = z.strictObject({
  id,
  metric: z.enum(METRICS),
  unit: z.string().default(''),
  source: id.meta({ description: 'Id of the source (driver instance) that reads this sensor' }),
  address: z
    .record(z.string(), z.unknown())
    .optional()
    .meta({ description: "Where the source finds the value; its keys are the source driver's (see its README)" }),
  min: z.number().optional().meta({ description: 'Lowest physically valid value; below is quality "bad"' }),
  max: z.number().optional().meta({ description: 'Highest physically valid value; above is quality "bad"' }),
});

export const assetSchema = z.strictObject({
  id,
  name: z.string().optional(),
  sensors: z.array(sensorSchema).min(1),
});

/** Every source and actuator entry has these; the rest is the driver's own schema. */
export const driverEntrySchema = z.looseObject({
  id,
  type: z.string().meta({ description: 'Driver name, e.g. simulator, modbus, mqtt' }),
});

const detectorBase = {
  id,
  asset: id,
  sensor: id,
  severity: severity.default('warning'),
  trip: z.boolean().default(false).meta({ description: "A raised anomaly trips the asset's interlock" }),
};

export const thresholdDetectorSchema = z.strictObject({
  ...detectorBase,
  type: z.literal('threshold'),
  direction: z.enum(['above', 'below']).default('above'),
  setpoint: z.number(),
  delta_up: z.number().nonnegative().default(0).meta({ description: 'Raise when the value passes setpoint + delta_up' }),
  delta_down: z
    .number()
    .nonnegative()
    .default(0)
    .meta({ description: 'Clear when the value is back past setpoint - delta_down (hysteresis)' }),
});

export const countOverDetectorSchema = z.strictObject({
  ...detectorBase,
  type: z.literal('count_over'),
  limit: z.number(),
  direction: z.enum(['above', 'below']).default('above'),
  count: z.int().min(1).meta({ description: 'Raise when MORE than this many readings pass the limit within the window' }),
  window: duration,
});

export const detectorSchema = z.discriminatedUnion('type', [thresholdDetectorSchema, countOverDetectorSchema]);

export const interlockSchema = z.strictObject({
  asset: id,
  actions: z
    .array(
      z.strictObject({
        actuator: id,
        command: z.string().default('stop'),
        release: z.string().optional().meta({
          description: 'Command sent when an operator acknowledges the trip (e.g. clear the stop coil); none by default',
        }),
      }),
    )
    .min(1)
    .meta({ description: 'Run in this order when the asset trips' }),
  reassert_every: duration
    .prefault('5s')
    .meta({ description: 'While the trip is latched and not acknowledged, send the stop actions again this often; 0 disables' }),
  debounce: z
    .strictObject({
      readings: z
        .int()
        .min(1)
        .default(1)
        .meta({ description: 'Trip only after this many consecutive readings with the tripping anomaly raised' }),
      duration: duration
        .prefault('0ms')
        .meta({ description: 'Trip only once the anomaly has stayed raised this long (event time); both conditions must hold' }),
    })
    .prefault({})
    .meta({ description: 'Filters a single noisy reading. The default trips on the first raised reading' }),
  cooldown: duration.prefault('0ms').meta({
    description:
      'After an acknowledgement, trips are suppressed (and audited as such) for this long, e.g. a start-up transient. 0: never suppressed',
  }),
  rate_limit: z
    .strictObject({
      max_trips: z.int().min(1),
      per: duration,
    })
    .optional()
    .meta({
      description: 'At most max_trips trips per sliding window; further trips are suppressed, audited and logged as errors',
    }),
  dry_run: z.boolean().default(false).meta({
    description: 'Commissioning: decide, latch and audit what would have been sent, but send nothing to the actuators',
  }),
  fail_safe: z
    .strictObject({
      policy: z
        .enum(['none', 'alarm', 'stop'])
        .default('alarm')
        .meta({ description: 'When a watched sensor goes silent or bad: raise an alarm event, or trip the asset' }),
      silent_after: duration.prefault('30s').meta({ description: 'A watched sensor with no reading for this long is silent' }),
      bad_readings: z
        .int()
        .min(1)
        .default(3)
        .meta({ description: 'Consecutive readings of quality bad or comm_error that make a watched sensor bad' }),
      sensors: z
        .array(id)
        .optional()
        .meta({ description: 'Sensors of the asset to watch; default: those read by its tripping detectors' }),
    })
    .prefault({}),
});

export const configSchema = z.strictObject({
  gateway: gatewaySchema,
  store: storeSchema,
  log: logSchema,
  aggregation: aggregationSchema,
  sources: z.array(driverEntrySchema).min(1),
  assets: z.array(assetSchema).min(1),
  detectors: z.array(detectorSchema).default([]),
  actuators: z.array(driverEntrySchema).default([]),
  interlocks: z.array(interlockSchema).default([]),
});

export type AgentConfig = z.output<typeof configSchema>;
export type SensorConfig = z.output<typeof sensorSchema>;
export type AssetConfig = z.output<typeof assetSchema>;
export type DetectorConfig = z.output<typeof detectorSchema>;
export type InterlockConfig = z.output<typeof interlockSchema>;
export type DriverEntry = z.output<typeof driverEntrySchema>;
