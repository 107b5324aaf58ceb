/**
 * Footprint of the agent as a gateway runs it, on the default config (agent.config.yaml: simulator,
 * local SQLite, the shipped model, no broker): time from process start to `/readyz` 200, RSS after
 * 30 s of running, and the size of the release bundle. The compiled build (from the bundle, plain
 * Node) beside the TypeScript sources run through tsx (`npm start`) with a warm and a cold tsx cache,
 * in the same run. The compiled build without the `model:` section shows what the ONNX runtime costs.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { freePort } from '../../test/helpers/free-port.js';
import { tempDir } from '../../test/helpers/tmp.js';
import { packageBundle } from '../package.js';
import { type BenchRow, type BenchSection, round } from './types.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const STARTS = Number(process.env.FOOTPRINT_STARTS ?? 3);
const IDLE_MS = Number(process.env.FOOTPRINT_IDLE_MS ?? 30_000);

interface Variant {
  readonly name: string;
  readonly cwd: string;
  readonly args: (config: string) => string[];
  readonly env?: () => NodeJS.ProcessEnv;
  readonly config: string;
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : Number.NaN;
}

/** Starts the agent, returns ms to the first /readyz 200 and, if asked, RSS after `idleMs`. */
async function startOnce(v: Variant, dir: string, idleMs: number): Promise<{ readyMs: number; rssMb?: number }> {
  const port = await freePort();
  const cfg = join(dir, `${v.name.replace(/\W+/g, '-')}-${port}.yaml`);
  writeFileSync(
    cfg,
    v.config
      .replace(/listen: 127\.0\.0\.1:8080/, `listen: 127.0.0.1:${port}`)
      .replace(/path: \.\/data\/agent\.db/, `path: ${join(dir, `${port}.db`)}`),
  );
  const t0 = performance.now();
  const child = spawn(process.execPath, v.args(cfg), { cwd: v.cwd, stdio: 'ignore', env: { ...process.env, ...v.env?.() } });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${v.name}: exited with ${child.exitCode} before ready`);
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1000) })
        .then((r) => r.status === 200)
        .catch(() => false);
      if (ok) break;
      if (performance.now() - t0 > 60_000) throw new Error(`${v.name}: not ready after 60 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const readyMs = performance.now() - t0;
    if (idleMs <= 0) return { readyMs };
    await new Promise((r) => setTimeout(r, idleMs));
    return { readyMs, rssMb: rssKb(child.pid as number) / 1024 };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

export const footprint: BenchSection = {
  name: 'footprint',
  async run() {
    const dir = tempDir('edge-agent-footprint-');
    try {
      const bundle = packageBundle(join(dir.path, 'release'));
      const unpacked = join(dir.path, 'bundle');
      mkdirSync(unpacked);
      execFileSync('tar', ['-xzf', bundle.file, '-C', unpacked, '--strip-components=1']);
      const config = readFileSync(join(ROOT, 'agent.config.yaml'), 'utf8');
      const noModel = config
        .replace(/\nmodel:\n(?:[ #].*\n|\n)*?(?=\n?ensembles:)/, '\n')
        .replace(/\nensembles:\n(?:[ #].*\n)*/, '\n');
      const compiled: Variant = {
        name: 'compiled (bundle, plain node)',
        cwd: unpacked,
        args: (c) => ['bin/edge-agent.js', 'run', '--config', c],
        config,
      };
      const tsxWarm: Variant = {
        name: 'sources through tsx, warm cache',
        cwd: ROOT,
        args: (c) => ['--import', 'tsx', 'agent/cli.ts', 'run', '--config', c],
        config,
      };
      const tsxCold: Variant = {
        ...tsxWarm,
        name: 'sources through tsx, cold cache',
        // tsx caches compiled files under the temp dir; systemd's PrivateTmp empties it at every start.
        env: () => {
          const tmp = join(dir.path, `tmp-${Math.random().toString(36).slice(2)}`);
          mkdirSync(tmp);
          return { TMPDIR: tmp };
        },
      };
      const compiledNoModel: Variant = { ...compiled, name: 'compiled, default config without the model', config: noModel };
      await startOnce(tsxWarm, dir.path, 0); // fills the tsx cache

      const rows: BenchRow[] = [];
      const results = new Map<string, { ready: number; rss: number }>();
      for (const v of [compiled, tsxWarm, tsxCold, compiledNoModel]) {
        const ready: number[] = [];
        for (let i = 0; i < STARTS; i++) ready.push((await startOnce(v, dir.path, 0)).readyMs);
        const idle = await startOnce(v, dir.path, IDLE_MS);
        results.set(v.name, { ready: median(ready), rss: idle.rssMb as number });
        process.stderr.write(
          `  ${v.name}: ready ${ready.map((r) => r.toFixed(0)).join('/')} ms, RSS ${idle.rssMb?.toFixed(1)} MB\n`,
        );
      }
      const base = results.get(tsxWarm.name) as { ready: number; rss: number };
      const vs = (name: string, value: number, baseValue: number, digits: number) =>
        name === tsxWarm.name
          ? {}
          : { baseline: { name: tsxWarm.name, value: round(baseValue, digits), ratio: round(value / baseValue) } };
      for (const [name, r] of results) {
        rows.push({
          section: 'footprint',
          name: `start → /readyz 200, ${name} (median of ${STARTS})`,
          value: round(r.ready, 0),
          unit: 'ms',
          ...vs(name, r.ready, base.ready, 0),
        });
        rows.push({
          section: 'footprint',
          name: `RSS ${IDLE_MS / 1000} s after ready, ${name}`,
          value: round(r.rss, 1),
          unit: 'MB',
          ...vs(name, r.rss, base.rss, 1),
        });
      }
      rows.push({
        section: 'footprint',
        name: `release bundle ${bundle.file.split('/').at(-1)}, compressed`,
        value: round(bundle.bytes / 1e6, 1),
        unit: 'MB',
      });
      rows.push({
        section: 'footprint',
        name: 'release bundle, installed size',
        value: round(bundle.installedBytes / 1e6, 1),
        unit: 'MB',
      });
      return rows;
    } finally {
      dir.remove();
    }
  },
};
