/**
 * Window features over a contiguous slice of a sensor's buffered readings. Computed once when a
 * window closes, into a reused Float64Array (no allocation per window except the first time a
 * bigger scratch buffer is needed).
 *
 * Layout of the feature vector: the FEATURES in order, then the requested percentiles, then the
 * requested FFT bands. Only good-quality readings enter the statistics; `count` counts all.
 */
import { FEATURES } from './window-schema.js';

export const F = Object.fromEntries(FEATURES.map((f, i) => [f, i])) as Record<(typeof FEATURES)[number], number>;
export const BASE_FEATURES = FEATURES.length;

export interface FftBand {
  readonly name: string;
  readonly low: number;
  readonly high: number;
}

/** Which extra features a window computes, and where each named feature sits in the vector. */
export class FeatureLayout {
  readonly percentiles: number[] = [];
  readonly bands: FftBand[] = [];

  addPercentile(p: number): void {
    if (!this.percentiles.includes(p)) this.percentiles.push(p);
  }

  addBand(b: FftBand): void {
    if (!this.bands.some((x) => x.name === b.name)) this.bands.push(b);
  }

  get size(): number {
    return BASE_FEATURES + this.percentiles.length + this.bands.length;
  }

  /** Index of a feature name (see `featureName` in the schema); throws on an unknown one. */
  indexOf(name: string): number {
    if (name in F) return F[name as keyof typeof F];
    if (name.startsWith('band.')) {
      const i = this.bands.findIndex((b) => b.name === name.slice(5));
      if (i >= 0) return BASE_FEATURES + this.percentiles.length + i;
    } else if (/^p\d/.test(name)) {
      const i = this.percentiles.indexOf(Number(name.slice(1)));
      if (i >= 0) return BASE_FEATURES + i;
    }
    throw new Error(`feature "${name}" is not computed by this window`);
  }

  nameOf(index: number): string {
    if (index < BASE_FEATURES) return FEATURES[index] as string;
    const p = index - BASE_FEATURES;
    if (p < this.percentiles.length) return `p${this.percentiles[p]}`;
    return `band.${this.bands[p - this.percentiles.length]?.name}`;
  }
}

/** Scratch buffers shared by all windows of one pipeline (single-threaded). */
class Scratch {
  sorted = new Float64Array(1024);
  re = new Float64Array(1024);
  im = new Float64Array(1024);
  ensure(n: number): void {
    if (this.sorted.length < n) this.sorted = new Float64Array(n * 2);
  }
  ensureFft(n: number): void {
    if (this.re.length < n) {
      this.re = new Float64Array(n);
      this.im = new Float64Array(n);
    }
  }
}
const scratch = new Scratch();

/**
 * Fills `out` with the features of readings [from, to) of the given columns.
 * Kurtosis is Pearson's (m4 / m2², 3 for a normal distribution); slope is per second by least
 * squares against event time; crest = peak / rms; percentiles are linearly interpolated.
 */
export function computeFeatures(
  times: Float64Array,
  values: Float64Array,
  good: Uint8Array,
  from: number,
  to: number,
  layout: FeatureLayout,
  out: Float64Array,
): void {
  let n = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let sum = 0;
  let sumT = 0;
  let last = Number.NaN;
  const t0 = from < to ? (times[from] as number) : 0;
  for (let i = from; i < to; i++) {
    if (good[i] !== 1) continue;
    const v = values[i] as number;
    n++;
    sum += v;
    sumT += (times[i] as number) - t0;
    if (v < min) min = v;
    if (v > max) max = v;
    last = v;
  }
  out[F.count] = to - from;
  out[F.good] = n;
  if (n === 0) {
    for (let i = F.min; i < out.length; i++) if (i !== F.good) out[i] = Number.NaN;
    return;
  }
  const mean = sum / n;
  const meanT = sumT / n;
  let m2 = 0;
  let m4 = 0;
  let sq = 0;
  let stv = 0;
  let stt = 0;
  for (let i = from; i < to; i++) {
    if (good[i] !== 1) continue;
    const v = values[i] as number;
    const d = v - mean;
    const d2 = d * d;
    m2 += d2;
    m4 += d2 * d2;
    sq += v * v;
    const dt = ((times[i] as number) - t0 - meanT) / 1000;
    stv += dt * d;
    stt += dt * dt;
  }
  const rms = Math.sqrt(sq / n);
  const peak = Math.max(Math.abs(min), Math.abs(max));
  out[F.min] = min;
  out[F.max] = max;
  out[F.mean] = mean;
  out[F.std] = n > 1 ? Math.sqrt(m2 / (n - 1)) : 0;
  out[F.rms] = rms;
  out[F.slope] = stt > 0 ? stv / stt : 0;
  out[F.peak] = peak;
  out[F.crest] = rms > 0 ? peak / rms : Number.NaN;
  out[F.kurtosis] = m2 > 0 ? (n * m4) / (m2 * m2) : Number.NaN;
  out[F.last] = last;
  let k = BASE_FEATURES;
  if (layout.percentiles.length > 0) {
    scratch.ensure(n);
    const s = scratch.sorted;
    let j = 0;
    for (let i = from; i < to; i++) if (good[i] === 1) s[j++] = values[i] as number;
    const view = s.subarray(0, n);
    view.sort();
    for (const p of layout.percentiles) {
      const pos = (n - 1) * (p / 100);
      const lo = Math.floor(pos);
      const hi = Math.min(lo + 1, n - 1);
      out[k++] = (view[lo] as number) + ((view[hi] as number) - (view[lo] as number)) * (pos - lo);
    }
  }
  if (layout.bands.length > 0) {
    bandEnergies(times, values, good, from, to, n, mean, layout.bands, out, k);
  }
}

/**
 * Mean-square power per band of the mean-removed good values, assuming uniform sampling at the
 * window's average rate. Zero-padded to a power of two, rectangular window. By Parseval the bands
 * of the whole spectrum add up to the variance, so a sine of amplitude A contributes A²/2.
 */
function bandEnergies(
  times: Float64Array,
  values: Float64Array,
  good: Uint8Array,
  from: number,
  to: number,
  n: number,
  mean: number,
  bands: readonly FftBand[],
  out: Float64Array,
  offset: number,
): void {
  let first = Number.NaN;
  let lastT = Number.NaN;
  let N = 1;
  while (N < n) N <<= 1;
  scratch.ensureFft(N);
  const re = scratch.re;
  const im = scratch.im;
  let j = 0;
  for (let i = from; i < to; i++) {
    if (good[i] !== 1) continue;
    if (j === 0) first = times[i] as number;
    lastT = times[i] as number;
    re[j] = (values[i] as number) - mean;
    im[j] = 0;
    j++;
  }
  for (let i = j; i < N; i++) {
    re[i] = 0;
    im[i] = 0;
  }
  const span = (lastT - first) / 1000;
  if (n < 4 || !(span > 0)) {
    for (let b = 0; b < bands.length; b++) out[offset + b] = Number.NaN;
    return;
  }
  const fs = (n - 1) / span;
  fft(re, im, N);
  const scale = 2 / (N * n);
  for (let b = 0; b < bands.length; b++) {
    const band = bands[b] as FftBand;
    let e = 0;
    const kLo = Math.max(1, Math.ceil((band.low * N) / fs));
    const kHi = Math.min(N / 2, Math.ceil((band.high * N) / fs));
    for (let k = kLo; k < kHi; k++) {
      const r = re[k] as number;
      const m = im[k] as number;
      e += k === N / 2 ? (r * r + m * m) / 2 : r * r + m * m;
    }
    out[offset + b] = e * scale;
  }
}

/** In-place iterative radix-2 FFT over the first `n` entries (n a power of two). */
export function fft(re: Float64Array, im: Float64Array, n: number): void {
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      const tr = re[i] as number;
      re[i] = re[j] as number;
      re[j] = tr;
      const ti = im[i] as number;
      im[i] = im[j] as number;
      im[j] = ti;
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = (-2 * Math.PI) / len;
    const wr = Math.cos(ang);
    const wi = Math.sin(ang);
    for (let i = 0; i < n; i += len) {
      let cr = 1;
      let ci = 0;
      for (let k = 0; k < len / 2; k++) {
        const a = i + k;
        const b = a + len / 2;
        const xr = (re[b] as number) * cr - (im[b] as number) * ci;
        const xi = (re[b] as number) * ci + (im[b] as number) * cr;
        re[b] = (re[a] as number) - xr;
        im[b] = (im[a] as number) - xi;
        re[a] = (re[a] as number) + xr;
        im[a] = (im[a] as number) + xi;
        const ncr = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = ncr;
      }
    }
  }
}
