import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfigOrThrow } from '../config/load.js';
import { AdaptiveDetector } from '../detectors/adaptive/detector.js';
import type { AdaptiveConfig } from '../detectors/adaptive/types.js';
import { backtestCommand, defaultConfig } from './cli.js';
import { backtest } from './replay.js';
import { nabScores, pointCounts, pointRates } from './score.js';
import { parseCsv, parseJsonl, parseTime } from './table.js';

const CONFIG = `
sources: [{ id: plc, type: simulator }]
assets:
  - id: pump
    sensors:
      - { id: temp, metric: temperature, source: plc }
      - { id: flow, metric: flow, source: plc }
detectors:
  - { id: hot, type: threshold, asset: pump, sensor: temp, setpoint: 90, trip: true }
  - { id: flow-auto, asset: pump, sensor: flow, learn: { readings: 20 } }
actuators: [{ id: stop, type: log }]
interlocks: [{ asset: pump, actions: [{ actuator: stop }] }]
`;

/** One row a minute from 2014-03-01 (before the default trusted_after): temp and flow columns. */
function csv(rows: number, at: (i: number) => { temp: number; flow: number }, extra: string[] = []): string {
  const t0 = Date.UTC(2014, 2, 1);
  const lines = ['timestamp,temp,flow'];
  for (let i = 0; i < rows; i++) {
    const { temp, flow } = at(i);
    lines.push(`${new Date(t0 + 60_000 * i).toISOString().replace('T', ' ').slice(0, 19)},${temp},${flow}`);
  }
  return [...lines, ...extra].join('\n');
}

const wobble = (i: number) => ((i * 7919) % 13) / 13 - 0.5;

describe('backtest', () => {
  it('replays history through the pipeline and interlocks: no clock flags, trips as dry runs, late rows counted', async () => {
    const config = await parseConfigOrThrow(CONFIG);
    // The last row is stamped 03:10, long before the watermark: handled as live (its 2 readings dropped) and counted.
    const text = csv(200, (i) => ({ temp: i === 150 ? 95 : 60 + wobble(i), flow: 10 + wobble(i) + (i === 120 ? 8 : 0) }), [
      '2014-03-01 03:10:00,99,10',
    ]);
    const res = backtest(config, parseCsv(text));
    expect(res.counters).toMatchObject({ untrustedClock: 0, future: 0, late: 2, readings: 400 });
    const raised = res.detections.filter((d) => d.state === 'raised').map((d) => [d.detector, d.row]);
    expect(raised).toEqual([
      ['flow-auto', 120],
      ['hot', 150],
    ]);
    expect(res.detections.every((d) => !('clock_trusted' in d))).toBe(true);
    expect(res.timeline.filter((e) => e.kind === 'trip')).toMatchObject([{ detector: 'hot', asset: 'pump', start_row: 150 }]);
    expect(res.raisedRows[120]).toBe(1);
    expect(res.activeRows[150]).toBe(1);
    expect(res.activeRows[151]).toBe(0);
  });

  it('gives the same raises as the detector judging the column alone (the replay clock changes nothing)', async () => {
    const config = await parseConfigOrThrow(CONFIG);
    const text = csv(3000, (i) => ({ temp: 50, flow: 10 + wobble(i) + 2 * Math.sin(i / 60) + (i > 2000 && i < 2100 ? 4 : 0) }));
    const res = backtest(config, parseCsv(text), { detectors: new Set(['flow-auto']) });
    const det = new AdaptiveDetector(config.detectors[1] as AdaptiveConfig);
    const table = parseCsv(text);
    const alone: number[] = [];
    const flow = table.layout === 'wide' ? (table.columns.get('flow') as Float64Array) : new Float64Array();
    for (let i = 0; i < 3000; i++) if (det.judge(table.times[i] as number, flow[i] as number, 'good') === 1) alone.push(i);
    const replayed = [...res.raisedRows.keys()].filter((i) => res.raisedRows[i] === 1);
    expect(alone.length).toBeGreaterThan(0);
    expect(replayed).toEqual(alone);
  });

  it('reads long JSONL exports (asset, sensor, value, quality) and ISO or epoch times', async () => {
    const config = await parseConfigOrThrow(CONFIG);
    const lines = Array.from({ length: 30 }, (_, i) =>
      JSON.stringify({
        t: Date.UTC(2014, 0, 1) + 1000 * i,
        asset: 'pump',
        sensor: 'temp',
        value: i === 25 ? 91 : 20,
        quality: 'good',
      }),
    );
    const res = backtest(config, parseJsonl(lines.join('\n')));
    expect(res.detections.map((d) => [d.detector, d.state, d.row])).toEqual([
      ['hot', 'raised', 25],
      ['hot', 'cleared', 26],
    ]);
    expect(parseTime('2014-01-01 00:00:01')).toBe(Date.UTC(2014, 0, 1, 0, 0, 1));
    expect(parseTime('2014-01-01T00:00:01+01:00')).toBe(Date.UTC(2013, 11, 31, 23, 0, 1));
  });

  it('without a config every value column gets the default detector; SKAB-style ; files and label columns', async () => {
    const table = parseCsv('datetime;Current;Pressure;anomaly\n2020-03-09 10:00:00;1;2;0\n2020-03-09 10:00:01;1;2;0');
    const { config, columns } = await defaultConfig(table, 'valve', new Set());
    expect(columns.map((c) => c.sensor)).toEqual(['Current', 'Pressure']);
    expect(config.detectors.map((d) => d.type)).toEqual(['adaptive', 'adaptive']);
  });

  it('scores: NAB per profile from the raises, F1/FAR/MAR from the alarm state per row', () => {
    const times = Float64Array.from({ length: 1000 }, (_, i) => i * 1000);
    const raisedRows = new Uint8Array(1000);
    raisedRows[400] = 1;
    const s = nabScores({ times, raisedRows }, [[400_000, 499_000]]);
    expect(s.find((x) => x.profile === 'standard')).toMatchObject({ normalised: 100, detected: 1, fp: 0 });
    const c = pointCounts([1, 1, 0, 0, 1], [1, 0, 0, 1, 1]);
    expect(c).toEqual({ tp: 2, fp: 1, fn: 1, tn: 1 });
    expect(pointRates(c)).toEqual({ f1: 4 / 6, far: 0.5, mar: 1 / 3 });
  });

  it('edge-agent backtest writes detections and the timeline, and prints the scores', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'backtest-'));
    const input = join(dir, 'history.csv');
    writeFileSync(
      input,
      `timestamp,flow,label\n${Array.from({ length: 600 }, (_, i) => `2014-05-01 ${String(Math.floor(i / 60)).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00,${50 + wobble(i) + (i >= 400 && i < 420 ? 9 : 0)},${i >= 400 && i < 420 ? 1 : 0}`).join('\n')}\n`,
    );
    writeFileSync(
      join(dir, 'windows.json'),
      JSON.stringify({ 'x/history.csv': [['2014-05-01 06:30:00.000000', '2014-05-01 07:10:00.000000']] }),
    );
    const out = join(dir, 'out');
    let printed = '';
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => {
      printed += s;
      return true;
    }) as typeof process.stdout.write;
    try {
      expect(await backtestCommand([input, '--label-column', 'label', '--labels', join(dir, 'windows.json'), '--out', out])).toBe(
        0,
      );
      expect(await backtestCommand([input, '--format', 'jsonl', '--out', out])).toBe(0);
    } finally {
      process.stdout.write = write;
    }
    expect(printed).toMatch(/600 rows, 600 readings \(0 late, 0 out of order\)/);
    expect(printed).toMatch(/NAB standard +98\.4 \(raw 0\.968; 1\/1 windows detected, 0 false positives\)/);
    // The alarm clears 10 rows after the step ends (the short mean has to come back): 10 false-positive rows.
    expect(printed).toMatch(/F1 0\.800 {2}FAR 1\.72 % {2}MAR 0\.00 % {2}\(TP 20 FP 10 FN 0 TN 570\)/);
    const det = readFileSync(join(out, 'detections.csv'), 'utf8').trim().split('\n');
    expect(det[0]).toBe('row,time,event_time,detector,detector_type,asset,sensor,state,value,severity,trip,evidence');
    expect(det[1]).toMatch(/^400,2014-05-01T06:40:00.000Z,\d+,flow,adaptive,asset,flow,raised,/);
    const tl = readFileSync(join(out, 'timeline.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(tl).toMatchObject([
      { kind: 'alarm', detector: 'flow', start_time: '2014-05-01T06:40:00.000Z', start_row: 400, end_row: 430 },
    ]);
  });
});
