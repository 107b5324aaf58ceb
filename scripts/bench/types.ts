/** One measured figure. `baseline` names what it is compared against in the same run. */
export interface BenchRow {
  readonly section: string;
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly baseline?: { readonly name: string; readonly value: number; readonly ratio: number };
  readonly note?: string;
}

export interface BenchSection {
  readonly name: string;
  /** Needs an external tool (broker, server); the runner says so when it is missing. */
  readonly requires?: readonly string[];
  run(): Promise<BenchRow[]>;
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export function latencyRows(section: string, name: string, samplesUs: Float64Array | number[], ps = [50, 99]): BenchRow[] {
  const s = Float64Array.from(samplesUs).sort();
  return ps.map((p) => ({
    section,
    name: `${name} p${p}`,
    value: round(percentile(s, p)),
    unit: 'µs',
    note: `${s.length} samples`,
  }));
}

export const round = (v: number, digits = 2): number => Number(v.toFixed(digits));
