/**
 * PCA monitoring model (Hotelling T² on the retained components, Q / SPE on
 * the residual) for a small number of channels (≈ 2–32).
 *
 * fit() standardises each channel (mean / sample std of the fit rows; a
 * channel with ~zero spread gets std = `minStd`), eigen-decomposes the
 * correlation matrix with a cyclic Jacobi solver, and keeps the leading
 * components that explain `varianceFraction` of the variance (or exactly
 * `components` if given). score() is allocation-free after construction.
 */

export interface PcaOptions {
  /** Keep exactly this many components (overrides varianceFraction). */
  components?: number;
  /** Keep the fewest leading components explaining at least this share (default 0.9). */
  varianceFraction?: number;
  /** Floor for per-channel std after fitting (in raw units, default 1e-9). */
  minStd?: number;
  /** Floor for eigenvalues used in T² (relative to the largest, default 1e-9). */
  minEigenRatio?: number;
}

export interface PcaScore {
  /** Hotelling T² over the retained components. */
  t2: number;
  /** Squared prediction error (Q statistic) of the residual subspace. */
  q: number;
}

export interface SymmetricEigen {
  /** Eigenvalues, descending. */
  values: Float64Array;
  /** Row-major n×n; row i is the unit eigenvector for values[i]. */
  vectors: Float64Array;
}

/**
 * Cyclic Jacobi eigen-decomposition of a symmetric n×n matrix (row-major).
 * Fine for the 8×8 correlation matrices used here.
 */
export function jacobiEigen(matrix: ArrayLike<number>, n: number, maxSweeps = 100): SymmetricEigen {
  const a = Float64Array.from(matrix as ArrayLike<number>);
  if (a.length !== n * n) throw new Error('jacobiEigen: matrix is not n×n');
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < n; i++) {
      diag += (a[i * n + i] as number) ** 2;
      for (let j = i + 1; j < n; j++) off += (a[i * n + j] as number) ** 2;
    }
    if (off <= 1e-30 * Math.max(diag, 1e-300)) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q] as number;
        if (apq === 0) continue;
        const app = a[p * n + p] as number;
        const aqq = a[q * n + q] as number;
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p] as number;
          const akq = a[k * n + q] as number;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k] as number;
          const aqk = a[q * n + k] as number;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p] as number;
          const vkq = v[k * n + q] as number;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => (a[y * n + y] as number) - (a[x * n + x] as number));
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((col, r) => {
    values[r] = a[col * n + col] as number;
    for (let k = 0; k < n; k++) vectors[r * n + k] = v[k * n + col] as number;
  });
  return { values, vectors };
}

export class PcaModel {
  readonly dims: number;
  readonly components: number;
  readonly mean: Float64Array;
  readonly std: Float64Array;
  /** Eigenvalues of the correlation matrix, descending. */
  readonly eigenvalues: Float64Array;
  /** Row-major dims×dims, row i = i-th principal axis (standardised space). */
  readonly axes: Float64Array;
  private readonly invEig: Float64Array;
  private readonly z: Float64Array;

  private constructor(mean: Float64Array, std: Float64Array, eig: SymmetricEigen, components: number, minEigenRatio: number) {
    this.dims = mean.length;
    this.mean = mean;
    this.std = std;
    this.eigenvalues = eig.values;
    this.axes = eig.vectors;
    this.components = components;
    const floor = Math.max((eig.values[0] ?? 0) * minEigenRatio, 1e-12);
    this.invEig = new Float64Array(components);
    for (let i = 0; i < components; i++) this.invEig[i] = 1 / Math.max(eig.values[i] as number, floor);
    this.z = new Float64Array(this.dims);
  }

  static fit(rows: readonly ArrayLike<number>[], opts: PcaOptions = {}): PcaModel {
    const n = rows.length;
    if (n < 2) throw new Error('PcaModel.fit: need at least 2 rows');
    const d = (rows[0] as ArrayLike<number>).length;
    const mean = new Float64Array(d);
    const std = new Float64Array(d);
    for (const r of rows) for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) + (r[j] as number) / n;
    for (const r of rows) for (let j = 0; j < d; j++) std[j] = (std[j] as number) + ((r[j] as number) - (mean[j] as number)) ** 2;
    const minStd = opts.minStd ?? 1e-9;
    for (let j = 0; j < d; j++) std[j] = Math.max(Math.sqrt((std[j] as number) / (n - 1)), minStd);
    const cov = new Float64Array(d * d);
    const z = new Float64Array(d);
    for (const r of rows) {
      for (let j = 0; j < d; j++) z[j] = ((r[j] as number) - (mean[j] as number)) / (std[j] as number);
      for (let i = 0; i < d; i++)
        for (let j = i; j < d; j++) cov[i * d + j] = (cov[i * d + j] as number) + (z[i] as number) * (z[j] as number);
    }
    for (let i = 0; i < d; i++) {
      for (let j = i; j < d; j++) {
        const c = (cov[i * d + j] as number) / (n - 1);
        cov[i * d + j] = c;
        cov[j * d + i] = c;
      }
    }
    const eig = jacobiEigen(cov, d);
    let k = opts.components;
    if (k === undefined) {
      const total = eig.values.reduce((s, x) => s + Math.max(x, 0), 0);
      const frac = opts.varianceFraction ?? 0.9;
      let acc = 0;
      k = 0;
      while (k < d && acc < frac * total) acc += Math.max(eig.values[k++] as number, 0);
    }
    k = Math.min(Math.max(k, 0), d);
    return new PcaModel(mean, std, eig, k, opts.minEigenRatio ?? 1e-9);
  }

  /** Standardised row into `out` (length dims). */
  standardize(row: ArrayLike<number>, out: Float64Array): Float64Array {
    for (let j = 0; j < this.dims; j++) out[j] = ((row[j] as number) - (this.mean[j] as number)) / (this.std[j] as number);
    return out;
  }

  /** T² and Q of one row; writes into `out` if given (no allocation then). */
  score(row: ArrayLike<number>, out: PcaScore = { t2: 0, q: 0 }): PcaScore {
    const d = this.dims;
    const z = this.standardize(row, this.z);
    let zz = 0;
    for (let j = 0; j < d; j++) zz += (z[j] as number) * (z[j] as number);
    let t2 = 0;
    let proj = 0;
    for (let i = 0; i < this.components; i++) {
      let s = 0;
      const base = i * d;
      for (let j = 0; j < d; j++) s += (this.axes[base + j] as number) * (z[j] as number);
      t2 += s * s * (this.invEig[i] as number);
      proj += s * s;
    }
    out.t2 = t2;
    out.q = Math.max(zz - proj, 0);
    return out;
  }
}
