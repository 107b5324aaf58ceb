/**
 * Fail-safe figures (docs/safety.md): what the latch journal costs the stop path and how soon a trip is
 * durable. In one process and one run, the same pipeline trips pump-0 with the journal off and on, in
 * alternating rounds (on a store directory of this machine's disk, not tmpfs):
 *  - reading → stop command (actuator `execute()` called): journal off vs on. The journal is written
 *    after the commands left, so the two must match;
 *  - reading → ingest returned: the journal record is written (write(2), page cache) within it, so a
 *    crash of the process after this point keeps the trip;
 *  - stop command → trip durable: fdatasync(2) of the journal returned on the libuv pool (survives power
 *    loss on a disk that honours flushes);
 *  - for comparison, fdatasync called synchronously on the main thread: what the next reading would wait
 *    if the journal flushed in the hot path instead.
 */
import { closeSync, fdatasyncSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../agent/config/load.js';
import { type BoundSensor, bindSensor } from '../../agent/driver.js';
import { Interlocks } from '../../agent/interlock.js';
import { LatchJournal } from '../../agent/latch-journal.js';
import { Pipeline } from '../../agent/pipeline.js';
import { makeReading } from '../../agent/reading.js';
import type { Reading } from '../../agent/types.js';
import { timingActuator } from './trip.js';
import { type BenchRow, type BenchSection, latencyRows } from './types.js';

const silent = pino({ level: 'silent' });
const SECTION = 'failsafe';

async function config() {
  const lines = ['sources: [{ id: sim, type: simulator }]', 'aggregation: { window: 1s }', 'assets:'];
  for (let a = 0; a < 10; a++) {
    lines.push(`  - id: pump-${a}`, '    sensors:');
    for (const m of ['temperature', 'pressure', 'vibration'])
      lines.push(`      - { id: ${m}, metric: ${m}, source: sim, min: -40, max: 500 }`);
  }
  lines.push(
    'detectors:',
    '  - { id: hot, type: threshold, asset: pump-0, sensor: temperature, setpoint: 150, delta_down: 10, trip: true, severity: critical }',
    'actuators: [{ id: stop, type: log }]',
    'interlocks: [{ asset: pump-0, reassert_every: 0, actions: [{ actuator: stop, command: stop }] }]',
  );
  const res = await parseConfig(lines.join('\n'), 'bench.yaml');
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  return res.config;
}

export const failsafe: BenchSection = {
  name: 'failsafe',
  async run() {
    const cfg = await config();
    // data/ is on the disk the store would use; /tmp may be tmpfs, where fdatasync costs nothing.
    const dir = join('data', `bench-failsafe-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    const sensors: BoundSensor[] = cfg.assets.flatMap((a) => a.sensors.map((s) => bindSensor(s, a.id)));
    const hot = sensors[0] as BoundSensor;
    const background = sensors.slice(1);
    const stopOff: number[] = [];
    const stopOn: number[] = [];
    const written: number[] = [];
    const durable: number[] = [];
    try {
      const rig = (journal: LatchJournal | undefined) => {
        const { actuator, calledAt } = timingActuator();
        const il = new Interlocks(cfg.interlocks, new Map([['stop', actuator]]), () => {}, silent, Date.now, cfg.detectors, {
          ...(journal ? { journal } : {}),
        });
        const p = new Pipeline(cfg, il, () => {});
        il.start();
        return { il, p, calledAt };
      };
      const journal = new LatchJournal(join(dir, 'agent.db.latches'));
      journal.open();
      // With the journal off, the loop waits for an equal fdatasync of another file between samples, so
      // both modes start each sample from the same idle state (a wait for the disk cools the caches).
      const idle = new LatchJournal(join(dir, 'idle.latches'));
      idle.open();
      const pause = async (j: LatchJournal) => {
        j.released('idle', 'bench', 0);
        await j.durable();
      };
      const on = rig(journal);
      const off = rig(undefined);
      const batch: Reading[] = [];
      let bg = 0;
      for (let round = 0; round < 10; round++) {
        for (const mode of ['off', 'on'] as const) {
          const r = mode === 'on' ? on : off;
          for (let i = 0; i < 200; i++) {
            const now = Date.now();
            batch.length = 0;
            for (let k = 0; k < 9; k++)
              batch.push(makeReading(background[bg++ % background.length] as BoundSensor, 50, now, now));
            batch.push(makeReading(hot, 200, now, now));
            const t0 = process.hrtime.bigint();
            r.p.ingest(batch);
            const t1 = process.hrtime.bigint();
            const stop = Number(r.calledAt() - t0) / 1000;
            if (mode === 'off') stopOff.push(stop);
            if (mode === 'on') {
              stopOn.push(stop);
              written.push(Number(t1 - t0) / 1000);
              await journal.durable();
              durable.push(Number(process.hrtime.bigint() - r.calledAt()) / 1000);
            } else await pause(idle);
            r.p.ingest([makeReading(hot, 20, now + 1, now + 1)]);
            r.il.ack('pump-0', 'bench');
            await pause(mode === 'on' ? journal : idle);
            if (i % 20 === 0) await new Promise((res) => setImmediate(res));
          }
        }
      }
      on.il.stop();
      off.il.stop();
      journal.close();
      idle.close();
      // fdatasync on the main thread, for comparison.
      const syncSamples: number[] = [];
      const fd = openSync(join(dir, 'sync-probe'), 'a');
      for (let i = 0; i < 500; i++) {
        writeSync(fd, '{"op":"trip","asset":"pump-0"}\n');
        const t0 = process.hrtime.bigint();
        fdatasyncSync(fd);
        syncSamples.push(Number(process.hrtime.bigint() - t0) / 1000);
      }
      closeSync(fd);
      const offRows = latencyRows(SECTION, 'reading → stop command, latch journal OFF (before)', stopOff, [50, 99]);
      const onRows = latencyRows(SECTION, 'reading → stop command, latch journal ON (after)', stopOn, [50, 99]).map((row, i) => {
        const base = offRows[i] as BenchRow;
        return {
          ...row,
          baseline: { name: base.name, value: base.value, ratio: Number((row.value / base.value).toFixed(2)) },
          note: `${stopOn.length} trips each, alternating rounds of 200, same process`,
        };
      });
      return [
        ...offRows,
        ...onRows,
        ...latencyRows(
          SECTION,
          'reading → trip in the journal (write(2) done: survives a process crash; ≤ ingest returned)',
          written,
          [50, 99],
        ),
        ...latencyRows(SECTION, 'stop command → trip durable (journal fdatasync returned, thread pool)', durable, [50, 99]),
        ...latencyRows(
          SECTION,
          'fdatasync of the journal if called on the main thread (not done: would delay the next reading)',
          syncSamples,
          [50, 99],
        ),
      ];
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
