/**
 * Loading the config file in a short-lived worker thread. Parsing a plant-sized YAML file (the
 * `yaml` document with source tokens, kept for file:line:column errors) allocates about 30 KB per
 * configured sensor that is garbage once the config is validated. Done on the main thread, that
 * transient peak grows the V8 heap, and V8 keeps the grown heap committed long after the garbage is
 * collected: about 60 MB of resident memory for 2,000 sensors (issue 20). In a worker, the whole
 * isolate is freed when it exits; only the validated config (plain data) is copied back.
 */
import { Worker } from 'node:worker_threads';
import { type ConfigResult, loadConfigFile } from '../config/load.js';
import { keepAfterWorkerStarts } from './young-gen.js';

const workerUrl = (): URL =>
  import.meta.url.endsWith('.ts')
    ? new URL('./config-worker-entry.mjs', import.meta.url)
    : new URL('./config-worker.js', import.meta.url);

/**
 * {@link loadConfigFile} in a worker thread. Falls back to loading in this thread when the worker
 * cannot run (the result is the same; only the memory left behind differs).
 */
export async function loadConfigIsolated(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  opts: { inThreadIfWorkerFails?: boolean } = {},
): Promise<ConfigResult> {
  try {
    return await new Promise<ConfigResult>((resolve, reject) => {
      const w = keepAfterWorkerStarts(new Worker(workerUrl(), { workerData: { file, env: { ...env } } }));
      let result: ConfigResult | undefined;
      w.once('message', (m: ConfigResult) => {
        result = m;
      });
      w.once('error', reject);
      w.once('exit', (code) => (result ? resolve(result) : reject(new Error(`config worker exited with ${code} and no result`))));
    });
  } catch (err) {
    if (opts.inThreadIfWorkerFails === false) throw err;
    return loadConfigFile(file, env);
  }
}
