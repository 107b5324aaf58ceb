/**
 * k-fold cross-validation of the SKAB settings choice (pure; no I/O).
 *
 * Candidates are detector settings whose 0/1 predictions on every file are already computed (one
 * replay per file serves every candidate). For each fold, the candidate with the best objective on
 * the OTHER folds' files is chosen and its predictions on the fold's files are kept; the held-out
 * predictions of all folds are then scored together (pooled, as the leaderboard pools files). That
 * figure estimates what the selection procedure gives on files it has not seen; the in-sample
 * figure (best candidate chosen and scored on all files) is reported beside it.
 *
 * Folds: files sorted by name within each group (valve1, valve2, other), dealt round-robin, so
 * every fold holds files of each group.
 */
import { type SkabScore, type SkabScoreFile, scoreSkab } from './skab-score.js';

export interface CvFile {
  name: string;
  /** Scored rows: times, labels, changepoints (as SkabScoreFile, without predictions). */
  base: Omit<SkabScoreFile, 'predictions'>;
  /** Candidate name → 0/1 predictions on the scored rows. */
  predictions: ReadonlyMap<string, Uint8Array>;
}

export interface CvResult {
  folds: Array<{ files: string[]; chosen: string; train: SkabScore; test: SkabScore }>;
  /** Held-out predictions of every fold, scored together. */
  cv: SkabScore;
  inSample: { chosen: string; score: SkabScore };
}

export function foldsOf(names: readonly string[], k: number): number[] {
  const group = (n: string) => n.split('/')[0] ?? '';
  const order = names
    .map((n, i) => ({ n, i }))
    .sort((a, b) => group(a.n).localeCompare(group(b.n)) || a.n.localeCompare(b.n, 'en', { numeric: true }));
  const fold = new Array<number>(names.length);
  order.forEach((o, j) => {
    fold[o.i] = j % k;
  });
  return fold;
}

function scoreWith(files: readonly CvFile[], candidate: string): SkabScore {
  return scoreSkab(files.map((f) => ({ ...f.base, predictions: f.predictions.get(candidate) as Uint8Array })));
}

function best(
  files: readonly CvFile[],
  candidates: readonly string[],
  objective: (s: SkabScore) => number,
): { chosen: string; score: SkabScore } {
  let chosen = candidates[0] as string;
  let score = scoreWith(files, chosen);
  for (const c of candidates.slice(1)) {
    const s = scoreWith(files, c);
    if (objective(s) > objective(score)) {
      chosen = c;
      score = s;
    }
  }
  return { chosen, score };
}

export function crossValidate(
  files: readonly CvFile[],
  candidates: readonly string[],
  objective: (s: SkabScore) => number,
  k: number,
): CvResult {
  const fold = foldsOf(
    files.map((f) => f.name),
    k,
  );
  const heldOut: SkabScoreFile[] = [];
  const folds: CvResult['folds'] = [];
  for (let f = 0; f < k; f++) {
    const train = files.filter((_, i) => fold[i] !== f);
    const test = files.filter((_, i) => fold[i] === f);
    if (test.length === 0) continue;
    const pick = best(train, candidates, objective);
    for (const file of test) heldOut.push({ ...file.base, predictions: file.predictions.get(pick.chosen) as Uint8Array });
    folds.push({ files: test.map((t) => t.name), chosen: pick.chosen, train: pick.score, test: scoreWith(test, pick.chosen) });
  }
  return { folds, cv: scoreSkab(heldOut), inSample: best(files, candidates, objective) };
}
