import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.js';
import { combine, type EnsemblePolicy, Ensembles } from './ensemble.js';

const base = { asset: 'p1', severity: 'critical' as const, trip: false };

describe('ensemble combinations', () => {
  const members = ['model', 'hot', 'vib'];
  const states =
    (...on: string[]) =>
    (m: string) =>
      on.includes(m);
  it.each<[EnsemblePolicy['combine'], Partial<EnsemblePolicy>, string[], boolean]>([
    ['any', {}, [], false],
    ['any', {}, ['vib'], true],
    ['all', {}, ['model', 'hot'], false],
    ['all', {}, ['model', 'hot', 'vib'], true],
    ['k_of_n', { k: 2 }, ['hot'], false],
    ['k_of_n', { k: 2 }, ['hot', 'model'], true],
    ['weighted', { weights: { model: 0.6, hot: 0.5 }, threshold: 1 }, ['model'], false],
    ['weighted', { weights: { model: 0.6, hot: 0.5 }, threshold: 1 }, ['model', 'hot'], true],
    // vib has the default weight 1
    ['weighted', { weights: { model: 0.6, hot: 0.5 }, threshold: 1 }, ['vib'], true],
  ])('%s %j with %j active → %s', (kind, extra, on, expected) => {
    expect(combine({ ...base, id: 'e', members, combine: kind, ...extra }, states(...on))).toBe(expected);
  });

  it('raises and clears on flips only, with the policy trip flag and the model evidence', () => {
    const e = new Ensembles([
      { ...base, id: 'stop-2of2', members: ['model', 'hot'], combine: 'all', trip: true },
      { ...base, id: 'warn-any', members: ['model', 'hot'], combine: 'any', severity: 'warning' },
    ]);
    expect(e.watches('p1', 'model')).toBe(true);
    expect(e.watches('p2', 'model')).toBe(false);
    const a1 = e.update('p1', 'model', true, 10, { score: 3, model_version: 'v1' });
    expect(a1.map((a) => [a.detector, a.state, a.trip])).toEqual([['warn-any', 'raised', false]]);
    expect(e.update('p1', 'model', true, 11, { score: 4, model_version: 'v1' })).toEqual([]);
    const a2 = e.update('p1', 'hot', true, 12);
    expect(a2.map((a) => [a.detector, a.state, a.trip])).toEqual([['stop-2of2', 'raised', true]]);
    expect(a2[0]?.evidence).toMatchObject({ members: { model: { active: true, model_version: 'v1' }, hot: { active: true } } });
    const a3 = e.update('p1', 'model', false, 13);
    expect(a3.map((a) => [a.detector, a.state])).toEqual([['stop-2of2', 'cleared']]);
    expect(e.update('p2', 'hot', true, 14)).toEqual([]);
  });
});

describe('ensemble config', () => {
  const yaml = (ensembles: string) => `
sources: [{ id: sim, type: simulator }]
assets:
  - id: p1
    sensors: [{ id: temperature, metric: temperature, source: sim }]
detectors:
  - { id: hot, type: threshold, asset: p1, sensor: temperature, setpoint: 90 }
actuators: [{ id: stop, type: log }]
model: { dir: ./models }
ensembles:
${ensembles}
`;

  it('accepts a valid policy', async () => {
    const r = await parseConfig(yaml('  - { id: e1, asset: p1, members: [model, hot], combine: k_of_n, k: 2 }'), 'c.yaml');
    expect(r.ok).toBe(true);
  });

  it('names unknown members, a bad k, a weighted policy without threshold and a trip without interlock', async () => {
    const r = await parseConfig(
      yaml(
        [
          '  - { id: e1, asset: p1, members: [model, cold], combine: k_of_n, k: 3 }',
          '  - { id: e2, asset: p1, members: [hot], combine: weighted, trip: true }',
        ].join('\n'),
      ),
      'c.yaml',
    );
    expect(r.ok).toBe(false);
    const msgs = r.ok ? [] : r.errors.map((e) => `${e.path}: ${e.message}`);
    expect(msgs).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^ensembles\[0\]\.members\[1\]: "cold" is not a detector of asset "p1"/),
        expect.stringMatching(/^ensembles\[0\]\.k: k_of_n needs k between 1 and 2/),
        expect.stringMatching(/^ensembles\[1\]\.threshold: weighted needs a threshold/),
        expect.stringMatching(/^ensembles\[1\]\.trip: ensemble trips asset "p1", which has no interlock/),
      ]),
    );
  });
});
