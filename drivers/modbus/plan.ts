/**
 * Request planning, done once at init: the values of one unit and table are sorted by address and
 * neighbours are coalesced into as few reads as the protocol allows (≤125 registers, ≤2000 bits),
 * never bridging more than `maxGap` unused addresses.
 */
import { type DataType, registerCount, type WordOrder } from './codec.js';
import { BIT_TABLES, type Table } from './schema.js';

export interface PlanItem {
  /** Index into the caller's sensor list. */
  readonly index: number;
  readonly address: number;
  readonly type: DataType;
  readonly order: WordOrder;
  readonly scale: number;
  readonly offset: number;
}

export interface PlannedValue extends PlanItem {
  /** Position of the value's first register (or bit) inside the request's block. */
  readonly at: number;
}

export interface ReadRequest {
  readonly unitId: number;
  readonly table: Table;
  readonly start: number;
  readonly count: number;
  readonly values: readonly PlannedValue[];
}

export interface PlanLimits {
  readonly maxGap: number;
  readonly maxRegisters: number;
  readonly maxBits: number;
}

export function widthOf(table: Table, type: DataType): number {
  return BIT_TABLES.has(table) ? 1 : registerCount(type);
}

/** Plans the reads of one unit and table. Throws RangeError when a value runs past address 65535. */
export function planTable(unitId: number, table: Table, items: readonly PlanItem[], limits: PlanLimits): ReadRequest[] {
  const max = BIT_TABLES.has(table) ? limits.maxBits : limits.maxRegisters;
  const sorted = [...items].sort((a, b) => a.address - b.address || widthOf(table, b.type) - widthOf(table, a.type));
  const out: ReadRequest[] = [];
  let start = -1;
  let end = -1; // exclusive
  let group: PlanItem[] = [];
  const flush = () => {
    if (group.length === 0) return;
    out.push({ unitId, table, start, count: end - start, values: group.map((v) => ({ ...v, at: v.address - start })) });
    group = [];
  };
  for (const item of sorted) {
    const width = widthOf(table, item.type);
    const itemEnd = item.address + width;
    if (itemEnd > 65536) throw new RangeError(`${table} ${item.address} (${item.type}) runs past address 65535`);
    const newEnd = Math.max(end, itemEnd);
    if (group.length > 0 && item.address - end <= limits.maxGap && newEnd - start <= max) {
      group.push(item);
      end = newEnd;
      continue;
    }
    flush();
    start = item.address;
    end = itemEnd;
    group = [item];
  }
  flush();
  return out;
}

export interface UnitItems {
  readonly unitId: number;
  readonly table: Table;
  readonly items: readonly PlanItem[];
}

/** Plans every (unit, table) group; requests come out per unit in table order. */
export function planRequests(groups: readonly UnitItems[], limits: PlanLimits): ReadRequest[] {
  return groups.flatMap((g) => planTable(g.unitId, g.table, g.items, limits));
}
