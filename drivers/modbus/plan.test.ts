import { describe, expect, it } from 'vitest';
import { type PlanItem, planTable } from './plan.js';

const item = (index: number, address: number, type: PlanItem['type'] = 'uint16'): PlanItem => ({
  index,
  address,
  type,
  order: 'ABCD',
  scale: 1,
  offset: 0,
});
const limits = { maxGap: 2, maxRegisters: 125, maxBits: 2000 };
const shape = (reqs: ReturnType<typeof planTable>) => reqs.map((r) => [r.start, r.count, r.values.map((v) => v.at)]);

describe('request planner', () => {
  it('coalesces neighbours within the gap and splits beyond it', () => {
    const reqs = planTable(1, 'holding', [item(0, 10), item(1, 11, 'float32'), item(2, 15), item(3, 19), item(4, 0)], limits);
    expect(shape(reqs)).toEqual([
      [0, 1, [0]],
      [10, 6, [0, 1, 5]],
      [19, 1, [0]],
    ]);
  });

  it('never exceeds 125 registers per request', () => {
    const items = Array.from({ length: 200 }, (_, i) => item(i, i * 2, 'float32'));
    const reqs = planTable(1, 'input', items, { ...limits, maxGap: 0 });
    expect(reqs.every((r) => r.count <= 125)).toBe(true);
    expect(reqs.reduce((n, r) => n + r.values.length, 0)).toBe(200);
    expect(reqs).toHaveLength(4);
  });

  it('packs up to 2000 bits for coils, one bit per value', () => {
    const items = Array.from({ length: 2500 }, (_, i) => item(i, i, 'bool'));
    const reqs = planTable(1, 'coil', items, limits);
    expect(reqs.map((r) => r.count)).toEqual([2000, 500]);
  });

  it('lets overlapping values share registers (a float read also as two uint16)', () => {
    const reqs = planTable(1, 'holding', [item(0, 5, 'float64'), item(1, 6), item(2, 9)], limits);
    expect(shape(reqs)).toEqual([[5, 5, [0, 1, 4]]]);
  });

  it('rejects a value running past address 65535', () => {
    expect(() => planTable(1, 'holding', [item(0, 65535, 'int32')], limits)).toThrow(RangeError);
  });
});
