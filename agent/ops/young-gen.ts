/**
 * V8 doubles the young generation (up to 2 × 16 MB on 64-bit) whenever much survives a scavenge, as it
 * does while the agent loads its modules and builds its per-sensor state, and keeps it resident
 * afterwards: about 25 MB of an idle agent's RSS (issue 20). During start-up the growth factor is 1, so
 * the young generation stays at its initial size; once the agent runs ({@link startupDone}) V8's own
 * growth is restored, because under load a 1 MB young generation means dozens of scavenges a second
 * (measured: 7 times the GC time of the grown one at 5k readings/s). So it grows only when readings do.
 * A `--max-semi-space-size` (the systemd unit sets 32 MB in NODE_OPTIONS) only raises the ceiling it may
 * grow to, so it composes with this; a `--min-semi-space-size` or `--semi-space-growth-factor` on the node
 * command line or in NODE_OPTIONS is respected (left alone).
 *
 * Evaluated first by the compiled bin/edge-agent.js and the CLI, before the other modules load. Node
 * resets V8's flags when a worker thread comes online, so {@link keepAfterWorkerStarts} applies it again.
 */
import v8 from 'node:v8';
import type { Worker } from 'node:worker_threads';

const chosenOnCommandLine = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) =>
  /^--min[-_]semi[-_]space[-_]size|^--semi[-_]space[-_]growth[-_]factor/.test(a),
);
let startingUp = !chosenOnCommandLine;

function apply(): void {
  if (startingUp) v8.setFlagsFromString('--semi-space-growth-factor=1');
}

/** Re-applies the start-up flag once `worker` is online (Node resets V8 flags then). */
export function keepAfterWorkerStarts(worker: Worker): Worker {
  worker.once('online', apply);
  return worker;
}

/** The agent runs: the young generation may grow with the load again (V8's default factor, 2). */
export function startupDone(): void {
  if (!startingUp) return;
  startingUp = false;
  v8.setFlagsFromString('--semi-space-growth-factor=2');
}

apply();
