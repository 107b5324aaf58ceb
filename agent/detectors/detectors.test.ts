import { describe, expect, it } from 'vitest';
import type { Reading } from '../types.js';
import type { ScalarDetector } from './common.js';
import { createDetector, detectorSchema, type ScalarConfig } from './registry.js';

const reading = (value: number, t: number, quality: Reading['quality'] = 'good'): Reading => ({
  asset: 'a',
  sensor: 's',
  metric: 'temperature',
  value,
  unit: 'degC',
  eventTime: t,
  ingestTime: t,
  quality,
});

const states = (det: ScalarDetector, values: number[], step = 1000) =>
  values.map((v, i) => det.update(reading(v, i * step))?.state ?? '-');

describe('threshold with hysteresis', () => {
  const det = () =>
    createDetector(
      detectorSchema.parse({
        id: 'd',
        type: 'threshold',
        asset: 'a',
        sensor: 's',
        setpoint: 90,
        delta_up: 5,
        delta_down: 10,
      }) as ScalarConfig,
    );

  it('raises above setpoint+up, clears below setpoint-down, and reports only changes', () => {
    expect(states(det(), [80, 94, 95.1, 99, 85, 81, 79.9, 80, 96])).toEqual([
      '-',
      '-',
      'raised',
      '-',
      '-',
      '-',
      'cleared',
      '-',
      'raised',
    ]);
  });

  it('works downwards', () => {
    const d = createDetector(
      detectorSchema.parse({
        id: 'd',
        type: 'threshold',
        asset: 'a',
        sensor: 's',
        direction: 'below',
        setpoint: 4,
        delta_up: 0.2,
        delta_down: 0.5,
      }) as ScalarConfig,
    );
    expect(states(d, [6, 3.9, 3.7, 4.4, 4.6])).toEqual(['-', '-', 'raised', '-', 'cleared']);
  });

  it('ignores readings that are not good', () => {
    const d = det();
    expect(d.update(reading(500, 0, 'bad'))).toBeUndefined();
    expect(d.update(reading(500, 0, 'comm_error'))).toBeUndefined();
    expect(d.active).toBe(false);
  });

  it('says what it saw', () => {
    const a = det().update(reading(96, 5));
    expect(a).toMatchObject({
      detector: 'd',
      state: 'raised',
      value: 96,
      eventTime: 5,
      evidence: { raise_at: 95, clear_at: 80 },
    });
  });
});

describe('count over limit within a window', () => {
  const det = () =>
    createDetector(
      detectorSchema.parse({
        id: 'c',
        type: 'count_over',
        asset: 'a',
        sensor: 's',
        limit: 100,
        count: 5,
        window: '1m',
      }) as ScalarConfig,
    );

  it('raises on the sixth reading above the limit within a minute', () => {
    expect(states(det(), [101, 50, 101, 101, 101, 101, 101], 5000)).toEqual(['-', '-', '-', '-', '-', '-', 'raised']);
  });

  it('does not raise when the readings are spread wider than the window', () => {
    expect(states(det(), [101, 101, 101, 101, 101, 101, 101], 15_000).includes('raised')).toBe(false);
  });

  it('clears when old readings leave the window', () => {
    const d = det();
    const s = states(d, [101, 101, 101, 101, 101, 101], 1000);
    expect(s.at(-1)).toBe('raised');
    expect(d.update(reading(0, 65_000))?.state).toBe('cleared');
  });

  it('counts readings exactly at the window edge as outside', () => {
    const d = det();
    for (let i = 0; i < 5; i++) d.update(reading(101, i));
    expect(d.update(reading(101, 60_000))).toBeUndefined();
    expect(d.update(reading(101, 60_001))).toBeUndefined();
  });
});
