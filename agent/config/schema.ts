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

export const apiSchema = z
  .strictObject({
    enabled: z.boolean().default(true).meta({ description: 'Serve the local HTTP API and dashboard' }),
    listen: z
      .string()
      .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { message: 'expected host:port, e.g. 127.0.0.1:8080' })
      .default('127.0.0.1:8080')
      .meta({ description: 'host:port of the API and dashboard. Keep it on 127.0.0.1 unless a firewall guards the port' }),
    token: z.string().optional().meta({
      description:
        'Bearer token for POST /api/assets/:id/ack; take it from the environment (EDGE_API_TOKEN), never write it in the file. Empty or unset: token_file, then the systemd credential "api-token"; with none, acknowledging over the API is disabled',
    }),
    token_file: z.string().optional().meta({
      description: 'File holding the bearer token, e.g. one passed by systemd LoadCredential= (in $CREDENTIALS_DIRECTORY)',
    }),
  })
  .prefault({});

export const twinSchema = z
  .strictObject({
    interval: duration
      .prefault('1m')
      .meta({ description: "Every asset's twin is written to the store this often, besides on every state change" }),
    history: duration.prefault('5m').meta({ description: 'How much recent history per sensor the dashboard charts show' }),
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
      }),
    )
    .min(1)
    .meta({ description: 'Run in this order when the asset trips' }),
});

export const configSchema = z.strictObject({
  gateway: gatewaySchema,
  store: storeSchema,
  log: logSchema,
  aggregation: aggregationSchema,
  api: apiSchema,
  twin: twinSchema,
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
export type ApiConfig = z.output<typeof apiSchema>;
export type TwinConfig = z.output<typeof twinSchema>;
