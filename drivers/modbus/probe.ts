/**
 * `edge-agent probe modbus ...`: reads one register block and prints every decoding (each type in
 * each byte order, at every offset), so a technician can find the row that shows a known value.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { DATA_TYPES, decode, registerCount, WORD_ORDERS } from './codec.js';
import { MAX_BITS, MAX_REGISTERS, modbusSchema, TABLES, type Table } from './schema.js';
import { ModbusSession } from './session.js';

export const PROBE_USAGE = `usage: edge-agent probe modbus (--host H [--port 502] [--rtu-over-tcp] | --serial /dev/ttyX [--baud 19200] [--parity even])
                           [--unit 1] [--table holding|input|coil|discrete] --address A [--count 8] [--timeout 1000]

Reads COUNT registers (or bits) from ADDRESS (0-based protocol address) and prints every decoding:
int16, uint16, int32, uint32, float32, float64 in byte orders ABCD, CDAB, BADC and DCBA.
Read a register whose value you know and pick the type and byte_order of the row that shows it.
`;

const fmt = (v: number): string => {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-4 || a >= 1e9)) return v.toExponential(6);
  return String(Number(v.toPrecision(9)));
};

/** The decoding table of a register block whose first register is at `startAddress`. */
export function formatDecodings(regs: Uint16Array | readonly number[], startAddress: number): string {
  const hex = Array.from(regs, (r) => `0x${r.toString(16).toUpperCase().padStart(4, '0')}`);
  const lines = [`registers ${startAddress}..${startAddress + regs.length - 1}: ${hex.join(' ')}`, ''];
  const header = ['address', 'type', ...WORD_ORDERS];
  const rows: string[][] = [];
  for (let off = 0; off < regs.length; off++) {
    for (const type of DATA_TYPES) {
      if (type === 'bool' || off + registerCount(type) > regs.length) continue;
      rows.push([String(startAddress + off), type, ...WORD_ORDERS.map((order) => fmt(decode(regs, off, type, order)))]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd();
  lines.push(line(header), line(widths.map((w) => '-'.repeat(w))));
  let prev = '';
  for (const r of rows) {
    if (prev && r[0] !== prev) lines.push('');
    prev = r[0] as string;
    lines.push(line(r));
  }
  return `${lines.join('\n')}\n`;
}

export function formatBits(bits: readonly boolean[], startAddress: number): string {
  return `${bits.map((b, i) => `${startAddress + i}: ${b ? 1 : 0}`).join('\n')}\n`;
}

/** Runs the probe; returns the process exit code. */
export async function probeModbus(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' },
      port: { type: 'string', default: '502' },
      'rtu-over-tcp': { type: 'boolean', default: false },
      serial: { type: 'string' },
      baud: { type: 'string', default: '19200' },
      parity: { type: 'string', default: 'even' },
      unit: { type: 'string', default: '1' },
      table: { type: 'string', default: 'holding' },
      address: { type: 'string' },
      count: { type: 'string', default: '8' },
      timeout: { type: 'string', default: '1000' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    out(PROBE_USAGE);
    return 0;
  }
  const table = values.table as Table;
  const count = Number(values.count);
  const address = Number(values.address);
  const unit = Number(values.unit);
  const problems: string[] = [];
  if (!values.host === !values.serial) problems.push('give exactly one of --host or --serial');
  if (!TABLES.includes(table)) problems.push(`--table must be one of ${TABLES.join(', ')}`);
  if (values.address === undefined || !Number.isInteger(address) || address < 0 || address > 65535) {
    problems.push('--address must be 0..65535');
  }
  const max = table === 'coil' || table === 'discrete' ? MAX_BITS : MAX_REGISTERS;
  if (!Number.isInteger(count) || count < 1 || count > max) problems.push(`--count must be 1..${max}`);
  if (!Number.isInteger(unit) || unit < 0 || unit > 255) problems.push('--unit must be 0..255');
  const cfg = modbusSchema.safeParse({
    transport: values.serial ? 'rtu' : values['rtu-over-tcp'] ? 'rtu_over_tcp' : 'tcp',
    host: values.host,
    port: Number(values.port),
    serial_port: values.serial,
    baud_rate: Number(values.baud),
    parity: values.parity,
    timeout: Number(values.timeout),
    reconnect_min: 0,
  });
  if (!cfg.success) problems.push(...cfg.error.issues.map((i) => `--${String(i.path[0])}: ${i.message}`));
  if (problems.length > 0 || !cfg.success) {
    process.stderr.write(`${problems.join('\n')}\n\n${PROBE_USAGE}`);
    return 64;
  }
  const session = new ModbusSession(cfg.data, pino({ level: 'silent' }));
  try {
    await session.open();
    const data = await session.read(unit, table, address, count, cfg.data.timeout);
    out(`unit ${unit} ${table} via ${session.describe}\n`);
    out(Array.isArray(data) ? formatBits(data, address) : formatDecodings(data as Uint16Array, address));
    return 0;
  } catch (err) {
    const e = err as Error & { kind?: string; modbusCode?: number };
    process.stderr.write(
      `probe failed (${e.kind ?? 'error'}${e.modbusCode ? `, exception ${e.modbusCode}` : ''}): ${e.message}\n`,
    );
    return 1;
  } finally {
    await session.close();
  }
}
