#!/usr/bin/env node
/**
 * Builds the Kafka client's native addon (@confluentinc/kafka-javascript: librdkafka) from the
 * sources in its npm package, linked against the system's OpenSSL and zlib. Runs as this package's
 * `postinstall` (npm ci / npm install): package.json `allowScripts` denies the client's own install
 * script, which would download a prebuilt binary from GitHub or, when building, fetch zlib/OpenSSL/zstd
 * sources; here nothing but the npm registry is needed. The environment is set here, not by the user.
 * Needs g++, make, python3, libssl-dev, zlib1g-dev (Debian names; the same on arm64).
 * Skips when the addon already loads (a repeated `npm install`); `--force` rebuilds.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
let dir;
try {
  dir = dirname(require.resolve('@confluentinc/kafka-javascript/package.json'));
} catch {
  process.stdout.write('build-kafka-client: @confluentinc/kafka-javascript is not installed; nothing to build\n');
  process.exit(0);
}
const addon = join(dir, 'build', 'Release', 'confluent-kafka-javascript.node');
const loads = () =>
  existsSync(addon) && spawnSync(process.execPath, ['-e', `require(${JSON.stringify(addon)})`], { stdio: 'ignore' }).status === 0;
if (!process.argv.includes('--force') && loads()) {
  process.stdout.write('build-kafka-client: the addon is built and loads\n');
  process.exit(0);
}

// npm hands its bundled node-gyp to lifecycle scripts; outside npm, look beside npm itself.
const candidates = [
  process.env.npm_config_node_gyp,
  process.env.npm_execpath && join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter(Boolean);
const gyp = candidates.find((p) => existsSync(p));
if (!gyp) {
  process.stderr.write(`build-kafka-client: node-gyp not found (looked at ${candidates.join(', ')})\n`);
  process.exit(1);
}
const env = { ...process.env, CKJS_LINKING: 'dynamic', BUILD_LIBRDKAFKA: '1' };
// The headers of the running Node when it ships them (Debian/NodeSource packages: /usr/include/node),
// so node-gyp does not download them from nodejs.org.
const prefix = join(dirname(process.execPath), '..');
const args = ['rebuild'];
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'common.gypi')))
  args.push(`--nodedir=${prefix}`);
process.stdout.write('build-kafka-client: building librdkafka and the addon (about a minute per core)\n');
const started = Date.now();
const res = spawnSync(process.execPath, [gyp, ...args], { cwd: dir, env, stdio: ['ignore', 'ignore', 'inherit'] });
if (res.status !== 0 || !loads()) {
  process.stderr.write(
    'build-kafka-client: FAILED. It needs g++, make, python3 and the OpenSSL and zlib headers ' +
      '(Debian/Ubuntu: apt-get install g++ make python3 libssl-dev zlib1g-dev).\n',
  );
  process.exit(1);
}
process.stdout.write(`build-kafka-client: built in ${Math.round((Date.now() - started) / 1000)} s\n`);
