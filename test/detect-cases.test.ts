/**
 * Golden detection cases: test/detect-cases/<name>/ holds
 *   config.yaml     an agent config (the real loader validates it),
 *   input.csv       `t,asset,sensor,value[,quality][,now]`: t in seconds after 2026-01-01T00:00:00Z
 *                   (or an ISO timestamp), `now` the gateway clock at arrival (default: t);
 *                   lines starting with `{` are control messages applied at that point, `#` comments,
 *   expected.jsonl  the events expected, in order: `kind`, `t` (event time, seconds as above) and any
 *                   payload fields (matched as a subset). Every anomaly, action, audit, alarm and
 *                   capture event must be listed (an unexpected one fails the case), and so must
 *                   every aggregate or twin event if the file lists one of that kind; a line
 *                   `{"ignore": ["capture"]}` leaves such kinds unchecked. A string ending in …
 *                   matches as a prefix. A line `{"counters": {...}}` is matched against the
 *                   pipeline counters.
 * Every reading is fed as its own batch; the pipeline is flushed at the end.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../agent/config/load.js';
import { ControlPlane } from '../agent/control/control.js';
import { type ActuatorDriver, bindSensor } from '../agent/driver.js';
import { Interlocks } from '../agent/interlock.js';
import { Pipeline } from '../agent/pipeline.js';
import { makeReading } from '../agent/reading.js';
import { QUALITIES, type Quality, type Reading } from '../agent/types.js';

const ROOT = join(import.meta.dirname, 'detect-cases');
const EPOCH = Date.UTC(2026, 0, 1);
const silent = pino({ level: 'silent' });

/** Kinds compared in every case, listed or not: an unexpected one is a failure. */
const ALWAYS_COMPARED = ['anomaly', 'action', 'audit', 'alarm', 'capture'];

const time = (s: string): number => (/[T:]/.test(s) ? Date.parse(s) : EPOCH + Math.round(Number(s) * 1000));

function matches(actual: unknown, expected: unknown): boolean {
  if (expected === null || typeof expected !== 'object') {
    if (typeof expected === 'number' && typeof actual === 'number')
      return Math.abs(actual - expected) <= 1e-6 * Math.max(1, Math.abs(expected));
    if (typeof expected === 'string' && expected.endsWith('…') && typeof actual === 'string')
      return actual.startsWith(expected.slice(0, -1));
    return Object.is(actual, expected);
  }
  if (Array.isArray(expected))
    return Array.isArray(actual) && actual.length === expected.length && expected.every((e, i) => matches(actual[i], e));
  if (actual === null || typeof actual !== 'object') return false;
  return Object.entries(expected).every(([k, v]) => matches((actual as Record<string, unknown>)[k], v));
}

async function runCase(dir: string) {
  const res = await parseConfig(readFileSync(join(dir, 'config.yaml'), 'utf8'), 'config.yaml');
  if (!res.ok) throw new Error(res.errors.map((e) => `${e.line}:${e.col} ${e.path} ${e.message}`).join('\n'));
  const config = res.config;
  let clock = EPOCH;
  const events: Array<{ kind: string; t: number; [k: string]: unknown }> = [];
  const emit = (ev: { kind: string; eventTime: number; payload: Readonly<Record<string, unknown>> }) =>
    events.push({ ...ev.payload, kind: ev.kind, t: (ev.eventTime - EPOCH) / 1000 });
  const actuator: ActuatorDriver = { init() {}, async start() {}, async stop() {}, execute: async () => ({ ok: true }) };
  const actuators = new Map(config.actuators.map((a) => [a.id, actuator]));
  const interlocks = new Interlocks(config.interlocks, actuators, emit, silent, () => clock);
  const pipeline = new Pipeline(config, interlocks, emit, () => clock);
  const control = new ControlPlane({ config, pipeline, emit, logger: silent, now: () => clock });
  const metric = new Map(config.assets.flatMap((a) => a.sensors.map((s) => [`${a.id}/${s.id}`, s])));
  const lines = readFileSync(join(dir, 'input.csv'), 'utf8').split('\n');
  const header = (lines.shift() ?? '').split(',').map((h) => h.trim());
  const col = (name: string) => header.indexOf(name);
  const replies: unknown[] = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.startsWith('{')) {
      replies.push(control.applyCommand(line, { origin: 'golden' }));
      continue;
    }
    const f = line.split(',').map((x) => x.trim());
    const get = (name: string) => (col(name) >= 0 ? f[col(name)] : undefined) || undefined;
    const asset = get('asset') as string;
    const sensor = get('sensor') as string;
    const t = time(get('t') as string);
    clock = get('now') !== undefined ? time(get('now') as string) : t;
    const quality = (get('quality') ?? 'good') as Quality;
    if (!QUALITIES.includes(quality)) throw new Error(`bad quality in ${line}`);
    const s = metric.get(`${asset}/${sensor}`);
    const bound = s ? bindSensor(s, asset) : undefined;
    const r: Reading = bound
      ? makeReading(bound, Number(get('value')), t, clock, quality)
      : {
          asset,
          sensor,
          metric: s?.metric ?? 'other',
          unit: s?.unit ?? '',
          value: Number(get('value')),
          eventTime: t,
          ingestTime: clock,
          quality,
        };
    pipeline.ingest([r]);
  }
  pipeline.flush();
  return { events, counters: pipeline.counters, replies };
}

type Event = { kind: string; t: number; [k: string]: unknown };

function readExpected(dir: string): Array<Record<string, unknown>> {
  return readFileSync(join(dir, 'expected.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() && !l.trim().startsWith('//'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** What differs between the events (and counters) of a run and the expected file; empty when they agree. */
function problems(events: readonly Event[], counters: unknown, expected: ReadonlyArray<Record<string, unknown>>): string[] {
  const out: string[] = [];
  const expEvents = expected.filter((e) => !('counters' in e) && !('ignore' in e));
  const ignored = new Set(expected.flatMap((e) => (e.ignore as string[] | undefined) ?? []));
  const kinds = new Set([...ALWAYS_COMPARED, ...expEvents.map((e) => e.kind as string)].filter((k) => !ignored.has(k)));
  const got = events.filter((e) => kinds.has(e.kind));
  const show = (xs: unknown[]) => xs.map((x) => JSON.stringify(x)).join('\n');
  if (got.length !== expEvents.length) out.push(`${got.length} events, ${expEvents.length} expected:\n${show(got)}`);
  expEvents.forEach((e, i) => {
    if (!matches(got[i], e)) out.push(`event ${i}: expected ${JSON.stringify(e)}\n got ${JSON.stringify(got[i])}`);
  });
  for (const e of expected.filter((x) => 'counters' in x))
    if (!matches(counters, e.counters)) out.push(`counters ${JSON.stringify(counters)}`);
  return out;
}

describe('golden detection cases', () => {
  for (const name of readdirSync(ROOT).filter((n) => !n.includes('.'))) {
    it(name, async () => {
      const dir = join(ROOT, name);
      const { events, counters } = await runCase(dir);
      expect(problems(events, counters, readExpected(dir))).toEqual([]);
    });
  }

  it('an unexpected extra event fails a case, of any kind the case does not ignore', async () => {
    const dir = join(ROOT, 'zscore');
    const { events, counters } = await runCase(dir);
    const expected = readExpected(dir);
    expect(problems(events, counters, expected)).toEqual([]);
    // The run's "cleared" anomaly is not listed: an extra anomaly.
    const withoutClear = expected.filter((e) => e.state !== 'cleared');
    expect(problems(events, counters, withoutClear).join()).toMatch(/2 events, 1 expected/);
    // An action the case never mentions (e.g. a trip) fails too, as does a capture unless ignored.
    const extraAction = [...events, { kind: 'action', t: 9, type: 'trip' }];
    expect(problems(extraAction, counters, expected)).not.toEqual([]);
    const capture = [...events, { kind: 'capture', t: 9 }];
    expect(
      problems(
        capture,
        counters,
        expected.filter((e) => !('ignore' in e)),
      ),
    ).not.toEqual([]);
    expect(problems(capture, counters, [...expected, { ignore: ['capture'] }])).toEqual([]);
  });
});
