import { stat } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { findPoolThreads, ownThreadId, threadIds } from './helper-threads.js';

describe.runIf(process.platform === 'linux')('helper threads: telling libuv’s pool apart', () => {
  it('finds as many pool threads as the pool has, and never the calling thread', async () => {
    await stat('.'); // the pool runs
    const me = ownThreadId() as number;
    const all = threadIds() as number[];
    expect(all).toContain(me);
    const pool = await findPoolThreads(all);
    expect(pool).toHaveLength(Number(process.env.UV_THREADPOOL_SIZE) || 4);
    expect(pool).not.toContain(me);
  });

  it('does not take a thread that is not the pool (a worker blocked while the probe runs) for it', async () => {
    await stat('.');
    const before = new Set(threadIds());
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const w = new Worker(
      'const { parentPort, workerData } = require("node:worker_threads"); parentPort.postMessage("waiting"); Atomics.wait(workerData, 0, 0);',
      { eval: true, workerData: flag },
    );
    try {
      await new Promise((r) => w.once('message', r));
      const started = (threadIds() as number[]).filter((t) => !before.has(t));
      expect(started.length).toBeGreaterThan(0);
      const pool = await findPoolThreads([...(threadIds() as number[])]);
      for (const t of started) expect(pool).not.toContain(t);
      expect(pool).toHaveLength(Number(process.env.UV_THREADPOOL_SIZE) || 4);
    } finally {
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
      await w.terminate();
    }
  });
});
