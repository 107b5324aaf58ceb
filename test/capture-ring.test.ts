/**
 * The capture ring grows on demand: its capacity follows the asset's rate × horizon, not `max_readings`,
 * and what a capture contains is the same as with a ring pre-allocated at the maximum.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CaptureConfig } from '../agent/config/schema.js';
import { AssetCapture } from '../agent/detect/capture.js';
import type { AgentEvent, Anomaly, Reading } from '../agent/types.js';

const SENSORS = ['temperature', 'vibration'];

function reading(t: number, value: number): Reading {
  return {
    asset: 'pump-1',
    sensor: 'temperature',
    metric: 'temperature',
    unit: 'C',
    value,
    quality: 'good',
    eventTime: t,
    ingestTime: t,
  };
}

function anomaly(t: number): Anomaly {
  return {
    detector: 'hot',
    detectorType: 'threshold',
    asset: 'pump-1',
    sensor: 'temperature',
    severity: 'critical',
    state: 'raised',
    eventTime: t,
    value: 1,
    trip: true,
    evidence: {},
  };
}

type Step = { kind: 'reading'; t: number; v: number; sensor: number } | { kind: 'trigger'; t: number };

/** Random steps: readings `dt` ms apart (one trigger per `weight` readings, up to 1.5 s back). */
function stepsArb(weight: number, dt: fc.Arbitrary<number>, v: fc.Arbitrary<number>) {
  return fc.oneof(
    {
      weight,
      arbitrary: fc.record({ kind: fc.constant('reading' as const), dt, v, sensor: fc.integer({ min: 0, max: 1 }) }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('trigger' as const), back: fc.integer({ min: 0, max: 1_500 }) }) },
  );
}

/** The drawn steps on the clock from `t0`. */
function toSteps(
  raw: ReadonlyArray<{ kind: 'reading'; dt: number; v: number; sensor: number } | { kind: 'trigger'; back: number }>,
  t0: number,
): Step[] {
  let t = t0;
  return raw.map((s) => {
    if (s.kind === 'reading') {
      t += s.dt;
      return { kind: 'reading', t, v: s.v, sensor: s.sensor };
    }
    return { kind: 'trigger', t: t - s.back };
  });
}

/** Replays the steps into a capture and returns the emitted capture payloads. */
function run(cfg: CaptureConfig, steps: readonly Step[], slack: number): { events: AgentEvent[]; capacity: number } {
  const events: AgentEvent[] = [];
  const c = new AssetCapture('pump-1', SENSORS, cfg, (ev) => events.push(ev), slack);
  for (const s of steps) {
    if (s.kind === 'reading') c.record(s.sensor, reading(s.t, s.v));
    else c.trigger(anomaly(s.t));
  }
  c.close();
  return { events, capacity: c.capacity };
}

/** What a capture must contain: every recorded reading in [from, until], in arrival order. */
function expected(cfg: CaptureConfig, steps: readonly Step[]): number[][] {
  const out: number[][] = [];
  let open: { from: number; until: number; t: number[] } | undefined;
  const seen: Array<{ t: number }> = [];
  for (const s of steps) {
    if (s.kind === 'reading') {
      if (open && s.t > open.until) {
        out.push(open.t);
        open = undefined;
      }
      seen.push({ t: s.t });
      if (open && s.t >= open.from) open.t.push(s.t);
    } else if (!open) {
      const from = s.t - cfg.before;
      const until = s.t + cfg.after;
      open = { from, until, t: seen.filter((r) => r.t >= from && r.t <= until).map((r) => r.t) };
    }
  }
  if (open) out.push(open.t);
  return out;
}

describe('capture ring grown on demand', () => {
  it('sizes itself from the rate and the horizon, not from max_readings', () => {
    const cfg: CaptureConfig = { before: 10_000, after: 5_000, max_readings: 20_000 };
    const steps: Step[] = [];
    for (let i = 0; i < 1000; i++) steps.push({ kind: 'reading', t: i * 100, v: i, sensor: 0 }); // 10 Hz, 100 s
    const { capacity } = run(cfg, steps, 0);
    // 10 s of history at 10 Hz is 100 readings: the ring holds them, a power of two above.
    expect(capacity).toBe(128);

    const fast: Step[] = [];
    for (let i = 0; i < 20_000; i++) fast.push({ kind: 'reading', t: i, v: i, sensor: i % 2 }); // 1 kHz, 20 s
    expect(run(cfg, fast, 0).capacity).toBe(16_384);
    // Never past the maximum, whatever the rate.
    expect(run({ ...cfg, max_readings: 5_000 }, fast, 0).capacity).toBe(5_000);
  });

  it('a capture holds the readings before its trigger, late triggers included', () => {
    const cfg: CaptureConfig = { before: 2_000, after: 1_000, max_readings: 20_000 };
    const steps: Step[] = [];
    for (let i = 0; i < 300; i++) steps.push({ kind: 'reading', t: i * 50, v: i, sensor: 0 });
    // A window anomaly stamped 3 s behind the newest reading (its window end; lateness 3 s).
    steps.push({ kind: 'trigger', t: 299 * 50 - 3_000 });
    for (let i = 300; i < 400; i++) steps.push({ kind: 'reading', t: i * 50, v: i, sensor: 0 });
    const { events } = run(cfg, steps, 3_000);
    expect(events).toHaveLength(1);
    const payload = events[0]?.payload as { readings: { t: number[] } };
    expect(payload.readings.t).toEqual(expected(cfg, steps)[0]);
    expect(payload.readings.t[0]).toBe(299 * 50 - 3_000 - 2_000);
  });

  it('a full ring at max_readings gives what copying at the trigger gave, out-of-order readings included (property)', () => {
    // The readings of an open capture stay in the ring and are read out when it closes; a ring that
    // cannot grow copies them out before it overwrites one. Reference: the earlier way, which copied
    // the ring at the trigger and then every reading in range as it arrived.
    const reference = (max: number, cfg: CaptureConfig, steps: readonly Step[]): number[][][] => {
      const ring: number[][] = [];
      const out: number[][][] = [];
      let open: { from: number; until: number; got: number[][] } | undefined;
      for (const s of steps) {
        if (s.kind === 'reading') {
          ring.push([s.t, s.v, s.sensor]);
          if (ring.length > max) ring.shift();
          if (open) {
            if (s.t > open.until) {
              out.push(open.got);
              open = undefined;
            } else if (s.t >= open.from) open.got.push([s.t, s.v, s.sensor]);
          }
        } else if (!open) {
          const from = s.t - cfg.before;
          const until = s.t + cfg.after;
          open = { from, until, got: ring.filter((r) => (r[0] as number) >= from && (r[0] as number) <= until) };
        }
      }
      if (open) out.push(open.got);
      return out;
    };
    const step = stepsArb(12, fc.integer({ min: -300, max: 400 }), fc.integer({ min: -1000, max: 1000 }));
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 400 }),
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 0, max: 3_000 }),
        fc.integer({ min: 0, max: 2_000 }),
        (raw, max, before, after) => {
          const cfg: CaptureConfig = { before, after, max_readings: max };
          const steps = toSteps(raw, 10_000);
          const { events } = run(cfg, steps, 1_500);
          const got = events.map((e) => {
            const r = (e.payload as { readings: { t: number[]; value: number[]; sensor: string[] } }).readings;
            return r.t.map((x, i) => [x, r.value[i] as number, SENSORS.indexOf(r.sensor[i] as string)]);
          });
          expect(got).toEqual(reference(max, cfg, steps));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('emits the same captures as a ring pre-allocated at the maximum (property)', () => {
    const step = stepsArb(20, fc.integer({ min: 0, max: 400 }), fc.double({ noNaN: true }));
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 600 }),
        fc.integer({ min: 0, max: 3_000 }),
        fc.integer({ min: 0, max: 2_000 }),
        (raw, before, after) => {
          const cfg: CaptureConfig = { before, after, max_readings: 1_000_000 };
          const steps = toSteps(raw, 0);
          const { events } = run(cfg, steps, 1_500);
          const got = events.map((e) => (e.payload as { readings: { t: number[] } }).readings.t);
          expect(got).toEqual(expected(cfg, steps));
        },
      ),
      { numRuns: 300 },
    );
  });
});
