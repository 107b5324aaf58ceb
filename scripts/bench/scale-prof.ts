/**
 * One load step of the scale bench for profiling (not part of `npm run bench`): the compiled agent (dist/, or
 * SCALE_BIN) at RATE readings/s for SECONDS with NODE_FLAGS passed to it (e.g. `--cpu-prof --cpu-prof-dir=DIR`,
 * `--trace-gc`), and each process's CPU (agent, broker, load generator) over the measured seconds, so that a
 * saturated machine shows as such, and when each trip over 20 ms (SCALE_SLOW_MS) was sent. `tsx scripts/bench/scale-prof.ts [rate] [seconds]`;
 * SKIP_BUILD=1 reuses dist/. SCALE_TRACE=1 also splits each trip's latency between the processes
 * (scripts/bench/scale/trace.mjs preloaded into the system and the generator): generator → system, in the
 * system (socket read → stop written), system → generator, and how long the system's event loop stayed busy
 * after each stop.
 */
import { cpSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startMosquitto } from '../../test/helpers/mosquitto.js';
import { tempDir } from '../../test/helpers/tmp.js';
import { build } from '../build.js';
import { agentSide, DRIVE_SETTLE_S, generate, latencyFigures, procStat, sideText, startAgent, startRelay } from './scale.js';
import { percentile } from './types.js';

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
const traceDir = process.env.SCALE_TRACE ? join(dir.path, 'trace') : undefined;
if (traceDir) {
  mkdirSync(traceDir);
  // Inherited by the system and the generator (their spawns pass process.env on).
  process.env.SCALE_TRACE_DIR = traceDir;
  process.env.NODE_OPTIONS = [process.env.NODE_OPTIONS, `--import ${join(import.meta.dirname, 'scale', 'trace.mjs')}`]
    .filter(Boolean)
    .join(' ');
}
try {
  const sys =
    who === 'relay'
      ? await startRelay(broker)
      : await startAgent(dir.path, broker, sensors, process.env.SCALE_BIN ? resolve(process.env.SCALE_BIN) : undefined);
  // SCALE_TRIPS (trips/s) and SCALE_WARMUP (s) change the load's defaults, for diagnosis only: the bench keeps its own.
  // SCALE_SETTLE (s) is the bench's: load, not measured, between the warm-up and the measured seconds.
  const o = {
    rate,
    seconds,
    sensors,
    trips_per_s: Number(process.env.SCALE_TRIPS ?? Math.min(50, Math.max(1, sensors / 4))),
    warmup_s: Number(process.env.SCALE_WARMUP ?? 3),
    settle_s: DRIVE_SETTLE_S,
    slow_ms: Number(process.env.SCALE_SLOW_MS ?? 20),
  };
  const gen = generate(broker, sys, o);
  await new Promise((r) => setTimeout(r, (o.warmup_s + o.settle_s) * 1000));
  const pids = { system: sys.proc.pid as number, broker: brokerPid, generator: gen.proc.pid as number };
  const threads = (pid: number) =>
    Object.fromEntries(
      readdirSync(`/proc/${pid}/task`).map((tid) => {
        const st = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const name = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        return [`${name}#${tid}`, (Number(f[11]) + Number(f[12])) / 100];
      }),
    );
  const th0 = threads(pids.system);
  const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, procStat(p).cpu]));
  const t0 = performance.now();
  const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  // The machine's own CPU ticks (all CPUs): a VM's steal shows the host taking cores away.
  const cpuTicks = () => readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const ticks0 = cpuTicks();
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
  let th1 = th0;
  const thTimer = setInterval(() => {
    try {
      th1 = threads(pids.system);
    } catch {}
  }, 500);
  const res = await gen.result;
  clearInterval(timer);
  clearInterval(thTimer);
  const side = sys.metrics ? agentSide(await sys.metrics()) : undefined;
  const el = (t1 - t0) / 1000;
  const l = latencyFigures(res);
  const cpu = Object.fromEntries(
    Object.keys(pids).map((k) => [k, `${((((after[k] as number) - (before[k] as number)) / el) * 100).toFixed(0)}%`]),
  );
  const s = Float64Array.from(res.latencies_ms).sort();
  const dt = cpuTicks().map((v, i) => v - (ticks0[i] ?? 0));
  const all = dt.reduce((a, b) => a + b, 0) || 1;
  // /proc/stat order: user nice system idle iowait irq softirq steal
  const share = (i: number) => `${(((dt[i] ?? 0) / all) * 100).toFixed(1)}%`;
  process.stdout.write(
    `${who} ${rate}/s ${seconds}s: p50 ${l.p50.toFixed(2)} p99 ${l.p99.toFixed(2)} p99.9 ${l.p999.toFixed(2)} max ${s.at(-1)?.toFixed(1)} ms, ${res.stops}/${res.trips} stops, lost ${res.lost}, sent ${res.sent_per_s}/s, lag max ${res.lag_max_ms} ms; CPU of one core over ${el.toFixed(1)} s: ${JSON.stringify(cpu)}; loadavg ${load0} → ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}; machine idle ${share(3)}, steal ${share(7)}${sideText(side)}\n`,
  );
  const busy = Object.entries(th1)
    .map(([k, v]) => [k, ((v - (th0[k] ?? 0)) / el) * 100] as const)
    .filter(([, v]) => v >= 1)
    .sort((a, b) => b[1] - a[1]);
  process.stdout.write(`system threads, % of one core: ${busy.map(([k, v]) => `${k} ${v.toFixed(0)}%`).join(', ')}\n`);
  // The trips by what else the generator sent around their reading: an ack for another sensor in the same
  // 2 ms tick (after the readings), one in the tick before, or neither (LoadResult.ack_flags).
  const flags = res.ack_flags ?? [];
  const groups = ['no ack near', 'an ack in its tick', 'an ack in the tick before'];
  const all99 = percentile(s, 99);
  for (const [f, name] of groups.entries()) {
    const xs = Float64Array.from(res.latencies_ms.filter((_, k) => flags[k] === f)).sort();
    const over = res.latencies_ms.filter((x, k) => x >= all99 && flags[k] === f).length;
    process.stdout.write(
      `trips with ${name}: ${xs.length}, p50 ${percentile(xs, 50).toFixed(2)} p90 ${percentile(xs, 90).toFixed(2)} p99 ${percentile(xs, 99).toFixed(2)} ms; ${over} at or over the p99 of all\n`,
    );
  }
  const firstTrips = Float64Array.from(res.first_latencies_ms ?? []).sort();
  process.stdout.write(
    `first trips after start (the warm-up's): ${firstTrips.length}, p50 ${percentile(firstTrips, 50).toFixed(2)} max ${firstTrips.at(-1)?.toFixed(1)} ms\n`,
  );
  process.stdout.write(
    `latencies > ${o.slow_ms} ms: ${res.latencies_ms.filter((x) => x > o.slow_ms).length} of ${res.latencies_ms.length}\n`,
  );
  // When they came: seconds after the first slow trip's send, and its latency (episodes show as clusters).
  const slow = res.slow ?? [];
  const first = slow[0]?.[0] ?? 0;
  process.stdout.write(
    `slow trips (s:ms): ${slow.map(([t, ms]) => `${((t - first) / 1e6).toFixed(2)}:${ms.toFixed(0)}`).join(' ')}\n`,
  );
  await sys.stop();
  if (traceDir) process.stdout.write(traceReport(traceDir));
  if (process.env.SCALE_PROF_DIR) tail(process.env.SCALE_PROF_DIR, res.slow ?? []);
} finally {
  await broker.stop();
  if (process.env.SCALE_KEEP_TRACE && traceDir) cpSync(traceDir, process.env.SCALE_KEEP_TRACE, { recursive: true });
  dir.remove();
}

/** Each trip's latency split between the processes, from the marks scale/trace.mjs wrote (µs). */
function traceReport(traceDir: string): string {
  type Trace = { marks: Array<[string, string, number]>; busyAfterStop: number[]; gc: Array<[number, number]> };
  const read = (f: string) => JSON.parse(readFileSync(join(traceDir, f), 'utf8')) as Trace;
  const files = readdirSync(traceDir);
  const genFile = files.find((f) => f.startsWith('load.mjs-'));
  const sysFile = files.find((f) => f.startsWith('edge-agent.js-') || f.startsWith('relay.mjs-'));
  if (!genFile || !sysFile) return `trace: no marks (files: ${files.join(', ') || 'none'})\n`;
  const gen = read(genFile);
  const sys = read(sysFile);
  const byAsset = (t: Trace, kind: string) => {
    const m = new Map<string, number[]>();
    for (const [a, k, at] of t.marks) if (k === kind) m.set(a, [...(m.get(a) ?? []), at]);
    return m;
  };
  const sent = byAsset(gen, 'out-reading');
  const read_ = byAsset(sys, 'in-reading');
  const wrote = byAsset(sys, 'out-stop');
  const got = byAsset(gen, 'in-stop');
  const seg: number[][] = [[], [], [], []];
  const rows: number[][] = [];
  for (const [asset, times] of sent)
    for (const t0 of times) {
      const t1 = read_.get(asset)?.find((t) => t >= t0);
      const t2 = t1 === undefined ? undefined : wrote.get(asset)?.find((t) => t >= t1);
      const t3 = t2 === undefined ? undefined : got.get(asset)?.find((t) => t >= t2);
      if (t1 === undefined || t2 === undefined || t3 === undefined || t3 - t0 > 1e6) continue;
      const parts = [t1 - t0, t2 - t1, t3 - t2, t3 - t0];
      for (let i = 0; i < parts.length; i++) seg[i]?.push(parts[i] as number);
      // A garbage collection pause of the system between the read and the stop.
      const paused = sys.gc.filter(([at, d]) => at < t2 && at + d > t1).reduce((a, [, d]) => a + d, 0);
      rows.push([...parts, paused]);
    }
  const slowest = rows
    .sort((a, b) => (b[3] as number) - (a[3] as number))
    .slice(0, 8)
    .map((r) => `${r.slice(0, 3).join('/')}${r[4] ? ` (GC ${r[4]})` : ''}`);
  const fig = (xs: number[]) => {
    const a = Float64Array.from(xs).sort();
    return `p50 ${percentile(a, 50).toFixed(0)} p90 ${percentile(a, 90).toFixed(0)} p99 ${percentile(a, 99).toFixed(0)}`;
  };
  const gcMs = (sys.gc.reduce((a, [, d]) => a + d, 0) / 1000).toFixed(0);
  const gcMax = (Math.max(0, ...sys.gc.map(([, d]) => d)) / 1000).toFixed(1);
  const names = ['generator → system', 'in the system (read → stop written)', 'system → generator', 'total'];
  return `trace, ${seg[3]?.length} trips (µs): ${names.map((n, i) => `${n} ${fig(seg[i] ?? [])}`).join('; ')}; the system's event loop busy after a stop ${fig(sys.busyAfterStop)}; the slowest trips' three parts: ${slowest.join(', ')}; the system's GC pauses: ${sys.gc.length}, ${gcMs} ms in all, longest ${gcMax} ms\n`;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/**
 * What the agent's main thread did while each slow trip waited (sent → stop received): busy share and
 * time by cause, from its CPU profile (`--cpu-prof --cpu-prof-dir=SCALE_PROF_DIR` in NODE_FLAGS).
 * Causes: `readings` (socket reads, MQTT parsing and the message handlers: the backlog itself), `gc`,
 * `idle`, and otherwise the outermost non-generic function (timers, immediates).
 */
function tail(dir: string, slow: ReadonlyArray<[number, number]>): void {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const file = files.map((f) => ({ f, size: readFileSync(join(dir, f)).length })).sort((a, b) => b.size - a.size)[0]?.f;
  if (!file || slow.length === 0) return;
  const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
    nodes: ProfileNode[];
    startTime: number;
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const name = (n: ProfileNode) => `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').slice(-2).join('/')}`;
  const GENERIC =
    /^\((root|program)\)|^\(anon\) $|processTicksAndRejections|listOnTimeout|processTimers|processImmediate|^emit |runMicrotasks|callbackTrampoline/;
  const cache = new Map<number, string>();
  const cause = (id: number): string => {
    const hit = cache.get(id);
    if (hit) return hit;
    const st: string[] = [];
    for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) st.push(name(byId.get(x) as ProfileNode));
    const leaf = st[0] as string;
    let c: string;
    if (leaf.startsWith('(idle)')) c = 'idle';
    else if (leaf.startsWith('(garbage collector)')) c = 'gc';
    else if (leaf.startsWith('(program)')) c = 'program';
    else if (st.some((f) => /onStreamRead|lib\/client|handlers\/|mqtt-packet/.test(f))) c = 'readings';
    else c = st.reverse().find((f) => !GENERIC.test(f)) ?? leaf;
    cache.set(id, c);
    return c;
  };
  const interval = Number(/--cpu-prof-interval[= ](\d+)/.exec(process.env.NODE_FLAGS ?? '')?.[1] ?? 1000);
  const times: number[] = [];
  let t = p.startTime;
  for (const d of p.timeDeltas) times.push((t += d));
  const tot = new Map<string, number>();
  let all = 0;
  const rows: string[] = [];
  for (const [sent, ms] of [...slow].sort((a, b) => b[1] - a[1])) {
    const end = sent + ms * 1000;
    const mine = new Map<string, number>();
    for (let i = lower(times, sent); i < times.length && (times[i] as number) < end; i++) {
      let dt = (times[i + 1] ?? (times[i] as number)) - (times[i] as number);
      // A gap between two samples much longer than the interval: the thread (or the sampler) was off
      // the CPU (another process ran), not working.
      if (dt > 3 * interval) {
        const off = dt - interval;
        mine.set('off cpu', (mine.get('off cpu') ?? 0) + off);
        tot.set('off cpu', (tot.get('off cpu') ?? 0) + off);
        all += off;
        dt = interval;
      }
      const c = cause(p.samples[i] as number);
      mine.set(c, (mine.get(c) ?? 0) + dt);
      tot.set(c, (tot.get(c) ?? 0) + dt);
      all += dt;
    }
    if (rows.length < 8)
      rows.push(
        `  ${ms.toFixed(1)} ms: ${[...mine]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 5)
          .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)}`)
          .join(', ')}`,
      );
  }
  // Episodes: slow trips sent within 1 s of each other, by send time after the profile started.
  const eps: Array<{ at: number; n: number; max: number }> = [];
  for (const [sent, ms] of [...slow].sort((a, b) => a[0] - b[0])) {
    const at = (sent - p.startTime) / 1e6;
    const last = eps.at(-1);
    if (last && at - last.at < 1) {
      last.n++;
      last.max = Math.max(last.max, ms);
    } else eps.push({ at, n: 1, max: ms });
  }
  process.stdout.write(
    `episodes (s after the profile started: trips, worst ms): ${eps.map((e) => `${e.at.toFixed(2)}: ${e.n}, ${e.max.toFixed(0)}`).join('; ')}\n`,
  );
  process.stdout.write(
    `while the ${slow.length} trips over 20 ms waited (${(all / 1000).toFixed(0)} ms of profile in all), the main thread was: ${[
      ...tot,
    ]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 10)
      .map(([k, v]) => `${k} ${((v / all) * 100).toFixed(1)}%`)
      .join(', ')}\nslowest:\n${rows.join('\n')}\n`,
  );
}

function lower(a: readonly number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((a[mid] as number) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
