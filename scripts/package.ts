/**
 * `npm run package [-- --out-dir DIR]`: the release bundle for gateways without internet.
 *
 * Writes DIR/edge-agent-<version>-linux-<arch>.tar.gz and its .sha256 (sha256sum format). The
 * bundle holds the compiled agent (scripts/build.ts) and the production node_modules of this
 * checkout, whose native addons were built for this machine's platform at `npm ci`; binaries for
 * other platforms are removed. Build it on the platform it is for (x64 or arm64, glibc): the
 * addons are compiled, not cross-compiled. `scripts/install.sh --bundle FILE` installs it offline.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from './build.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface PackageResult {
  readonly file: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly installedBytes: number;
}

/** The production dependency folders of this checkout, outermost first. */
function productionPackages(): string[] {
  const res = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT, encoding: 'utf8' });
  if (res.status !== 0 && !res.stdout) throw new Error(`npm ls failed: ${res.stderr}`);
  const dirs = res.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith(join(ROOT, 'node_modules') + sep));
  const unique = [...new Set(dirs)].sort((a, b) => a.length - b.length);
  const kept: string[] = [];
  for (const d of unique) if (!kept.some((k) => d.startsWith(k + sep))) kept.push(d);
  return kept;
}

function du(path: string): number {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  let n = 0;
  for (const e of readdirSync(path)) n += du(join(path, e));
  return n;
}

/** Removes what a gateway of this platform never loads: other platforms' binaries, addon sources and objects. */
function prune(modules: string): void {
  const platform = process.platform;
  const arch = process.arch;
  const rm = (p: string) => rmSync(p, { recursive: true, force: true });
  const ort = join(modules, 'onnxruntime-node', 'bin', 'napi-v6');
  if (existsSync(ort)) {
    for (const os of readdirSync(ort)) {
      if (os !== platform) rm(join(ort, os));
      else for (const a of readdirSync(join(ort, os))) if (a !== arch) rm(join(ort, os, a));
    }
  }
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (!e.isDirectory()) {
        if (/\.(ts|mts|cts|map|md)$/.test(e.name) && !/^(license|licence|notice)/i.test(e.name)) rm(p);
        continue;
      }
      if (e.name === 'prebuilds') {
        for (const pb of readdirSync(p)) if (pb !== `${platform}-${arch}`) rm(join(p, pb));
        continue;
      }
      walk(p);
    }
  };
  walk(modules);
  // Compiled addons keep their .node file; the C/C++ sources and object files are build-time only.
  for (const addon of ['better-sqlite3', 'unix-dgram', join('@serialport', 'bindings-cpp')]) {
    const dir = join(modules, addon);
    if (!existsSync(dir)) continue;
    for (const d of [
      'deps',
      'src',
      join('build', 'deps'),
      join('build', 'Release', 'obj'),
      join('build', 'Release', 'obj.target'),
      join('build', 'Release', '.deps'),
    ])
      rm(join(dir, d));
    const release = join(dir, 'build', 'Release');
    if (!existsSync(release)) continue;
    for (const f of readdirSync(release, { withFileTypes: true }))
      if (f.isFile() && !f.name.endsWith('.node')) rm(join(release, f.name));
  }
  // The Kafka client: its addon (build/Release/*.node) loads librdkafka from build/deps (rpath
  // $ORIGIN/../deps), which links the system's libssl3 and zlib1g. Sources, static archives and
  // headers are build-time only; the shared libraries are stripped of debug symbols.
  const ckjs = join(modules, '@confluentinc', 'kafka-javascript');
  if (existsSync(ckjs)) {
    for (const d of ['deps', 'src', join('build', 'Release', 'obj.target'), join('build', 'Release', '.deps')]) rm(join(ckjs, d));
    const libs = join(ckjs, 'build', 'deps');
    for (const f of readdirSync(libs, { withFileTypes: true })) {
      const p = join(libs, f.name);
      if (!/^librdkafka(\+\+)?\.so/.test(f.name)) rm(p);
      else if (f.isFile()) spawnSync('strip', ['--strip-unneeded', p]);
    }
  }
}

export function packageBundle(outDir = 'release'): PackageResult {
  if (process.platform !== 'linux') throw new Error('bundles are built on, and for, Linux');
  const arch = process.arch;
  const stage = mkdtempSync(join(tmpdir(), 'edge-agent-package-'));
  try {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const name = `edge-agent-${pkg.version}-linux-${arch}`;
    const top = join(stage, name);
    build(top);
    const modules = join(top, 'node_modules');
    mkdirSync(modules, { recursive: true });
    for (const dir of productionPackages()) {
      cpSync(dir, join(modules, relative(join(ROOT, 'node_modules'), dir)), { recursive: true, verbatimSymlinks: true });
    }
    prune(modules);
    writeFileSync(join(top, 'PLATFORM'), `linux-${arch} node-abi-${process.versions.modules}\n`);
    const installedBytes = du(top);

    const out = resolve(ROOT, outDir);
    mkdirSync(out, { recursive: true });
    const file = join(out, `${name}.tar.gz`);
    execFileSync('tar', ['-czf', file, '--owner=0', '--group=0', '-C', stage, name]);
    const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex');
    writeFileSync(`${file}.sha256`, `${sha256}  ${basename(file)}\n`);
    return { file, sha256, bytes: statSync(file).size, installedBytes };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { 'out-dir': { type: 'string', default: 'release' } } });
  const res = packageBundle(values['out-dir']);
  const mb = (n: number) => (n / 1e6).toFixed(1);
  process.stdout.write(
    `${relative(process.cwd(), res.file)}: ${mb(res.bytes)} MB compressed, ${mb(res.installedBytes)} MB installed\nsha256 ${res.sha256}\n`,
  );
}
