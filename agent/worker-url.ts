/**
 * Where a worker thread's code lives. The compiled agent (dist/, the release bundle) starts the
 * compiled `worker.js` with plain Node. Run from the TypeScript sources (development, tests), a
 * worker starts as plain Node too and must first register tsx's loader: `worker-entry.mjs` beside
 * each worker does that, and is not part of the compiled build.
 */
export function workerUrl(moduleUrl: string): URL {
  return moduleUrl.endsWith('.ts') ? new URL('./worker-entry.mjs', moduleUrl) : new URL('./worker.js', moduleUrl);
}
