import { z } from 'zod';
import { duration } from '../../agent/config/schema.js';
import { DATA_TYPES, WORD_ORDERS } from './codec.js';

export const TABLES = ['holding', 'input', 'coil', 'discrete'] as const;
export type Table = (typeof TABLES)[number];
export const BIT_TABLES: ReadonlySet<Table> = new Set(['coil', 'discrete']);

/** Protocol limits: FC3/FC4 read at most 125 registers, FC1/FC2 at most 2000 bits. */
export const MAX_REGISTERS = 125;
export const MAX_BITS = 2000;

const unitId = z
  .int()
  .min(0)
  .max(255)
  .meta({ description: 'Modbus unit (slave) id; 0-247 on a serial bus, often 1 or 255 on TCP' });

export const unitSchema = z.strictObject({
  unit_id: unitId,
  poll_interval: duration.optional().meta({ description: "This unit's poll interval (default: the source's)" }),
  timeout: duration.optional().meta({ description: "This unit's response timeout (default: the source's)" }),
});

export const modbusSchema = z.strictObject({
  transport: z.enum(['tcp', 'rtu', 'rtu_over_tcp']).default('tcp').meta({
    description: 'tcp: Modbus TCP; rtu: RTU on a serial port; rtu_over_tcp: RTU frames through a TCP serial server',
  }),
  host: z.string().optional().meta({ description: 'tcp and rtu_over_tcp: device or gateway address' }),
  port: z.int().min(1).max(65535).default(502).meta({ description: 'tcp and rtu_over_tcp: TCP port' }),
  serial_port: z.string().optional().meta({ description: 'rtu: serial device, e.g. /dev/ttyUSB0' }),
  baud_rate: z.int().positive().default(19200),
  parity: z.enum(['none', 'even', 'odd']).default('even').meta({ description: 'rtu: the Modbus default is even' }),
  data_bits: z.union([z.literal(7), z.literal(8)]).default(8),
  stop_bits: z.union([z.literal(1), z.literal(2)]).default(1),
  poll_interval: duration.prefault('1s').meta({ description: 'Default poll interval of every unit' }),
  timeout: duration.prefault('1s').meta({ description: 'Default response timeout per request' }),
  retries: z.int().min(0).max(10).default(1).meta({
    description: 'Immediate retries of a timed-out request on a healthy unit (a unit already failing gets none)',
  }),
  connect_timeout: duration.prefault('3s'),
  reconnect_min: duration.prefault('500ms').meta({ description: 'First reconnect delay; doubles per failure, with jitter' }),
  reconnect_max: duration.prefault('30s').meta({ description: 'Longest reconnect delay' }),
  unit_backoff_min: duration
    .prefault('1s')
    .meta({ description: 'A unit that stops answering is skipped this long (doubling, with jitter) before one probe' }),
  unit_backoff_max: duration.prefault('30s').meta({ description: 'Longest a dead unit is skipped between probes' }),
  stale_session_timeouts: z.int().min(1).default(5).meta({
    description:
      'Dead link: reconnect after this many timeouts in a row with no answer from any unit (a half-open TCP connection, a dead gateway, a serial adapter gone stale)',
  }),
  dead_link_after: duration.prefault('10s').meta({
    description:
      'Dead link: reconnect when a request times out and no unit has answered anything for this long (whichever of this and stale_session_timeouts comes first)',
  }),
  keepalive: duration.prefault('10s').meta({
    description: 'tcp and rtu_over_tcp: TCP keepalive idle time (the kernel probes an idle link after this long)',
  }),
  inter_request_gap: duration
    .prefault('0ms')
    .meta({ description: 'rtu and rtu_over_tcp: silence on the bus between a response and the next request' }),
  max_gap: z.int().min(0).max(MAX_REGISTERS).default(10).meta({
    description: 'Request planning: unused registers (or bits) allowed between two values read in one request',
  }),
  max_registers: z.int().min(1).max(MAX_REGISTERS).default(MAX_REGISTERS).meta({ description: 'Largest register read' }),
  max_bits: z.int().min(1).max(MAX_BITS).default(MAX_BITS).meta({ description: 'Largest coil / discrete input read' }),
  units: z.array(unitSchema).default([]).meta({ description: 'Per-unit poll interval and timeout overrides' }),
});

export const modbusAddressSchema = z
  .strictObject({
    unit_id: unitId.default(1),
    table: z.enum(TABLES).default('holding'),
    address: z.int().min(0).max(65535).meta({ description: 'Protocol (0-based) address of the first register or bit' }),
    type: z.enum(DATA_TYPES).optional().meta({ description: 'Data type (default uint16; bool for coil and discrete)' }),
    byte_order: z.enum(WORD_ORDERS).default('ABCD'),
    scale: z.number().default(1).meta({ description: 'value = raw × scale + offset' }),
    offset: z.number().default(0),
  })
  .superRefine((a, ctx) => {
    if (BIT_TABLES.has(a.table) && a.type !== undefined && a.type !== 'bool') {
      ctx.addIssue({ code: 'custom', path: ['type'], message: `a ${a.table} is a single bit: type must be bool` });
    }
  });

export type ModbusConfig = z.output<typeof modbusSchema>;
export type ModbusAddress = z.output<typeof modbusAddressSchema>;
