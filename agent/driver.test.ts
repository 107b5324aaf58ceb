import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { parseConfig } from './config/load.js';
import type { SensorConfig } from './config/schema.js';
import { bindSensor } from './driver.js';
import { sensorSlots } from './reading.js';

// V8's own check that two objects share a hidden class; functions compiled after the flag is set may use it.
setFlagsFromString('--allow-natives-syntax');
const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
const classes = (xs: readonly object[]): number => {
  const reps: object[] = [];
  for (const x of xs) if (!reps.some((r) => sameMap(r, x))) reps.push(x);
  return reps.length;
};

async function plant(n: number) {
  const lines = ['gateway: { id: gw }', 'sources: [{ id: bus, type: simulator }]', 'assets:'];
  for (let i = 0; i < n; i++)
    lines.push(
      `  - { id: a${i}, sensors: [{ id: temperature, metric: temperature, unit: degC, source: bus, min: -40, max: ${i % 2 ? 400 : 399.5} }] }`,
    );
  const res = await parseConfig(`${lines.join('\n')}\n`, 'plant.yaml');
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  return res.config;
}

describe('bindSensor', () => {
  it('gives every sensor of a plant of one-sensor assets one hidden class, where a spread gave each its own', async () => {
    const config = await plant(300);
    const slots = sensorSlots(config.assets);
    // The agent's pattern: a callback per asset, each run once (agent/agent.ts, Agent.init).
    const bound = config.assets.flatMap((a) => a.sensors.map((s) => bindSensor(s, a.id, slots.get(a.id)?.get(s.id))));
    const spread = config.assets.flatMap((a) => a.sensors.map((s) => ({ ...s, asset: a.id, slot: slots.get(a.id)?.get(s.id) })));
    expect(classes(config.assets.map((a) => a.sensors[0] as SensorConfig))).toBe(1);
    expect(classes(bound)).toBe(1);
    // What the hot path's loads used to see: the check above is one that can fail.
    expect(classes(spread)).toBeGreaterThan(100);
  });

  it('carries every field of the sensor config, and the asset and slot', async () => {
    const config = await plant(1);
    const s = config.assets[0]?.sensors[0] as SensorConfig;
    const b = bindSensor({ ...s, address: { register: 7 }, range_trip: false }, 'a0', 3);
    expect(b).toEqual({ ...s, address: { register: 7 }, range_trip: false, asset: 'a0', slot: 3 });
    // A field the sensor schema gains must be carried here too.
    const schemaKeys = Object.keys((await import('./config/sections.js')).sensorSchema.shape).sort();
    expect(
      Object.keys(b)
        .filter((k) => k !== 'asset' && k !== 'slot')
        .sort(),
    ).toEqual(schemaKeys);
  });
});
