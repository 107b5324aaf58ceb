/**
 * How sure a latency ratio is. The scale bench compares the agent's p99 with the relay's in the same run; at
 * 1k readings/s a 30 s round holds 750 trips, so a round's p99 is its eighth-slowest trip and moves with
 * every stall of the machine. This gives the ratio of the two systems' p99 over all their rounds' trips
 * together, with a percentile-bootstrap interval: each resample redraws every round's trips with
 * replacement (each round keeps its size, so a round with slower trips weighs as much as it did).
 * It covers the sampling of trips only, not the machine's drift between rounds: that shows in the
 * per-round figures, and in a relay-against-relay run (SCALE_AA=1).
 */
import { rng } from '../../agent/prng.js';
import { percentile } from './types.js';

export interface QuantileRatio {
  /** p-th percentile of all of a's trips over that of all of b's. */
  readonly ratio: number;
  /** The pooled percentiles themselves, ms, and how many trips each pools. */
  readonly a: number;
  readonly b: number;
  readonly na: number;
  readonly nb: number;
  /** The bootstrap interval of the ratio (`level`, e.g. 0.95). */
  readonly lo: number;
  readonly hi: number;
  readonly level: number;
  readonly resamples: number;
}

function pooled(rounds: readonly (readonly number[])[]): Float64Array {
  return Float64Array.from(rounds.flat()).sort();
}

/** One resample: every round's trips drawn with replacement, pooled, sorted. */
function resample(rounds: readonly (readonly number[])[], u: () => number, out: Float64Array): Float64Array {
  let k = 0;
  for (const r of rounds) for (let i = 0; i < r.length; i++) out[k++] = r[Math.floor(u() * r.length)] as number;
  return out.sort();
}

export function quantileRatio(
  a: readonly (readonly number[])[],
  b: readonly (readonly number[])[],
  p: number,
  opts: { resamples?: number; level?: number; seed?: number } = {},
): QuantileRatio {
  const resamples = opts.resamples ?? 2000;
  const level = opts.level ?? 0.95;
  const pa = pooled(a);
  const pb = pooled(b);
  const u = rng(opts.seed ?? 20);
  const bufA = new Float64Array(pa.length);
  const bufB = new Float64Array(pb.length);
  const ratios = new Float64Array(resamples);
  for (let i = 0; i < resamples; i++) ratios[i] = percentile(resample(a, u, bufA), p) / percentile(resample(b, u, bufB), p);
  ratios.sort();
  const tail = ((1 - level) / 2) * 100;
  const qa = percentile(pa, p);
  const qb = percentile(pb, p);
  return {
    ratio: qa / qb,
    a: qa,
    b: qb,
    na: pa.length,
    nb: pb.length,
    lo: percentile(ratios, tail),
    hi: percentile(ratios, 100 - tail),
    level,
    resamples,
  };
}
