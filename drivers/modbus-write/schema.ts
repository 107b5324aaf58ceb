import { z } from 'zod';
import { duration } from '../../agent/config/schema.js';
import { DATA_TYPES, WORD_ORDERS } from '../modbus/codec.js';
import { modbusSchema } from '../modbus/schema.js';

const line = modbusSchema.shape;

const address = z.int().min(0).max(65535);

export const coilCommandSchema = z.strictObject({
  coil: address.meta({ description: 'Protocol (0-based) address of the first coil' }),
  value: z
    .union([z.boolean(), z.array(z.boolean()).min(1).max(1968)])
    .default(true)
    .meta({ description: 'One value: FC5 (write single coil). A list: FC15 (write multiple coils) from `coil` on' }),
});

export const registerCommandSchema = z.strictObject({
  register: address.meta({ description: 'Protocol (0-based) address of the first holding register' }),
  value: z.number(),
  data_type: z.enum(DATA_TYPES).default('uint16'),
  byte_order: z.enum(WORD_ORDERS).default('ABCD'),
  function: z
    .union([z.literal(6), z.literal(16)])
    .optional()
    .meta({ description: 'Default: FC6 for one register, FC16 for more. 16 forces FC16 (some PLCs lack FC6)' }),
});

export const modbusWriteSchema = z.strictObject({
  transport: z.enum(['tcp', 'rtu', 'rtu_over_tcp']).default('tcp').meta({
    description:
      'tcp: Modbus TCP on its own connection; rtu: RTU on a serial port; rtu_over_tcp: RTU frames through a serial device server. On rtu/rtu_over_tcp a modbus source on the same port shares one bus session (writes go ahead of polls)',
  }),
  host: z.string().default('127.0.0.1').meta({ description: 'tcp and rtu_over_tcp: device or gateway address' }),
  port: z.int().min(1).max(65535).default(502),
  serial_port: line.serial_port,
  baud_rate: line.baud_rate,
  parity: line.parity,
  data_bits: line.data_bits,
  stop_bits: line.stop_bits,
  inter_request_gap: line.inter_request_gap,
  unit_id: z.int().min(0).max(255).default(1),
  timeout: duration.prefault('1s').meta({ description: 'Connect and response timeout' }),
  verify: z
    .boolean()
    .default(true)
    .meta({ description: 'Read the coils/registers back after each write (FC1/FC3) and fail the command on a mismatch' }),
  commands: z
    .record(z.string(), z.union([coilCommandSchema, registerCommandSchema]))
    .refine((c) => Object.keys(c).length > 0, { message: 'define at least one command, e.g. stop: { coil: 0 }' })
    .meta({ description: 'Command name (as used by interlocks[].actions[].command) → what to write' }),
});

export type ModbusWriteConfig = z.output<typeof modbusWriteSchema>;
export type CoilCommand = z.output<typeof coilCommandSchema>;
export type RegisterCommand = z.output<typeof registerCommandSchema>;
