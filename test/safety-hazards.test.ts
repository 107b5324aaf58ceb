/**
 * One test (or group) per hazard in docs/safety.md, named after it, driving the real Interlocks, Pipeline
 * and latch journal (fake timers; real files). Hazards proven elsewhere name their test in docs/safety.md.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../agent/config/load.js';
import { safetyWarnings } from '../agent/config/semantic.js';
import { LatchJournal, RELEASE_SYNC_MS } from '../agent/latch-journal.js';
import { PLANT_YAML, Plant, plantConfig } from './helpers/plant.js';
import { tempDir } from './helpers/tmp.js';

let dir: ReturnType<typeof tempDir>;
beforeEach(() => {
  vi.useFakeTimers({ now: Date.UTC(2026, 0, 1), toFake: ['Date', 'setTimeout', 'setInterval', 'clearInterval', 'clearTimeout'] });
  dir = tempDir();
});
afterEach(() => {
  vi.useRealTimers();
  dir.remove();
});

async function plant(yaml = PLANT_YAML): Promise<Plant> {
  const p = new Plant(await plantConfig(yaml), dir.path);
  p.start();
  return p;
}

describe('hazard: an acknowledgement releases a machine whose fault is still present', () => {
  it('refuses the ack while the tripping condition holds, names it, audits it; 600 more hot readings keep it tripped', async () => {
    const p = await plant();
    p.feed('pump-1', 'temperature', 150);
    expect(p.interlocks.state('pump-1')).toBe('tripped');
    const res = p.interlocks.ack('pump-1', 'alice', 'api');
    expect(res).toMatchObject({ ok: false, reason: 'raised', raised: [{ detector: 'overheat', sensor: 'temperature' }] });
    expect(p.ofType('ack_refused')[0]).toMatchObject({ asset: 'pump-1', by: 'alice', via: 'api' });
    for (let i = 0; i < 600; i++) p.feed('pump-1', 'temperature', 150 + (i % 10));
    expect(p.interlocks.state('pump-1')).toBe('tripped');
    expect(p.commands.filter((c) => c.phase === 'release')).toHaveLength(0);
    // Once the cause has cleared, the same person can reset it.
    p.feed('pump-1', 'temperature', 60);
    expect(p.interlocks.ack('pump-1', 'alice', 'api')).toEqual({ ok: true, state: 'running' });
    expect(p.commands.filter((c) => c.phase === 'release')).toHaveLength(1);
  });

  it('reset when_clear: the ack is recorded and the release happens by itself once every condition cleared', async () => {
    const p = await plant();
    p.feed('pump-2', 'pressure', 2);
    expect(p.interlocks.state('pump-2')).toBe('tripped');
    expect(p.interlocks.ack('pump-2', 'bob', 'mqtt')).toMatchObject({ ok: true, state: 'tripped', deferred: true });
    p.feed('pump-2', 'pressure', 4.2); // between clear and raise: still raised (hysteresis)
    expect(p.interlocks.state('pump-2')).toBe('tripped');
    p.feed('pump-2', 'pressure', 5);
    expect(p.interlocks.state('pump-2')).toBe('running');
    expect(p.ofType('ack').at(-1)).toMatchObject({ asset: 'pump-2', by: 'bob', deferred: true });
  });

  it('after a release, a raised tripping condition trips again at once', async () => {
    const p = await plant();
    p.feed('pump-1', 'temperature', 150);
    p.feed('pump-1', 'temperature', 60);
    p.interlocks.ack('pump-1', 'alice');
    p.feed('pump-1', 'temperature', 150);
    expect(p.interlocks.state('pump-1')).toBe('tripped');
    expect(p.commands.filter((c) => c.phase === 'trip')).toHaveLength(2);
  });

  it('a cooldown suppresses a trip only while it lasts: the condition still raised at its end trips', async () => {
    const p = await plant(
      PLANT_YAML.replace('reassert_every: 1s\n    fail_safe', 'cooldown: 10s\n    reassert_every: 1s\n    fail_safe'),
    );
    p.feed('pump-1', 'temperature', 150);
    p.feed('pump-1', 'temperature', 60);
    p.interlocks.ack('pump-1', 'alice');
    p.feed('pump-1', 'temperature', 150);
    expect(p.interlocks.state('pump-1')).toBe('running');
    expect(p.ofType('suppressed')).toHaveLength(1);
    vi.advanceTimersByTime(10_001);
    p.feed('pump-1', 'temperature', 150);
    expect(p.interlocks.state('pump-1')).toBe('tripped');
  });
});

describe('hazard: a reading past the sensor range never trips', () => {
  it('100 readings at 250 degC with max 200 trip the overheat interlock at the first one', async () => {
    const p = await plant();
    p.feed('pump-1', 'temperature', 250);
    expect(p.interlocks.state('pump-1')).toBe('tripped');
    expect(p.ofType('trip')[0]).toMatchObject({ detector: 'range:above_max', sensor: 'temperature' });
    for (let i = 0; i < 99; i++) p.feed('pump-1', 'temperature', 250);
    expect(p.interlocks.ack('pump-1', 'alice')).toMatchObject({ ok: false });
  });

  it('a pressure below 0 bar trips the low-pressure interlock; a reading past the other side does not', async () => {
    const p = await plant();
    p.feed('pump-2', 'pressure', 30); // above max: the low-pressure detector does not watch that side
    expect(p.interlocks.state('pump-2')).toBe('running');
    p.feed('pump-2', 'pressure', -1);
    expect(p.interlocks.state('pump-2')).toBe('tripped');
    expect(p.ofType('trip')[0]).toMatchObject({ detector: 'range:below_min' });
  });

  it('range_trip: false only alarms (after bad_readings), and validate warns about it', async () => {
    const yaml = PLANT_YAML.replace('min: -40, max: 200 }', 'min: -40, max: 200, range_trip: false }').replace(
      /fail_safe: \{ silent_after: 5s \}/,
      'fail_safe: { policy: alarm, silent_after: 5s }',
    );
    const p = await plant(yaml);
    for (let i = 0; i < 5; i++) p.feed('pump-1', 'temperature', 250);
    expect(p.interlocks.state('pump-1')).toBe('running');
    expect(p.events.some((e) => e.kind === 'alarm')).toBe(true);
    const warnings = safetyWarnings(p.config).map((w) => w.message);
    expect(warnings).toEqual(
      expect.arrayContaining([
        expect.stringContaining('"overheat": sensor "temperature" has range_trip: false'),
        expect.stringContaining('fail_safe.policy "alarm" only raises an alarm'),
      ]),
    );
  });

  it('the shipped agent.config.yaml has no safety warnings', async () => {
    const res = await parseConfig(readFileSync('agent.config.yaml', 'utf8'), 'agent.config.yaml');
    if (!res.ok) throw new Error(JSON.stringify(res.errors));
    expect(safetyWarnings(res.config)).toEqual([]);
  });
});

describe('hazard: a watched sensor goes silent or bad', () => {
  it('fail_safe defaults to stop: silence trips, and the ack is refused until readings return', async () => {
    const p = await plant();
    p.feed('pump-1', 'temperature', 50);
    p.feed('pump-2', 'pressure', 6);
    vi.advanceTimersByTime(7000);
    expect(p.interlocks.state('pump-1')).toBe('tripped');
    expect(p.ofType('trip')[0]).toMatchObject({ detector: 'fail_safe:silent' });
    expect(p.interlocks.ack('pump-1', 'alice')).toMatchObject({ ok: false, raised: [{ detector: 'fail_safe:silent' }] });
    p.feed('pump-1', 'temperature', 50);
    expect(p.interlocks.ack('pump-1', 'alice')).toMatchObject({ ok: true });
  });

  it('three bad readings in a row trip', async () => {
    const p = await plant();
    for (let i = 0; i < 3; i++) p.feed('pump-1', 'temperature', 50, 'comm_error');
    expect(p.interlocks.state('pump-1')).toBe('tripped');
    expect(p.ofType('trip')[0]).toMatchObject({ detector: 'fail_safe:bad' });
  });
});

describe('hazard: a stuck value', () => {
  it('a tripping flatline detector stops the machine when the value does not move', async () => {
    const yaml = PLANT_YAML.replace(
      'detectors:',
      'detectors:\n  - { id: stuck, type: flatline, asset: pump-1, sensor: temperature, duration: 10s, trip: true }',
    );
    const p = await plant(yaml);
    const t0 = Date.now();
    for (let i = 0; i <= 11; i++) {
      vi.setSystemTime(t0 + i * 1000);
      p.feed('pump-1', 'temperature', 42.5);
    }
    expect(p.interlocks.state('pump-1')).toBe('tripped');
    expect(p.ofType('trip')[0]).toMatchObject({ detector: 'stuck' });
  });
});

describe('hazard: a crash right after a trip forgets it', () => {
  it('the trip is in the journal, written before the trip event is emitted, and re-latched and re-asserted at restart', async () => {
    const p = await plant();
    const journalPath = join(dir.path, 'agent.db.latches');
    let journalWhenEmitted = '';
    const push = p.events.push.bind(p.events);
    p.events.push = (...e) => {
      if (!journalWhenEmitted && (e[0]?.payload as { type?: string } | undefined)?.type === 'trip')
        journalWhenEmitted = readFileSync(journalPath, 'utf8');
      return push(...e);
    };
    p.feed('pump-1', 'temperature', 150);
    expect(journalWhenEmitted).toContain('"op":"trip"');
    p.crash();
    p.start();
    expect(p.interlocks.state('pump-1')).toBe('tripped');
    expect(p.commands.filter((c) => c.life === 1 && c.phase === 'reassert').map((c) => c.asset)).toEqual(['pump-1']);
    // The restored latch knows its cause, and an ack before any new reading is refused (nothing known yet).
    expect(p.interlocks.ack('pump-1', 'alice')).toMatchObject({
      ok: false,
      raised: [{ detector: 'fail_safe:no_reading', sensor: 'temperature' }],
    });
  });

  it('a torn last line (a crash mid-write) is ignored; a release in the journal is not re-latched', () => {
    const path = join(dir.path, 'j.latches');
    const trip = (asset: string) =>
      `${JSON.stringify({ op: 'trip', asset, detector: 'd', sensor: 's', severity: 'critical', value: 1, reading_event_time: 1, decided_at: 2, commands: [] })}\n`;
    writeFileSync(path, trip('a') + trip('b'));
    appendFileSync(path, `${JSON.stringify({ op: 'release', asset: 'b', by: 'x', at: 3 })}\n{"op":"trip","asset":"c","det`);
    const j = new LatchJournal(path);
    const { latched, released } = j.open();
    expect([...latched.keys()]).toEqual(['a']);
    expect([...released.keys()]).toEqual(['b']);
    j.close();
    // Compacted: one line per latched asset.
    expect(readFileSync(path, 'utf8').trim().split('\n')).toHaveLength(1);
    // A first start creates the directory, as the store does.
    const fresh = new LatchJournal(join(dir.path, 'state', 'new', 'agent.db.latches'));
    expect(fresh.open().latched.size).toBe(0);
    fresh.close();
  });

  it('a journal path that is not a regular file (a pipe, a device) is refused, and left as it was', () => {
    const path = join(dir.path, 'pipe.latches');
    execFileSync('mkfifo', [path]);
    const j = new LatchJournal(path);
    expect(() => j.open()).toThrow(/is not a regular file/);
    expect(statSync(path).isFIFO()).toBe(true);
  });

  it('a trip is flushed at once; a release is written at once and flushed within RELEASE_SYNC_MS or with the next trip', async () => {
    const path = join(dir.path, 'flush.latches');
    const j = new LatchJournal(path);
    j.open();
    const rec = (asset: string) => ({
      asset,
      detector: 'd',
      sensor: 's',
      severity: 'critical',
      value: 1,
      reading_event_time: 1,
      decided_at: 2,
      commands: [],
    });
    // The device flushes run on the real thread pool: wait (up to 1 s of real time) for their callbacks.
    const synced = async (n: number) => {
      const until = performance.now() + 1_000;
      while (j.stats.syncs < n && performance.now() < until) await new Promise((r) => setImmediate(r));
      return j.stats.syncs;
    };
    j.tripped(rec('a'));
    expect(await synced(1)).toBe(1);
    j.released('a', 'alice', 3);
    // Written (a process crash keeps it), not flushed yet.
    expect(readFileSync(path, 'utf8')).toContain('"op":"release"');
    expect(await synced(2)).toBe(1);
    vi.advanceTimersByTime(RELEASE_SYNC_MS);
    expect(await synced(2)).toBe(2);
    // A trip's flush covers a release written before it: one flush for both, no deferred one left.
    j.released('a', 'bob', 4);
    j.tripped(rec('b'));
    expect(await synced(3)).toBe(3);
    vi.advanceTimersByTime(RELEASE_SYNC_MS);
    expect(await synced(4)).toBe(3);
    // durable() flushes a waiting release at once.
    j.released('b', 'carol', 5);
    await j.durable();
    expect(j.stats.syncs).toBe(4);
    expect(j.stats.errors).toBe(0);
    j.close();
    const reopened = new LatchJournal(path);
    const { latched, released } = reopened.open();
    expect(latched.size).toBe(0);
    expect([...released.keys()].sort()).toEqual(['a', 'b']);
    reopened.close();
  });
});

describe('hazard: a restart while tripped', () => {
  it('a released asset stays released after a restart; a tripped one stays tripped', async () => {
    const p = await plant();
    p.feed('pump-1', 'temperature', 150);
    p.feed('pump-2', 'pressure', 2);
    p.feed('pump-1', 'temperature', 60);
    p.interlocks.ack('pump-1', 'alice');
    p.crash();
    p.start();
    expect(p.interlocks.tripped()).toEqual(['pump-2']);
  });
});

describe('hazard: an actuator command fails or its read-back disagrees', () => {
  it('the failure is recorded per command, the latch holds and the stop is re-asserted until it takes', async () => {
    const p = await plant();
    p.result = () =>
      Promise.resolve({
        ok: false,
        ack: { read_back: [false], verified: false },
        error: 'read-back differs from the value written',
      });
    p.feed('pump-1', 'temperature', 150);
    await vi.advanceTimersByTimeAsync(3000);
    const results = p.ofType('command_result');
    expect(results.map((r) => [r.phase, r.ok])).toEqual([
      ['trip', false],
      ['reassert', false],
      ['reassert', false],
      ['reassert', false],
    ]);
    expect(results[0]).toMatchObject({ error: 'read-back differs from the value written', ack: { verified: false } });
    expect(p.interlocks.state('pump-1')).toBe('tripped');
  });
});

describe('hazard: a clock jump', () => {
  it('the gateway clock stepping back an hour does not blind the silence check: readings dropped as late trip by silence', async () => {
    const p = await plant();
    p.feed('pump-1', 'temperature', 50);
    p.feed('pump-2', 'pressure', 6);
    vi.setSystemTime(Date.now() - 3_600_000);
    // Readings stamped by the stepped-back clock are older than the watermark: dropped as late, unseen.
    for (let i = 0; i < 8; i++) {
      vi.advanceTimersByTime(1000);
      p.feed('pump-1', 'temperature', 50);
    }
    expect(p.pipeline.counters.late).toBeGreaterThan(0);
    expect(p.interlocks.state('pump-1')).toBe('tripped');
    expect(p.ofType('trip')[0]).toMatchObject({ detector: 'fail_safe:silent' });
  });

  it('a reading stamped far in the future is rejected: it cannot trip, nor push the watermark ahead', async () => {
    const p = await plant();
    p.feed('pump-1', 'temperature', 150, 'good', Date.now() + 3_600_000);
    expect(p.pipeline.counters.future).toBe(1);
    expect(p.interlocks.state('pump-1')).toBe('running');
    p.feed('pump-1', 'temperature', 150);
    expect(p.interlocks.state('pump-1')).toBe('tripped');
  });
});
