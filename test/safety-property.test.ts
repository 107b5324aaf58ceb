/**
 * Property test (fast-check) of the stop path: random sequences of readings (in range, in the hysteresis
 * band, tripping, past either end of the range, failed), time passing (sensors going silent),
 * acknowledgements, restarts and reloads, driven through the real Interlocks, Pipeline and latch journal
 * (test/helpers/plant.ts). After every step:
 *  - an asset whose tripping condition holds is tripped (never released, never left running);
 *  - no acknowledgement released an asset whose condition held, and no release command was sent for one;
 *  - every trip issued to an actuator is latched again after a restart, and its stop re-asserted.
 * "Holds" is judged by an oracle from the readings alone: the last good reading past the raise limit,
 * the last reading past the range on the watched side, three failed readings in a row, or no reading
 * for longer than silent_after plus one check period.
 *
 * Cases: SAFETY_PROPERTY_RUNS (default 300, seeded; `npm run test:chaos` runs 10,000). A failure prints
 * the seed and the shrunk sequence; rerun with SAFETY_PROPERTY_SEED to reproduce.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AgentConfig } from '../agent/config/schema.js';
import type { Quality } from '../agent/types.js';
import { Plant, plantConfig } from './helpers/plant.js';
import { tempDir } from './helpers/tmp.js';

const RUNS = Number(process.env.SAFETY_PROPERTY_RUNS ?? 300);
const SEED = Number(process.env.SAFETY_PROPERTY_SEED ?? 20261201);

type Asset = 'pump-1' | 'pump-2';
const SENSOR: Record<Asset, string> = { 'pump-1': 'temperature', 'pump-2': 'pressure' };
/** silent_after 5s; the check runs every max(50, 5000/4) ms. */
const SILENT_BY = 5000 + 1250;

type Step =
  | { t: 'read'; asset: Asset; value: number; quality: Quality }
  | { t: 'advance'; ms: number }
  | { t: 'ack'; asset: Asset }
  | { t: 'restart' }
  | { t: 'reload' };

const temperature = fc.oneof(
  fc.double({ min: 20, max: 79, noNaN: true }), // normal
  fc.double({ min: 80.5, max: 94.5, noNaN: true }), // hysteresis band
  fc.double({ min: 95.5, max: 199, noNaN: true }), // raises
  fc.double({ min: 201, max: 1000, noNaN: true }), // past max: the watched side
  fc.double({ min: -300, max: -41, noNaN: true }), // past min: unwatched side (bad)
);
const pressure = fc.oneof(
  fc.double({ min: 4.6, max: 24, noNaN: true }),
  fc.double({ min: 3.85, max: 4.45, noNaN: true }),
  fc.double({ min: 0, max: 3.75, noNaN: true }),
  fc.double({ min: -50, max: -0.01, noNaN: true }), // past min: the watched side
  fc.double({ min: 26, max: 100, noNaN: true }), // past max: unwatched side (bad)
);
const quality = fc.constantFrom<Quality>('good', 'good', 'good', 'good', 'good', 'good', 'comm_error');

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({ t: fc.constant('read' as const), asset: fc.constant('pump-1' as const), value: temperature, quality }),
  },
  {
    weight: 10,
    arbitrary: fc.record({ t: fc.constant('read' as const), asset: fc.constant('pump-2' as const), value: pressure, quality }),
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 8000 }) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('ack' as const), asset: fc.constantFrom<Asset>('pump-1', 'pump-2') }) },
  { weight: 1, arbitrary: fc.constant({ t: 'restart' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'reload' as const }) },
);

interface SensorOracle {
  value: number | undefined;
  quality: Quality | undefined;
  at: number;
  failedRun: number;
}

/** Whether the tripping condition of the asset certainly holds now, from the readings alone. */
function holds(asset: Asset, s: SensorOracle, now: number): string | undefined {
  if (now - s.at > SILENT_BY) return 'silent';
  if (s.failedRun >= 3) return 'three failed readings';
  if (s.value === undefined) return undefined;
  if (asset === 'pump-1') {
    if (s.quality === 'good' && s.value > 95) return 'hot';
    if (s.quality === 'bad' && s.value > 200) return 'past max';
  } else {
    if (s.quality === 'good' && s.value < 3.8) return 'low pressure';
    if (s.quality === 'bad' && s.value < 0) return 'past min';
  }
  return undefined;
}

function runCase(config: AgentConfig, steps: Step[]): void {
  const dir = tempDir('edge-agent-prop-');
  vi.setSystemTime(Date.UTC(2026, 0, 1));
  const p = new Plant(config, dir.path);
  try {
    p.start();
    const oracle: Record<Asset, SensorOracle> = {
      'pump-1': { value: undefined, quality: undefined, at: Date.now(), failedRun: 0 },
      'pump-2': { value: undefined, quality: undefined, at: Date.now(), failedRun: 0 },
    };
    const check = (after: Step) => {
      for (const asset of ['pump-1', 'pump-2'] as const) {
        const why = holds(asset, oracle[asset], Date.now());
        if (why && p.interlocks.state(asset) !== 'tripped')
          throw new Error(`${asset} is running while its tripping condition holds (${why}) after ${JSON.stringify(after)}`);
      }
    };
    for (const s of steps) {
      if (s.t === 'read') {
        const o = oracle[s.asset];
        const released = p.commands.filter((c) => c.phase === 'release').length;
        p.feed(s.asset, SENSOR[s.asset], s.value, s.quality);
        o.at = Date.now();
        const outside = s.asset === 'pump-1' ? s.value > 200 || s.value < -40 : s.value > 25 || s.value < 0;
        o.quality = s.quality === 'good' && outside ? 'bad' : s.quality;
        o.value = s.value;
        o.failedRun = o.quality === 'good' ? 0 : o.failedRun + 1;
        // A deferred ack (pump-2) may release on this reading: only if nothing holds after it.
        if (p.commands.filter((c) => c.phase === 'release').length > released && holds(s.asset, o, Date.now()))
          throw new Error(`${s.asset} released by a reading while its condition holds`);
      } else if (s.t === 'advance') {
        vi.advanceTimersByTime(s.ms);
      } else if (s.t === 'ack') {
        const why = holds(s.asset, oracle[s.asset], Date.now());
        const before = p.commands.filter((c) => c.phase === 'release' && c.asset === s.asset).length;
        const res = p.interlocks.ack(s.asset, 'prop', 'test');
        const after = p.commands.filter((c) => c.phase === 'release' && c.asset === s.asset).length;
        if (why && (after > before || (res.ok && res.state === 'running')))
          throw new Error(`ack released ${s.asset} while its condition holds (${why})`);
      } else {
        const tripped = p.interlocks.tripped();
        p.crash();
        p.start();
        for (const asset of tripped) {
          if (p.interlocks.state(asset) !== 'tripped') throw new Error(`${asset} was tripped, not latched after ${s.t}`);
          if (!p.commands.some((c) => c.life === p.life && c.asset === asset && c.phase === 'reassert'))
            throw new Error(`${asset}: stop not re-asserted after ${s.t}`);
        }
        // A new incarnation has seen no reading yet; its silence clock starts now.
        for (const o of Object.values(oracle))
          Object.assign(o, { value: undefined, quality: undefined, at: Date.now(), failedRun: 0 });
      }
      check(s);
    }
  } finally {
    p.crash();
    dir.remove();
  }
}

describe('stop path invariants under random readings, acks, silence, restarts and reloads', () => {
  let config: AgentConfig;
  beforeAll(async () => {
    config = await plantConfig();
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'setInterval', 'clearInterval', 'clearTimeout'] });
  });
  afterAll(() => {
    vi.useRealTimers();
  });

  it(`holds for ${RUNS} random sequences (seed ${SEED})`, () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => runCase(config, steps)),
      { numRuns: RUNS, seed: SEED },
    );
    expect(RUNS).toBeGreaterThan(0);
  }, 1_800_000);
});
