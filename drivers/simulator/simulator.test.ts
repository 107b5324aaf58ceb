import { describe, expect, it } from 'vitest';
import type { BoundSensor } from '../../agent/driver.js';
import type { Reading } from '../../agent/types.js';
import { simulatorSchema } from './schema.js';
import { SignalGenerator } from './simulator.js';

const sensor = (asset: string, id: string, metric: BoundSensor['metric']): BoundSensor => ({
  asset,
  id,
  metric,
  unit: '',
  source: 'sim',
});
const SENSORS = [sensor('p1', 't', 'temperature'), sensor('p1', 'p', 'pressure'), sensor('p2', 'v', 'vibration')];
const T0 = Date.UTC(2026, 0, 1);

function run(seed: number, sensors: BoundSensor[], steps: number, faults: unknown[] = []): Reading[] {
  const cfg = simulatorSchema.parse({ seed, rate: 10, faults });
  const gen = new SignalGenerator(sensors, cfg, T0);
  const out: Reading[] = [];
  gen.generateSteps(steps, 0, out);
  return out;
}

describe('simulator', () => {
  it('is deterministic for a seed', () => {
    expect(run(7, SENSORS, 500)).toEqual(run(7, SENSORS, 500));
  });

  it('differs between seeds', () => {
    const a = run(7, SENSORS, 100).map((r) => r.value);
    const b = run(8, SENSORS, 100).map((r) => r.value);
    expect(a).not.toEqual(b);
  });

  it('gives each sensor its own stream: adding a sensor changes no other', () => {
    const alone = run(3, [SENSORS[0] as BoundSensor], 200);
    const among = run(3, SENSORS, 200).filter((r) => r.sensor === 't');
    expect(among).toEqual(alone);
  });

  it('spaces event times by the rate and stays near the metric baseline', () => {
    const temps = run(1, [SENSORS[0] as BoundSensor], 600);
    expect(temps[1]!.eventTime - temps[0]!.eventTime).toBe(100);
    const mean = temps.reduce((s, r) => s + r.value, 0) / temps.length;
    expect(mean).toBeGreaterThan(60);
    expect(mean).toBeLessThan(70);
  });

  it('ramps an overheat by its magnitude over its duration', () => {
    const faults = [{ asset: 'p1', sensor: 't', kind: 'overheat_ramp', start: '10s', duration: '20s', magnitude: 40 }];
    const r = run(1, [SENSORS[0] as BoundSensor], 400, faults);
    const at = (s: number) => r.find((x) => x.eventTime === T0 + s * 1000)!.value;
    expect(at(29.9) - at(9.9)).toBeGreaterThan(30);
    expect(at(35)).toBeLessThan(75);
  });

  it('freezes a stuck sensor and drops readings during a dropout', () => {
    const faults = [
      { asset: 'p1', sensor: 't', kind: 'stuck', start: '1s', duration: '2s' },
      { asset: 'p1', sensor: 'p', kind: 'dropout', start: '1s', duration: '2s' },
    ];
    const r = run(1, SENSORS.slice(0, 2), 50, faults);
    const stuck = r.filter((x) => x.sensor === 't' && x.eventTime >= T0 + 1000 && x.eventTime < T0 + 3000);
    expect(new Set(stuck.map((x) => x.value)).size).toBe(1);
    expect(r.filter((x) => x.sensor === 'p' && x.eventTime >= T0 + 1000 && x.eventTime < T0 + 3000)).toHaveLength(0);
    expect(r.filter((x) => x.sensor === 'p')).toHaveLength(30);
  });

  it('marks values outside the declared range as bad', () => {
    const s = { ...(SENSORS[0] as BoundSensor), max: 50 };
    expect(run(1, [s], 10).every((r) => r.quality === 'bad')).toBe(true);
  });
});
