/**
 * `npm run build [-- --out DIR]`: the compiled agent, the product that gateways run with plain Node.
 *
 * DIR (default dist/) is self-contained apart from node_modules: compiled agent/ and drivers/, the
 * assets they read at run time (the dashboard page), bin/edge-agent.js, a production package.json,
 * the default config, schemas, the shipped model, the systemd unit, the install scripts and the
 * README. `npm run package` adds the production node_modules and packs it.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Files next to the sources that the compiled code reads at run time. */
const RUNTIME_ASSET = /\.(html|json)$/;
/** Copied as they are, when present. */
const AS_IS = ['agent.config.yaml', 'README.md', 'LICENSE', 'schema', 'models', 'systemd', 'docs'];
const SCRIPTS = ['install.sh', 'uninstall.sh', 'build-kafka-client.mjs'];

export interface BuildResult {
  readonly out: string;
  readonly version: string;
}

function walk(dir: string, visit: (file: string) => void): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, visit);
    else visit(p);
  }
}

export function build(outArg = 'dist'): BuildResult {
  const out = resolve(ROOT, outArg);
  if (out === ROOT || out === '/') throw new Error(`refusing to build into ${out}`);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });

  const tsc = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out],
    {
      stdio: 'inherit',
    },
  );
  if (tsc.status !== 0) throw new Error(`tsc failed (exit ${tsc.status})`);

  for (const top of ['agent', 'drivers']) {
    walk(join(ROOT, top), (file) => {
      if (!RUNTIME_ASSET.test(file)) return;
      const dest = join(out, relative(ROOT, file));
      mkdirSync(dirname(dest), { recursive: true });
      cpSync(file, dest);
    });
  }
  for (const item of AS_IS) {
    const src = join(ROOT, item);
    if (existsSync(src)) cpSync(src, join(out, item), { recursive: true });
  }
  // Our Kafka producer addon (native/kafka-txn): the addon built at npm ci, loaded by the compiled
  // agent/sync/producer.js from ../../native, and its sources (an `npm ci` of this folder rebuilds it).
  const txn = join(ROOT, 'native', 'kafka-txn');
  for (const f of ['binding.gyp', 'src', join('build', 'Release', 'kafka_txn.node')])
    if (existsSync(join(txn, f))) cpSync(join(txn, f), join(out, 'native', 'kafka-txn', f), { recursive: true });
  mkdirSync(join(out, 'scripts'), { recursive: true });
  for (const s of SCRIPTS) cpSync(join(ROOT, 'scripts', s), join(out, 'scripts', s));

  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  const production = {
    name: pkg.name,
    version: pkg.version,
    description: pkg.description,
    license: pkg.license,
    type: 'module',
    engines: pkg.engines,
    bin: { 'edge-agent': './bin/edge-agent.js' },
    // The bundle carries the built Kafka client; an `npm ci` of this folder builds it the same way.
    scripts: { postinstall: 'node scripts/build-kafka-client.mjs' },
    dependencies: pkg.dependencies,
    allowScripts: pkg.allowScripts,
  };
  writeFileSync(join(out, 'package.json'), `${JSON.stringify(production, null, 2)}\n`);
  cpSync(join(ROOT, 'package-lock.json'), join(out, 'package-lock.json'));

  mkdirSync(join(out, 'bin'), { recursive: true });
  const bin = join(out, 'bin', 'edge-agent.js');
  writeFileSync(
    bin,
    "#!/usr/bin/env node\n// The compiled agent: plain Node, no loader. young-gen.js sets a V8 flag before the CLI's modules load.\nawait import('../agent/ops/young-gen.js');\nawait import('../agent/cli.js');\n",
  );
  chmodSync(bin, 0o755);
  // Lets bin/edge-agent.js in a checkout tell a current build from a stale one.
  writeFileSync(join(out, '.build-stamp'), `${new Date().toISOString()}\n`);
  return { out, version: String(pkg.version) };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: 'string', default: 'dist' } } });
  const res = build(values.out);
  process.stdout.write(`built edge-agent ${res.version} into ${relative(process.cwd(), res.out) || '.'}\n`);
}
