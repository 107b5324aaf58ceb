/**
 * One load step of the scale bench for profiling (not part of `npm run bench`): the compiled agent (dist/, or
 * SCALE_BIN) at RATE readings/s for SECONDS with NODE_FLAGS passed to it (e.g. `--cpu-prof --cpu-prof-dir=DIR`,
 * `--trace-gc`), and each process's CPU (agent, broker, load generator) over the measured seconds, so that a
 * saturated machine shows as such. `tsx scripts/bench/scale-prof.ts [rate] [seconds]`; SKIP_BUILD=1 reuses dist/.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { startMosquitto } from '../../test/helpers/mosquitto.js';
import { tempDir } from '../../test/helpers/tmp.js';
import { build } from '../build.js';
import { generate, latencyFigures, procStat, startAgent, startRelay } from './scale.js';

const rate = Number(process.argv[2] ?? 20_000);
const seconds = Number(process.argv[3] ?? 20);
const who = process.env.SCALE_SYSTEM ?? 'agent';
if (!process.env.SKIP_BUILD && !process.env.SCALE_BIN) build();
const dir = tempDir('edge-agent-scale-prof-');
const broker = await startMosquitto({ persistence: false });
const brokerPid = Number(
  readdirSync('/proc').find((p) => /^\d+$/.test(p) && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(broker.dir)),
);
const sensors = Math.round(rate / 10);
try {
  const sys =
    who === 'relay'
      ? await startRelay(broker)
      : await startAgent(dir.path, broker, sensors, process.env.SCALE_BIN ? resolve(process.env.SCALE_BIN) : undefined);
  const o = { rate, seconds, sensors, trips_per_s: Math.min(50, Math.max(1, sensors / 4)), warmup_s: 3 };
  const gen = generate(broker, sys, o);
  await new Promise((r) => setTimeout(r, o.warmup_s * 1000));
  const pids = { system: sys.proc.pid as number, broker: brokerPid, generator: gen.proc.pid as number };
  const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, procStat(p).cpu]));
  const t0 = performance.now();
  const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  // sample until the generator exits
  let after: Record<string, number> = before;
  let t1 = t0;
  const timer = setInterval(() => {
    try {
      after = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, procStat(p).cpu]));
      t1 = performance.now();
    } catch {}
  }, 500);
  // SCALE_SIGNAL_AT=8,14: sends SIGUSR2 to the system at those seconds after the warm-up (with NODE_FLAGS
  // `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=DIR`: two heap snapshots to diff).
  for (const at of (process.env.SCALE_SIGNAL_AT ?? '').split(',').filter(Boolean))
    setTimeout(() => sys.proc.kill('SIGUSR2'), Number(at) * 1000);
  const res = await gen.result;
  clearInterval(timer);
  const el = (t1 - t0) / 1000;
  const l = latencyFigures(res);
  const cpu = Object.fromEntries(
    Object.keys(pids).map((k) => [k, `${((((after[k] as number) - (before[k] as number)) / el) * 100).toFixed(0)}%`]),
  );
  const s = Float64Array.from(res.latencies_ms).sort();
  process.stdout.write(
    `${who} ${rate}/s ${seconds}s: p50 ${l.p50.toFixed(2)} p99 ${l.p99.toFixed(2)} p99.9 ${l.p999.toFixed(2)} max ${s.at(-1)?.toFixed(1)} ms, ${res.stops}/${res.trips} stops, lost ${res.lost}, sent ${res.sent_per_s}/s, lag max ${res.lag_max_ms} ms; CPU of one core over ${el.toFixed(1)} s: ${JSON.stringify(cpu)}; loadavg ${load0} → ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`,
  );
  process.stdout.write(`latencies > 20 ms: ${res.latencies_ms.filter((x) => x > 20).length} of ${res.latencies_ms.length}\n`);
  await sys.stop();
} finally {
  await broker.stop();
  dir.remove();
}
