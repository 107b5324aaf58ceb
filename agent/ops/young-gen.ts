/**
 * V8 doubles the young generation (up to 2 × 16 MB on 64-bit) whenever much survives a scavenge, as it
 * does while the agent loads its modules and builds its per-sensor state, and keeps it resident
 * afterwards: about 25 MB of an idle agent's RSS (issue 20). Growth factor 1 keeps it at its initial
 * size; scavenges are more frequent but each is short (`npm run bench -- scale` measures the agent this
 * way). A `--max-semi-space-size` or `--semi-space-growth-factor` on the node command line is respected.
 *
 * Evaluated first by the compiled bin/edge-agent.js and the CLI, before the other modules load. Node
 * resets V8's flags when a worker thread comes online, so {@link keepAfterWorkerStarts} applies it again.
 */
import v8 from 'node:v8';
import type { Worker } from 'node:worker_threads';

const chosenOnCommandLine = process.execArgv.some((a) =>
  /^--(max|min)[-_]semi[-_]space[-_]size|^--semi[-_]space[-_]growth[-_]factor/.test(a),
);

function apply(): void {
  if (!chosenOnCommandLine) v8.setFlagsFromString('--semi-space-growth-factor=1');
}

/** Re-applies the young-generation flag once `worker` is online (Node resets V8 flags then). */
export function keepAfterWorkerStarts(worker: Worker): Worker {
  worker.once('online', apply);
  return worker;
}

apply();
