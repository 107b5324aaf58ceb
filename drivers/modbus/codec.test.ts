import { describe, expect, it } from 'vitest';
import vectorFile from '../../test/fixtures/modbus-byte-order-vectors.json' with { type: 'json' };
import {
  applyScale,
  DATA_TYPES,
  type DataType,
  decode,
  decodeAll,
  encode,
  registerCount,
  removeScale,
  WORD_ORDERS,
  type WordOrder,
} from './codec.js';

interface Vector {
  type: DataType;
  order: WordOrder;
  registers: string[];
  value: number;
  note?: string;
}

const vectors = vectorFile.vectors as Vector[];
const regsOf = (v: Vector) => v.registers.map((r) => Number.parseInt(r, 16));
const expected = (v: Vector) => (v.type === 'float32' ? Math.fround(v.value) : v.value);
const label = (v: Vector) => `${v.type} ${v.order} ${v.value} = [${v.registers.join(' ')}]`;

describe('golden byte-order vectors', () => {
  it('cover every type in every order', () => {
    for (const type of DATA_TYPES) {
      for (const order of WORD_ORDERS) {
        expect(
          vectors.some((v) => v.type === type && v.order === order),
          `${type} ${order}`,
        ).toBe(true);
      }
    }
  });

  it.each(vectors.map((v) => [label(v), v] as const))('decode %s', (_, v) => {
    expect(decode(regsOf(v), 0, v.type, v.order)).toBe(expected(v));
    expect(decode(Uint16Array.from(regsOf(v)), 0, v.type, v.order)).toBe(expected(v));
  });

  it.each(vectors.map((v) => [label(v), v] as const))('encode %s', (_, v) => {
    expect(encode(v.value, v.type, v.order)).toEqual(regsOf(v));
  });

  it('decodes at an offset inside a larger block', () => {
    const block = [0xaaaa, 0x42f6, 0xe979, 0xbbbb];
    expect(decode(block, 1, 'float32', 'ABCD')).toBe(Math.fround(123.456));
  });
});

describe('registerCount', () => {
  it('matches the width of each type', () => {
    expect(DATA_TYPES.map(registerCount)).toEqual([1, 1, 1, 2, 2, 2, 4]);
  });
});

describe('bounds and validation', () => {
  it('rejects a block too short for the type', () => {
    expect(() => decode([1, 2, 3], 0, 'float64', 'ABCD')).toThrow(RangeError);
    expect(() => decode([1, 2], 1, 'int32', 'ABCD')).toThrow(RangeError);
    expect(() => decode([1, 2], -1, 'int16', 'ABCD')).toThrow(RangeError);
  });

  it('refuses to wrap out-of-range or fractional integers', () => {
    expect(() => encode(32768, 'int16', 'ABCD')).toThrow(RangeError);
    expect(() => encode(-1, 'uint16', 'ABCD')).toThrow(RangeError);
    expect(() => encode(2 ** 32, 'uint32', 'ABCD')).toThrow(RangeError);
    expect(() => encode(1.5, 'int32', 'ABCD')).toThrow(RangeError);
    expect(() => encode(2, 'bool', 'ABCD')).toThrow(RangeError);
  });

  it('treats any non-zero register as bool true', () => {
    expect(decode([0x0100], 0, 'bool', 'ABCD')).toBe(1);
    expect(decode([0x8000], 0, 'bool', 'DCBA')).toBe(1);
  });
});

describe('round trip over random values', () => {
  // Deterministic so a failure reproduces (mulberry32).
  let seed = 0x5eed;
  const rand = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const randomRegs = (n: number) => Array.from({ length: n }, () => Math.floor(rand() * 0x10000));

  it.each(WORD_ORDERS)('value → registers → value, %s', (order) => {
    for (let i = 0; i < 2000; i++) {
      const cases: [DataType, number][] = [
        ['int16', Math.floor(rand() * 0x10000) - 0x8000],
        ['uint16', Math.floor(rand() * 0x10000)],
        ['int32', Math.floor(rand() * 2 ** 32) - 2 ** 31],
        ['uint32', Math.floor(rand() * 2 ** 32)],
        ['float32', Math.fround((rand() - 0.5) * 10 ** Math.floor(rand() * 20 - 10))],
        ['float64', (rand() - 0.5) * 10 ** Math.floor(rand() * 600 - 300)],
      ];
      for (const [type, value] of cases) {
        expect(decode(encode(value, type, order), 0, type, order), `${type} ${value}`).toBe(value);
      }
    }
  });

  it.each(WORD_ORDERS)('registers → value → registers, %s', (order) => {
    for (let i = 0; i < 2000; i++) {
      for (const type of ['int16', 'uint16', 'int32', 'uint32', 'float32', 'float64'] as const) {
        const regs = randomRegs(registerCount(type));
        const value = decode(regs, 0, type, order);
        // NaN payloads are not preserved through a JS number, so those bit patterns cannot round-trip.
        if (Number.isNaN(value)) continue;
        expect(encode(value, type, order), `${type} ${regs}`).toEqual(regs);
      }
    }
  });
});

describe('scale and offset', () => {
  it('applies raw * scale + offset and inverts it for integer setpoints', () => {
    expect(applyScale(2315, 0.1, -40)).toBeCloseTo(191.5, 10);
    expect(removeScale(191.5, 'int16', 0.1, -40)).toBe(2315);
    expect(removeScale(1.25, 'float32', 0.5)).toBe(2.5);
    expect(() => removeScale(1, 'int16', 0)).toThrow(RangeError);
  });
});

describe('decodeAll', () => {
  it('lists every numeric type × order that fits, each equal to decode', () => {
    const regs = [0x4009, 0x21fb, 0x5444, 0x2d18];
    const all = decodeAll(regs, 0);
    expect(all).toHaveLength(6 * 4);
    for (const d of all) expect(d.value).toBe(decode(regs, 0, d.type, d.order));
    expect(all.find((d) => d.type === 'float64' && d.order === 'ABCD')?.value).toBe(Math.PI);
  });

  it('omits types that run past the end of the block', () => {
    const all = decodeAll([0x42f6, 0xe979, 0], 1);
    expect(new Set(all.map((d) => d.type))).toEqual(new Set(['int16', 'uint16', 'int32', 'uint32', 'float32']));
  });
});
