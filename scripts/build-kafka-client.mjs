#!/usr/bin/env node
/**
 * Builds the Kafka client's native addon (@confluentinc/kafka-javascript: librdkafka) from the
 * sources in its npm package, linked against the system's OpenSSL and zlib, then our own producer
 * addon (native/kafka-txn: plain Node-API over librdkafka's C API, linked against that librdkafka.so.1). Runs as this package's
 * `postinstall` (npm ci / npm install): package.json `allowScripts` denies the client's own install
 * script, which would download a prebuilt binary from GitHub or, when building, fetch zlib/OpenSSL/zstd
 * sources; here nothing but the npm registry is needed. The environment is set here, not by the user.
 * Needs g++, make, python3, libssl-dev, zlib1g-dev (Debian names; the same on arm64).
 * Skips an addon that already loads (a repeated `npm install`); `--force` rebuilds both.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
let dir;
try {
  dir = dirname(require.resolve('@confluentinc/kafka-javascript/package.json'));
} catch {
  process.stdout.write('build-kafka-client: @confluentinc/kafka-javascript is not installed; nothing to build\n');
  process.exit(0);
}
const addon = join(dir, 'build', 'Release', 'confluent-kafka-javascript.node');
const loads = (file) =>
  existsSync(file) && spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { stdio: 'ignore' }).status === 0;
const force = process.argv.includes('--force');

// npm hands its bundled node-gyp to lifecycle scripts; outside npm, look beside npm itself.
const candidates = [
  process.env.npm_config_node_gyp,
  process.env.npm_execpath && join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter(Boolean);
/** node-gyp, looked for only when something must be built. */
const nodeGyp = () => {
  const gyp = candidates.find((p) => existsSync(p));
  if (gyp) return gyp;
  process.stderr.write(`build-kafka-client: node-gyp not found (looked at ${candidates.join(', ')})\n`);
  process.exit(1);
};
const env = { ...process.env, CKJS_LINKING: 'dynamic', BUILD_LIBRDKAFKA: '1' };
// The headers of the running Node when it ships them (Debian/NodeSource packages: /usr/include/node),
// so node-gyp does not download them from nodejs.org.
const prefix = join(dirname(process.execPath), '..');
const args = ['rebuild'];
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'common.gypi')))
  args.push(`--nodedir=${prefix}`);
const failed = () => {
  process.stderr.write(
    'build-kafka-client: FAILED. It needs g++, make, python3 and the OpenSSL and zlib headers ' +
      '(Debian/Ubuntu: apt-get install g++ make python3 libssl-dev zlib1g-dev).\n',
  );
  process.exit(1);
};
if (!force && loads(addon)) {
  process.stdout.write('build-kafka-client: the Kafka client addon is built and loads\n');
} else {
  process.stdout.write('build-kafka-client: building librdkafka and the addon (about a minute per core)\n');
  const started = Date.now();
  const res = spawnSync(process.execPath, [nodeGyp(), ...args], { cwd: dir, env, stdio: ['ignore', 'ignore', 'inherit'] });
  if (res.status !== 0 || !loads(addon)) failed();
  process.stdout.write(`build-kafka-client: built in ${Math.round((Date.now() - started) / 1000)} s\n`);
}

// Our producer addon (native/kafka-txn beside this scripts/ folder, in a checkout and in the bundle).
const txnDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'native', 'kafka-txn');
const txnAddon = join(txnDir, 'build', 'Release', 'kafka_txn.node');
if (!existsSync(join(txnDir, 'binding.gyp'))) {
  if (!loads(txnAddon)) {
    process.stderr.write(`build-kafka-client: ${txnDir} has neither the sources nor a loadable addon\n`);
    process.exit(1);
  }
} else if (!force && loads(txnAddon)) {
  process.stdout.write('build-kafka-client: the kafka-txn addon is built and loads\n');
} else {
  const started = Date.now();
  const res = spawnSync(process.execPath, [nodeGyp(), ...args, '--loglevel=warn'], {
    cwd: txnDir,
    env: process.env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (res.status !== 0 || !loads(txnAddon)) failed();
  process.stdout.write(`build-kafka-client: kafka-txn addon built in ${Math.round((Date.now() - started) / 1000)} s\n`);
}
