/**
 * A configured command as a Modbus write: function code, address and the coil states or register values
 * (encoded with the command's data type and byte order). Shared by the TCP writer and the bus writer.
 */
import { encode } from '../modbus/codec.js';
import type { WriteOp } from '../modbus/session.js';
import type { ModbusWriteConfig } from './schema.js';

export function compileOp(name: string, cmd: ModbusWriteConfig['commands'][string]): WriteOp {
  if ('coil' in cmd) {
    const values = Array.isArray(cmd.value) ? cmd.value : [cmd.value];
    if (cmd.coil + values.length > 65536) throw new Error(`command "${name}": coils run past address 65535`);
    return { fn: Array.isArray(cmd.value) ? 15 : 5, address: cmd.coil, values };
  }
  let regs: number[];
  try {
    regs = encode(cmd.value, cmd.data_type, cmd.byte_order);
  } catch (err) {
    throw new Error(`command "${name}": ${(err as Error).message}`, { cause: err });
  }
  if (cmd.register + regs.length > 65536) throw new Error(`command "${name}": registers run past address 65535`);
  return { fn: regs.length === 1 && cmd.function !== 16 ? 6 : 16, address: cmd.register, values: regs };
}
