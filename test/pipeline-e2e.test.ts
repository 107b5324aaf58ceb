/**
 * The whole agent on its simulator, through a real SQLite file: a scheduled overheat must produce an
 * anomaly and a latched trip, and every accepted reading must be accounted for in the store.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../agent/agent.js';
import { parseConfigOrThrow } from '../agent/config/load.js';
import { openDb } from '../agent/store/db.js';
import { activeTrips, summarize } from '../agent/store/queries.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const configYaml = (dbPath: string, rate = 200) => `
store: { path: ${dbPath}, flush_interval: 50ms }
log: { level: warn }
aggregation: { window: 1s }
sources:
  - id: sim
    type: simulator
    seed: 5
    rate: ${rate}
    tick: 20ms
    faults:
      - { asset: pump-1, sensor: temperature, kind: overheat_ramp, start: 200ms, duration: 1s, magnitude: 60 }
assets:
  - id: pump-1
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim }
      - { id: pressure, metric: pressure, unit: bar, source: sim }
  - id: pump-2
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim }
detectors:
  - { id: overheat, type: threshold, asset: pump-1, sensor: temperature, setpoint: 90, delta_up: 5, delta_down: 10, severity: critical, trip: true }
actuators:
  - { id: log-stop, type: log }
interlocks:
  - asset: pump-1
    actions: [{ actuator: log-stop, command: stop }]
`;

const config = (yaml: string) => parseConfigOrThrow(yaml, 'test.yaml');

function sumAggregateCounts(dbPath: string): number {
  const db = openDb(dbPath, 'NORMAL', true);
  try {
    const row = db
      .prepare("SELECT COALESCE(SUM(json_extract(payload, '$.count')), 0) AS n FROM events WHERE kind = 'aggregate'")
      .get() as { n: number };
    return row.n;
  } finally {
    db.close();
  }
}

const silent = pino({ level: 'silent' });
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('agent end to end on the simulator', () => {
  it('overheat → anomaly → latched trip, all in the store, and every reading accounted for', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const dbPath = join(dir.path, 'agent.db');
    const agent = await Agent.create(await config(configYaml(dbPath)), { logger: silent });
    cleanups.push(() => agent.stop());
    await agent.start();
    await waitFor(() => agent.interlocks.state('pump-1') === 'tripped', { what: 'pump-1 trip', timeoutMs: 20_000 });
    expect(agent.interlocks.state('pump-2')).toBe('running');
    await agent.stop();

    const db = openDb(dbPath, 'NORMAL', true);
    const s = summarize(db);
    const trips = activeTrips(db);
    const anomaly = db.prepare("SELECT payload FROM events WHERE kind = 'anomaly' ORDER BY seq LIMIT 1").get() as {
      payload: string;
    };
    const results = db
      .prepare("SELECT payload FROM events WHERE kind = 'action' AND json_extract(payload, '$.type') = 'command_result'")
      .all();
    db.close();

    expect(trips.map((t) => [t.asset, t.detector])).toEqual([['pump-1', 'overheat']]);
    expect(JSON.parse(anomaly.payload)).toMatchObject({ detector: 'overheat', state: 'raised', severity: 'critical' });
    expect(results).toHaveLength(1);
    expect(s.countsByKind.aggregate).toBeGreaterThan(0);
    expect(agent.pipeline.counters.readings).toBeGreaterThan(0);
    expect(sumAggregateCounts(dbPath)).toBe(agent.pipeline.counters.readings);
    expect(agent.store.stats.persisted).toBe(agent.store.stats.accepted);
  });

  it('keeps a trip latched across a restart until it is acknowledged', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const dbPath = join(dir.path, 'agent.db');
    const cfg = await config(configYaml(dbPath));
    const first = await Agent.create(cfg, { logger: silent });
    await first.start();
    await waitFor(() => first.interlocks.state('pump-1') === 'tripped', { what: 'trip', timeoutMs: 20_000 });
    await first.stop();

    const noFault = await config(configYaml(dbPath).replace(/faults:[\s\S]*?magnitude: 60 \}\n/, 'faults: []\n'));
    const second = await Agent.create(noFault, { logger: silent });
    cleanups.push(() => second.stop());
    await second.start();
    expect(second.interlocks.state('pump-1')).toBe('tripped');
    // Until the restarted agent has read the sensor, nothing shows the cause has cleared: refused.
    expect(second.interlocks.ack('pump-1', 'tester')).toMatchObject({
      ok: false,
      raised: [{ detector: 'fail_safe:no_reading', sensor: 'temperature' }],
    });
    await waitFor(() => second.interlocks.raisedConditions('pump-1').length === 0, { what: 'a normal reading' });
    expect(second.interlocks.ack('pump-1', 'tester')).toEqual({ ok: true, state: 'running' });
    await second.stop();
    const db = openDb(dbPath, 'NORMAL', true);
    expect(activeTrips(db)).toEqual([]);
    db.close();
  });
});

describe('edge-agent run as a process', () => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    child?.kill('SIGKILL');
  });

  /** Runs the agent until its trip, sends `signals` 10 ms apart, and checks a clean, lossless shutdown. */
  const stopsCleanly = async (signals: NodeJS.Signals[]) => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const dbPath = join(dir.path, 'agent.db');
    const cfgPath = join(dir.path, 'agent.yaml');
    writeFileSync(cfgPath, configYaml(dbPath, 2000).replace('level: warn', 'level: info'));
    child = spawn(process.execPath, ['bin/edge-agent.js', 'run', '--config', cfgPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (err += d));
    await waitFor(() => out.includes('asset tripped'), { what: 'the trip in the log', timeoutMs: 20_000 });
    const exited = new Promise<number | null>((resolve) => child?.once('exit', resolve));
    for (const [i, signal] of signals.entries()) {
      if (i > 0) await new Promise((r) => setTimeout(r, 10));
      child.kill(signal);
    }
    const code = await exited;
    expect(err).toBe('');
    expect(code).toBe(0);
    const lines = out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { msg: string; readings?: number });
    expect(lines.some((l) => l.msg.startsWith('second signal'))).toBe(false);
    const stopped = lines.find((l) => l.msg === 'agent stopped');
    expect(stopped?.readings).toBeGreaterThan(1000);
    expect(sumAggregateCounts(dbPath)).toBe(stopped?.readings);
  };

  it('on SIGTERM stops the drivers, flushes the store and exits 0 with no accepted reading lost', async () => {
    await stopsCleanly(['SIGTERM']);
  });

  it('a Ctrl-C that arrives twice within milliseconds (the terminal and `npm start` both deliver it) still shuts down cleanly', async () => {
    await stopsCleanly(['SIGINT', 'SIGINT']);
  });
});
