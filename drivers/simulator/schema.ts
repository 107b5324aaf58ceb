import { z } from 'zod';
import { duration, id } from '../../agent/config/schema.js';

export const FAULT_KINDS = ['overheat_ramp', 'pressure_drop', 'bearing_wear', 'stuck', 'dropout'] as const;

export const faultSchema = z.strictObject({
  asset: id,
  sensor: id,
  kind: z.enum(FAULT_KINDS).meta({
    description:
      'overheat_ramp: +magnitude, ramping over the duration; pressure_drop: -magnitude within seconds; bearing_wear: vibration grows to (1+magnitude)x; stuck: value freezes; dropout: no readings',
  }),
  start: duration.meta({ description: 'Simulated time after start when the fault begins' }),
  duration: duration.prefault('60s'),
  magnitude: z.number().default(1),
});

export const simulatorSchema = z.strictObject({
  seed: z.int().default(1).meta({ description: 'Same seed, same signals' }),
  rate: z.number().positive().max(100_000).default(10).meta({ description: 'Readings per second per sensor' }),
  tick: duration.prefault('50ms').meta({ description: 'How often a batch is emitted' }),
  start_time: z.string().optional().meta({ description: 'ISO time of the first reading (default: wall clock at start)' }),
  faults: z.array(faultSchema).default([]),
});

/** Per-sensor signal shape. Defaults depend on the sensor's metric. */
export const simulatorAddressSchema = z.strictObject({
  base: z.number().optional(),
  noise: z.number().nonnegative().optional(),
  drift_per_hour: z.number().optional(),
  load_amplitude: z.number().nonnegative().optional(),
  load_period: duration.optional(),
});

export type SimulatorConfig = z.output<typeof simulatorSchema>;
export type SimulatorAddress = z.output<typeof simulatorAddressSchema>;
export type FaultConfig = z.output<typeof faultSchema>;
