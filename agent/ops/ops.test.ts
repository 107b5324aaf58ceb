import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { tokenMatches } from './api.js';
import { Liveness } from './liveness.js';
import { parseNotifySocket, watchdogTimeoutMs } from './sd-notify.js';
import { resolveToken } from './service.js';
import { TwinTracker } from './twin.js';

const silent = pino({ level: 'silent' });

describe('sd_notify environment', () => {
  it('parses filesystem and abstract NOTIFY_SOCKET values and ignores the rest', () => {
    expect(parseNotifySocket('/run/systemd/notify')).toEqual({ kind: 'path', path: '/run/systemd/notify' });
    expect(parseNotifySocket('@/org/freedesktop/systemd1/notify')).toEqual({
      kind: 'abstract',
      name: '/org/freedesktop/systemd1/notify',
    });
    expect(parseNotifySocket('relative.sock')).toBeUndefined();
    expect(parseNotifySocket('@')).toBeUndefined();
    expect(parseNotifySocket(undefined)).toBeUndefined();
  });

  it('reads WATCHDOG_USEC only when WATCHDOG_PID is absent or ours', () => {
    expect(watchdogTimeoutMs({ WATCHDOG_USEC: '20000000' }, 42)).toBe(20_000);
    expect(watchdogTimeoutMs({ WATCHDOG_USEC: '20000000', WATCHDOG_PID: '42' }, 42)).toBe(20_000);
    expect(watchdogTimeoutMs({ WATCHDOG_USEC: '20000000', WATCHDOG_PID: '7' }, 42)).toBeUndefined();
    expect(watchdogTimeoutMs({ WATCHDOG_USEC: 'x' }, 42)).toBeUndefined();
    expect(watchdogTimeoutMs({}, 42)).toBeUndefined();
  });
});

describe('liveness', () => {
  it('fails on a stalled loop or a store writer without progress, and recovers', () => {
    let now = 0;
    let store = { backlog: 0, persisted: 0 };
    const l = new Liveness({
      intervalMs: 1000,
      maxLagMs: 500,
      storeStallMs: 3000,
      store: () => store,
      logger: silent,
      now: () => now,
    });
    expect(l.check(10).ok).toBe(true);
    expect(l.check(900)).toMatchObject({ ok: false, reasons: [expect.stringContaining('event loop stalled 900 ms')] });
    expect(l.check(10).ok).toBe(true);
    store = { backlog: 50, persisted: 10 };
    for (now = 1000; now <= 3000; now += 1000) expect(l.check(0).ok).toBe(true);
    now = 5000;
    expect(l.check(0).reasons[0]).toContain('store writer made no progress');
    store = { backlog: 50, persisted: 60 };
    expect(l.check(0).ok).toBe(true);
  });
});

describe('API token', () => {
  it('matches only "Bearer <token>"', () => {
    expect(tokenMatches('Bearer abc', 'abc')).toBe(true);
    expect(tokenMatches('bearer abc', 'abc')).toBe(true);
    expect(tokenMatches('Bearer abcd', 'abc')).toBe(false);
    expect(tokenMatches('abc', 'abc')).toBe(false);
    expect(tokenMatches(undefined, 'abc')).toBe(false);
  });

  it('resolves config, then token_file, then the systemd credential', () => {
    expect(resolveToken({ enabled: true, listen: 'x:1', token: ' t ' }, {})).toMatchObject({ token: 't', source: 'config' });
    expect(resolveToken({ enabled: true, listen: 'x:1', token: '' }, {})).toMatchObject({ token: undefined, source: 'none' });
    expect(resolveToken({ enabled: true, listen: 'x:1', token_file: '/nonexistent/t' }, {}).error).toContain('cannot read');
    expect(resolveToken({ enabled: true, listen: 'x:1' }, { CREDENTIALS_DIRECTORY: '/nonexistent' })).toMatchObject({
      source: 'none',
    });
  });
});

describe('twin', () => {
  const config = {
    assets: [{ id: 'p', sensors: [{ id: 't', metric: 'temperature' as const, unit: 'degC', source: 's' }] }],
    detectors: [
      {
        id: 'hot',
        type: 'threshold' as const,
        asset: 'p',
        sensor: 't',
        direction: 'above' as const,
        setpoint: 90,
        delta_up: 5,
        delta_down: 10,
        severity: 'critical' as const,
        trip: true,
      },
    ],
    twin: { interval: 60_000, history: 30_000 },
  };

  it('keeps the last 300 series points at the configured resolution, its ring grown on demand', () => {
    const twin = new TwinTracker(config, { emit: () => {}, isTripped: () => false, now: () => 1 });
    // history 30 s / 300 points → one point per 100 ms; readings every 50 ms, so every other one is kept.
    const feed = (from: number, to: number) => {
      for (let i = from; i < to; i++)
        twin.onReadings([
          {
            asset: 'p',
            sensor: 't',
            metric: 'temperature',
            value: i,
            unit: 'degC',
            eventTime: (i + 1) * 50,
            ingestTime: (i + 1) * 50,
            quality: 'good',
          },
        ]);
    };
    feed(0, 40);
    expect(twin.series()[0]?.sensors.t?.map(([, v]) => v)).toEqual(Array.from({ length: 20 }, (_, k) => 2 * k));
    feed(40, 1000);
    const pts = twin.series()[0]?.sensors.t ?? [];
    expect(pts).toHaveLength(300);
    expect(pts.map(([, v]) => v)).toEqual(Array.from({ length: 300 }, (_, k) => 400 + 2 * k));
    expect(pts.every(([t, v]) => t === (v + 1) * 50)).toBe(true);
  });

  it('spreads the periodic twin writes over the interval instead of writing every asset at once', () => {
    vi.useFakeTimers();
    try {
      const assets = Array.from({ length: 10 }, (_, i) => ({
        id: `a${i}`,
        sensors: [{ id: 't', metric: 'temperature' as const, unit: 'degC', source: 's' }],
      }));
      const written: string[] = [];
      const twin = new TwinTracker(
        { ...config, assets, detectors: [] },
        { emit: (e) => written.push(e.key), isTripped: () => false, now: () => 1 },
      );
      twin.start(60_000);
      expect(written).toHaveLength(10); // every asset at start
      written.length = 0;
      let most = 0;
      for (let s = 0; s < 60; s++) {
        const before = written.length;
        vi.advanceTimersByTime(1_000);
        most = Math.max(most, written.length - before);
      }
      expect([...written].sort()).toEqual(assets.map((a) => a.id).sort()); // each once per interval
      expect(most).toBe(1); // never all in one tick
      twin.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('drops series markers older than the series history', () => {
    const twin = new TwinTracker(config, { emit: () => {}, isTripped: () => false, now: () => 1 });
    const marker = (t: number, state: string) =>
      twin.onEvent({
        kind: 'anomaly',
        key: 'p',
        eventTime: t,
        payload: { detector: 'hot', sensor: 't', severity: 'critical', state, value: 99 },
      });
    marker(1_000, 'raised');
    marker(2_000, 'cleared');
    marker(20_000, 'raised');
    expect(twin.series()[0]?.markers.map((m) => m.t)).toEqual([1_000, 2_000, 20_000]);
    marker(40_000, 'cleared'); // history is 30 s: the two first are off the chart
    expect(twin.series()[0]?.markers.map((m) => m.t)).toEqual([20_000, 40_000]);
  });

  it('derives limits, state, health and writes twin events on change', async () => {
    let tripped = false;
    const events: unknown[] = [];
    const twin = new TwinTracker(config, { emit: (e) => events.push(e), isTripped: () => tripped, now: () => 1 });
    expect(twin.snapshot()[0]?.sensors[0]?.limits).toEqual([
      {
        detector: 'hot',
        type: 'threshold',
        direction: 'above',
        raise: 95,
        clear: 80,
        severity: 'critical',
        trip: true,
        origin: 'file',
        settings: {},
      },
    ]);
    twin.onReadings([
      {
        asset: 'p',
        sensor: 't',
        metric: 'temperature',
        value: 99,
        unit: 'degC',
        eventTime: 1000,
        ingestTime: 1000,
        quality: 'good',
      },
    ]);
    twin.onEvent({
      kind: 'anomaly',
      key: 'p',
      eventTime: 1000,
      payload: { detector: 'hot', sensor: 't', severity: 'critical', state: 'raised', value: 99, trip: true },
    });
    tripped = true;
    twin.onEvent({ kind: 'action', key: 'p', eventTime: 1000, payload: { type: 'trip', detector: 'hot' } });
    await new Promise((r) => setImmediate(r));
    expect(events).toHaveLength(1);
    expect(twin.snapshot()[0]).toMatchObject({ state: 'tripped', health: 20, trip: { detector: 'hot', at: 1000 } });
    tripped = false;
    twin.onEvent({ kind: 'audit', key: 'p', eventTime: 2000, payload: { type: 'ack', by: 'ann' } });
    await new Promise((r) => setImmediate(r));
    expect(twin.snapshot()[0]).toMatchObject({ state: 'acknowledged', ack: { by: 'ann', at: 2000 }, health: 60 });
    twin.onEvent({
      kind: 'anomaly',
      key: 'p',
      eventTime: 3000,
      payload: { detector: 'hot', sensor: 't', severity: 'critical', state: 'cleared', value: 70 },
    });
    await new Promise((r) => setImmediate(r));
    expect(twin.snapshot()[0]).toMatchObject({ state: 'running', health: 100, active_anomalies: [] });
    expect(events).toHaveLength(3);
    expect(twin.series()[0]?.sensors.t).toEqual([[1000, 99]]);
    expect(twin.series()[0]?.markers.map((m) => m.state)).toEqual(['raised', 'cleared']);
  });
});

describe('config loaded in a worker thread (issue 20: its parse garbage leaves with the worker)', () => {
  it('gives the same config, and the same errors with their lines, as loading in this thread', async () => {
    const { loadConfigFile } = await import('../config/load.js');
    const { loadConfigIsolated } = await import('./load-config.js');
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const good = new URL('../../agent.config.yaml', import.meta.url).pathname;
    const env = { HOME: '/nonexistent' };
    const strict = { inThreadIfWorkerFails: false };
    const inWorker = await loadConfigIsolated(good, env, strict);
    expect(inWorker.ok).toBe(true);
    expect(inWorker).toEqual(await loadConfigFile(good, env));

    const dir = mkdtempSync(join(tmpdir(), 'cfg-worker-'));
    try {
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, 'gateway: { id: g }\nstore: { path: x.db, synchronus: FULL }\nassets: []\n');
      const res = await loadConfigIsolated(bad, env, strict);
      expect(res.ok).toBe(false);
      expect(res).toEqual(await loadConfigFile(bad, env));
      if (!res.ok) expect(res.errors.some((e) => e.line === 2 && e.message === 'unknown key')).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
