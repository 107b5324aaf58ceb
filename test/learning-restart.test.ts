/**
 * Learning survives restarts (issue 19, contract E): the whole agent on a real SQLite store. A z-score
 * and a multivariate detector learn their baselines, the agent stops, a new agent starts on the same
 * store and config: both raise on the FIRST anomalous reading (no second learning phase), and the twin
 * says they were restored. A changed detector config relearns (and the twin says until when).
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../agent/agent.js';
import { parseConfig } from '../agent/config/load.js';
import type { BoundSensor } from '../agent/driver.js';
import { makeReading } from '../agent/reading.js';
import { openDb } from '../agent/store/db.js';
import type { AgentEvent } from '../agent/types.js';
import { tempDir } from './helpers/tmp.js';

const silent = pino({ level: 'silent' });
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const yaml = (db: string, zLimitFactor = 1.5) => `
gateway: { id: gw-learn }
store: { path: ${db}, flush_interval: 20ms }
sources:
  # Nothing listens on port 1: the readings of this test are handed to the pipeline directly.
  - id: feed
    type: mqtt
    url: mqtt://127.0.0.1:1
    connect_timeout: 100ms
    subscriptions: [{ topic: 'x/#', asset: pump, sensor: temp }]
assets:
  - id: pump
    sensors:
      - { id: temp, metric: temperature, unit: degC, source: feed }
      - { id: vib, metric: vibration, unit: mm/s, source: feed }
detectors:
  - { id: temp-z, type: zscore, asset: pump, sensor: temp, limit_factor: ${zLimitFactor}, learn: { readings: 40 } }
  - id: pump-mv
    type: multivariate
    asset: pump
    sensors: [temp, vib]
    statistic: max_abs_z
    smoothing: 0s
    limit_factor: 1.5
    on_count: 1
    off_count: 1
    learn: { readings: 40 }
`;

const sensor = (id: string, metric: BoundSensor['metric'], unit: string): BoundSensor => ({
  asset: 'pump',
  id,
  metric,
  unit,
  source: 'feed',
});
const temp = sensor('temp', 'temperature', 'degC');
const vib = sensor('vib', 'vibration', 'mm/s');

async function run(db: string, zLimitFactor?: number) {
  const res = await parseConfig(yaml(db, zLimitFactor), 'learn.yaml');
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  const agent = await Agent.create(res.config, { logger: silent });
  const events: AgentEvent[] = [];
  agent.eventTaps.push((ev) => events.push(ev));
  await agent.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await agent.stop();
  };
  cleanups.push(stop);
  /** One row: both sensors at one event time. */
  const row = (t: number, tv: number, vv: number) =>
    agent.pipeline.ingest([makeReading(temp, tv, t, Date.now()), makeReading(vib, vv, t, Date.now())]);
  const raised = () =>
    events
      .filter((e) => e.kind === 'anomaly' && e.payload.state === 'raised')
      .map((e) => String(e.payload.detector))
      .sort();
  const learning = () => Object.fromEntries(agent.learned.views('pump').map((v) => [v.detector, v] as const));
  return { agent, row, raised, learning, stop };
}

describe('learned baselines survive a restart', () => {
  it('a detector that finished learning raises on the first anomalous reading after a restart; a changed config relearns', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const db = join(dir.path, 'agent.db');
    const t0 = Date.now() - 600_000;

    // 1. Learn: 40 normal rows (temp ~ 60 ± 1, vib ~ 2 ± 0.1).
    const first = await run(db);
    expect(first.learning()['temp-z']).toMatchObject({ learning: true, seen: 0, of: 40, restored: false });
    for (let i = 0; i < 40; i++) first.row(t0 + i * 1000, 60 + Math.sin(i), 2 + 0.1 * Math.cos(i));
    expect(first.learning()).toMatchObject({
      'temp-z': { learning: false, restored: false, learned_at: t0 + 39_000 },
      'pump-mv': { learning: false, restored: false, learned_at: t0 + 39_000 },
    });
    // Normal rows after learning raise nothing.
    for (let i = 40; i < 45; i++) first.row(t0 + i * 1000, 60 + Math.sin(i), 2 + 0.1 * Math.cos(i));
    expect(first.raised()).toEqual([]);
    await first.stop();
    const conn = openDb(db, 'NORMAL', true);
    const rows = conn.prepare('SELECT detector, config_hash FROM learned_state ORDER BY detector').all() as Array<{
      detector: string;
    }>;
    conn.close();
    expect(rows.map((r) => r.detector)).toEqual(['pump-mv', 'temp-z']);

    // 2. Restart on the same store and config: restored, and the first anomalous row raises both.
    const second = await run(db);
    expect(second.learning()).toMatchObject({
      'temp-z': { learning: false, restored: true, learned_at: t0 + 39_000 },
      'pump-mv': { learning: false, restored: true, learned_at: t0 + 39_000 },
    });
    const twin = second.agent.learned.views('pump');
    expect(twin.every((v) => !v.learning && v.restored)).toBe(true);
    second.row(t0 + 100_000, 95, 2);
    expect(second.raised()).toEqual(['pump-mv', 'temp-z']);
    await second.stop();

    // 3. A changed config of temp-z: it learns again (nothing raised on the same anomalous row), the
    //    unchanged multivariate detector is still restored and raises.
    const third = await run(db, 3);
    const l = third.learning();
    expect(l['temp-z']).toMatchObject({ learning: true, restored: false, of: 40 });
    expect(l['pump-mv']).toMatchObject({ learning: false, restored: true });
    third.row(t0 + 200_000, 95, 2);
    expect(third.raised()).toEqual(['pump-mv']);
    expect(third.learning()['temp-z']).toMatchObject({ learning: true, seen: 1, since: t0 + 200_000 });
  });
});
