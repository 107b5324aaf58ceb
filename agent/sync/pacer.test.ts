import { describe, expect, it } from 'vitest';
import { DrainPacer } from './pacer.js';

describe('DrainPacer', () => {
  it('never pauses while nothing drains, and learns the normal loop delay then', () => {
    const p = new DrainPacer();
    for (const d of [5, 5, 50, 5]) expect(p.sample(d, false)).toBe(0);
    expect(p.normal).toBeGreaterThan(5);
    expect(p.normal).toBeLessThan(50);
  });

  it('doubles the pause while the drain delays the loop, up to the cap, and lets go once it does not', () => {
    const p = new DrainPacer({ minPauseMs: 10, maxPauseMs: 400, slackMs: 1 });
    for (let i = 0; i < 10; i++) p.sample(5, false);
    // Within 1.2 × normal + 1 ms: no pause.
    expect(p.sample(7, true)).toBe(0);
    const up = [9, 9, 9, 9, 9, 9, 9].map((d) => p.sample(d, true));
    expect(up).toEqual([10, 20, 40, 80, 160, 320, 400]);
    const down: number[] = [];
    for (let i = 0; i < 20 && p.pauseMs > 0; i++) down.push(p.sample(5, true));
    expect(down[0]).toBeCloseTo(280);
    expect(down.at(-1)).toBe(0);
    for (let i = 1; i < down.length; i++) expect(down[i]).toBeLessThan(down[i - 1] as number);
  });

  it('while draining the normal delay only goes down; the drain ending clears the pause', () => {
    const p = new DrainPacer();
    p.sample(8, true);
    expect(p.normal).toBe(8);
    p.sample(30, true);
    expect(p.normal).toBe(8);
    p.sample(6, true);
    expect(p.normal).toBe(6);
    expect(p.sample(50, true)).toBeGreaterThan(0);
    expect(p.sample(50, false)).toBe(0);
  });

  it('ignores a sample that is not a number', () => {
    const p = new DrainPacer();
    p.sample(5, false);
    expect(p.sample(Number.NaN, true)).toBe(0);
    expect(p.normal).toBe(5);
  });
});
