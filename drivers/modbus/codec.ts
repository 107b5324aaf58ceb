/**
 * Modbus register codec: pure functions, no I/O.
 *
 * Byte-order convention. Write the value's bytes big-endian as A B C D (32-bit) or A B C D E F G H (64-bit).
 * A register holds two bytes, high byte first on the wire. `registers` below lists register values from the
 * lowest address upwards.
 *
 * | order | 16-bit | 32-bit     | 64-bit             | meaning                                   |
 * |-------|--------|------------|--------------------|-------------------------------------------|
 * | ABCD  | AB     | AB CD      | AB CD EF GH        | big-endian bytes and words (Modbus standard) |
 * | CDAB  | AB     | CD AB      | GH EF CD AB        | register order reversed                   |
 * | BADC  | BA     | BA DC      | BA DC FE HG        | bytes swapped inside each register        |
 * | DCBA  | BA     | DC BA      | HG FE DC BA        | fully little-endian (both of the above)   |
 *
 * So an order is two independent switches: reverse the registers (CDAB, DCBA) and swap the bytes inside each
 * register (BADC, DCBA). For 64-bit CDAB this means full register reversal; some devices instead swap only
 * adjacent register pairs (CD AB GH EF), which no order here expresses.
 *
 * `bool` ignores the order: it reads as 1 when the register is non-zero and writes as 0x0000 / 0x0001.
 */

export const DATA_TYPES = ['bool', 'int16', 'uint16', 'int32', 'uint32', 'float32', 'float64'] as const;
export type DataType = (typeof DATA_TYPES)[number];

export const WORD_ORDERS = ['ABCD', 'CDAB', 'BADC', 'DCBA'] as const;
export type WordOrder = (typeof WORD_ORDERS)[number];

export type Registers = Uint16Array | readonly number[];

export interface Decoding {
  type: DataType;
  order: WordOrder;
  value: number;
}

const REGISTER_COUNT: Readonly<Record<DataType, 1 | 2 | 4>> = {
  bool: 1,
  int16: 1,
  uint16: 1,
  int32: 2,
  uint32: 2,
  float32: 2,
  float64: 4,
};

const INTEGER_RANGE: Readonly<Partial<Record<DataType, readonly [number, number]>>> = {
  bool: [0, 1],
  int16: [-0x8000, 0x7fff],
  uint16: [0, 0xffff],
  int32: [-0x8000_0000, 0x7fff_ffff],
  uint32: [0, 0xffff_ffff],
};

// Shared scratch: decode runs once per polled value, so it must not allocate. Safe because JS is single-threaded
// and nothing here awaits.
const scratch = new DataView(new ArrayBuffer(8));

export function registerCount(type: DataType): 1 | 2 | 4 {
  return REGISTER_COUNT[type];
}

function reversesRegisters(order: WordOrder): boolean {
  return order === 'CDAB' || order === 'DCBA';
}

function swapsBytes(order: WordOrder): boolean {
  return order === 'BADC' || order === 'DCBA';
}

/** Puts `count` registers into the scratch buffer as big-endian bytes A B C D ... */
function load(regs: Registers, offset: number, count: number, order: WordOrder): void {
  if (!Number.isInteger(offset) || offset < 0 || offset + count > regs.length) {
    throw new RangeError(`need ${count} register(s) at offset ${offset}, block has ${regs.length}`);
  }
  const reverse = reversesRegisters(order);
  const swap = swapsBytes(order);
  for (let i = 0; i < count; i++) {
    const reg = regs[offset + (reverse ? count - 1 - i : i)] as number;
    scratch.setUint16(i * 2, swap ? ((reg & 0xff) << 8) | ((reg >> 8) & 0xff) : reg);
  }
}

function readScratch(type: DataType): number {
  switch (type) {
    case 'bool':
      return scratch.getUint16(0) === 0 ? 0 : 1;
    case 'int16':
      return scratch.getInt16(0);
    case 'uint16':
      return scratch.getUint16(0);
    case 'int32':
      return scratch.getInt32(0);
    case 'uint32':
      return scratch.getUint32(0);
    case 'float32':
      return scratch.getFloat32(0);
    case 'float64':
      return scratch.getFloat64(0);
  }
}

/** Decodes one value of `type` starting at register `offset`. Throws RangeError if the block is too short. */
export function decode(regs: Registers, offset: number, type: DataType, order: WordOrder): number {
  load(regs, offset, REGISTER_COUNT[type], order);
  return readScratch(type);
}

/**
 * Encodes a value into registers (lowest address first). Integer types require an integer in range and
 * throw RangeError otherwise, so a setpoint is never silently wrapped; float32 rounds to nearest.
 */
export function encode(value: number, type: DataType, order: WordOrder): number[] {
  const range = INTEGER_RANGE[type];
  if (range && !(Number.isInteger(value) && value >= range[0] && value <= range[1])) {
    throw new RangeError(`${value} is not a valid ${type} (${range[0]}..${range[1]})`);
  }
  switch (type) {
    case 'bool':
      return [value];
    case 'uint16':
      scratch.setUint16(0, value);
      break;
    case 'int16':
      scratch.setInt16(0, value);
      break;
    case 'int32':
      scratch.setInt32(0, value);
      break;
    case 'uint32':
      scratch.setUint32(0, value);
      break;
    case 'float32':
      scratch.setFloat32(0, value);
      break;
    case 'float64':
      scratch.setFloat64(0, value);
      break;
  }
  const count = REGISTER_COUNT[type];
  const reverse = reversesRegisters(order);
  const swap = swapsBytes(order);
  const out = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    const word = scratch.getUint16(i * 2);
    out[reverse ? count - 1 - i : i] = swap ? ((word & 0xff) << 8) | (word >> 8) : word;
  }
  return out;
}

/** Engineering value from a raw decoded value: `raw * scale + offset` (Telegraf's convention). */
export function applyScale(raw: number, scale = 1, offset = 0): number {
  return raw * scale + offset;
}

/** Inverse of applyScale, rounded for integer types, for writing setpoints. */
export function removeScale(value: number, type: DataType, scale = 1, offset = 0): number {
  if (scale === 0) throw new RangeError('scale must not be 0');
  const raw = (value - offset) / scale;
  return type === 'float32' || type === 'float64' ? raw : Math.round(raw);
}

/** Every numeric type × every order that fits in the block at `offset`, for the probe command. */
export function decodeAll(regs: Registers, offset: number): Decoding[] {
  const out: Decoding[] = [];
  for (const type of DATA_TYPES) {
    if (type === 'bool' || offset + REGISTER_COUNT[type] > regs.length) continue;
    for (const order of WORD_ORDERS) {
      out.push({ type, order, value: decode(regs, offset, type, order) });
    }
  }
  return out;
}
