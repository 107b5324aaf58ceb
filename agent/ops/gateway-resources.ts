/**
 * Gateway resources for /metrics (CPU load, memory in use, temperature), read from /proc and /sys with
 * asynchronous file reads only. systeminformation, used before, ran `sensors` and other commands with
 * execSync on the main thread for its temperature and load: a 20–50 ms stall of every reading once per
 * sample (seen in a CPU profile under the scale bench).
 */
import { readdir, readFile } from 'node:fs/promises';
import { cpus, freemem, totalmem } from 'node:os';

export interface GatewayResources {
  /** Share of CPU time not idle since the previous sample (the first: since boot), 0–1. */
  readonly cpuLoad: number | undefined;
  /** Memory in use without caches (MemTotal − MemAvailable), bytes. */
  readonly memUsed: number;
  readonly memTotal: number;
  /** °C of the CPU's thermal zone; undefined when the hardware reports none. */
  readonly temperature: number | undefined;
}

interface CpuTimes {
  readonly busy: number;
  readonly total: number;
}

/** Aggregate CPU times from the first line of /proc/stat ("cpu  user nice system idle iowait irq softirq steal ..."). */
export function parseProcStat(text: string): CpuTimes | undefined {
  const line = text.slice(0, text.indexOf('\n'));
  if (!line.startsWith('cpu ')) return undefined;
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 4 || f.some((x) => !Number.isFinite(x))) return undefined;
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] as number) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/** MemTotal and MemAvailable from /proc/meminfo, bytes. */
export function parseMeminfo(text: string): { total: number; available: number } | undefined {
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const total = kb('MemTotal');
  const available = kb('MemAvailable');
  return total !== undefined && available !== undefined ? { total, available } : undefined;
}

const CPU_ZONE = /cpu|x86_pkg|soc|core|package|k10temp/i;

export class GatewaySampler {
  private last: CpuTimes | undefined;

  constructor(
    private readonly proc = '/proc',
    private readonly sys = '/sys',
  ) {}

  async sample(): Promise<GatewayResources> {
    const [cpu, mem, temperature] = await Promise.all([this.cpu(), this.mem(), this.temperature()]);
    return { cpuLoad: cpu, memUsed: mem.used, memTotal: mem.total, temperature };
  }

  private async cpu(): Promise<number | undefined> {
    let now = await readFile(`${this.proc}/stat`, 'utf8').then(parseProcStat, () => undefined);
    if (!now) {
      // Not Linux: the same figures from os.cpus().
      let busy = 0;
      let total = 0;
      for (const c of cpus()) {
        const t = c.times;
        const sum = t.user + t.nice + t.sys + t.idle + t.irq;
        total += sum;
        busy += sum - t.idle;
      }
      if (total === 0) return undefined;
      now = { busy, total };
    }
    const prev = this.last ?? { busy: 0, total: 0 };
    this.last = now;
    const dt = now.total - prev.total;
    return dt > 0 ? Math.min(1, Math.max(0, (now.busy - prev.busy) / dt)) : undefined;
  }

  private async mem(): Promise<{ used: number; total: number }> {
    const m = await readFile(`${this.proc}/meminfo`, 'utf8').then(parseMeminfo, () => undefined);
    if (m) return { used: m.total - m.available, total: m.total };
    return { used: totalmem() - freemem(), total: totalmem() };
  }

  /** The first thermal zone whose type names the CPU (else the first zone), in °C. */
  private async temperature(): Promise<number | undefined> {
    const base = `${this.sys}/class/thermal`;
    const zones = (await readdir(base).catch(() => [] as string[])).filter((z) => z.startsWith('thermal_zone')).sort();
    let first: number | undefined;
    for (const z of zones) {
      const [type, raw] = await Promise.all([
        readFile(`${base}/${z}/type`, 'utf8').catch(() => ''),
        readFile(`${base}/${z}/temp`, 'utf8').catch(() => ''),
      ]);
      const milli = Number(raw.trim());
      if (raw.trim() === '' || !Number.isFinite(milli)) continue;
      const c = milli / 1000;
      if (CPU_ZONE.test(type)) return c;
      first ??= c;
    }
    return first;
  }
}
