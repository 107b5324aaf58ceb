/**
 * Loopback TCP proxy for chaos tests: forwards 127.0.0.1:<port> to a local
 * target and can cut live connections or refuse new ones on demand.
 *
 * For Kafka, the broker must advertise the proxy port, otherwise clients
 * bypass the proxy after the first metadata response; see startKafka's
 * `advertisedPort` option in ./kafka.ts.
 */

import { connect, createServer, type Socket } from 'node:net';
import { rng } from '../../agent/prng.js';

const LOOPBACK = new Set(['127.0.0.1', '::1']);

export type DownMode = 'reset' | 'blackhole';

export interface TcpProxy {
  readonly port: number;
  /** Currently open client connections. */
  readonly connections: number;
  /** Client connections accepted since start (including refused ones). */
  readonly accepted: number;
  /** Destroys every live connection with a TCP RST; returns how many were cut. */
  cutAll(): number;
  /**
   * While down, new connections are reset immediately ('reset', like a refused
   * connection) or accepted and never answered ('blackhole', like a dead link).
   * Going up again drops black-holed connections.
   */
  setDown(down: boolean, mode?: DownMode): void;
  /**
   * A half-open link: live connections stop forwarding in both directions without closing (no FIN, no
   * RST: a cable pulled behind a switch), and new connections are black-holed. `stall(false)` forwards
   * again and lets new connections through.
   */
  stall(on: boolean): void;
  close(): Promise<void>;
}

export interface ProxyOptions {
  targetPort: number;
  targetHost?: string;
  /** Listen port; 0 (default) picks a free one. */
  port?: number;
}

function hardClose(socket: Socket): void {
  if (socket.destroyed) return;
  // resetAndDestroy needs a connected socket; fall back to a plain destroy.
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

export async function startProxy(opts: ProxyOptions): Promise<TcpProxy> {
  const targetHost = opts.targetHost ?? '127.0.0.1';
  if (!LOOPBACK.has(targetHost)) throw new Error(`tcp-proxy only targets loopback, got ${targetHost}`);

  const pairs = new Set<{ client: Socket; upstream?: Socket }>();
  let down: DownMode | undefined;
  let accepted = 0;

  const server = createServer((client) => {
    accepted++;
    client.on('error', () => {});
    if (down === 'reset') {
      hardClose(client);
      return;
    }
    const pair: { client: Socket; upstream?: Socket } = { client };
    pairs.add(pair);
    client.once('close', () => {
      pairs.delete(pair);
      if (pair.upstream) hardClose(pair.upstream);
    });
    if (down === 'blackhole') {
      client.pause();
      return;
    }
    const upstream = connect({ host: targetHost, port: opts.targetPort });
    pair.upstream = upstream;
    upstream.on('error', () => {});
    upstream.once('close', () => hardClose(client));
    client.pipe(upstream);
    upstream.pipe(client);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('proxy has no address');

  const cutAll = () => {
    const n = pairs.size;
    for (const { client, upstream } of [...pairs]) {
      hardClose(client);
      if (upstream) hardClose(upstream);
    }
    pairs.clear();
    return n;
  };

  return {
    port: address.port,
    get connections() {
      return pairs.size;
    },
    get accepted() {
      return accepted;
    },
    cutAll,
    stall(on) {
      for (const { client, upstream } of pairs) {
        if (!upstream) continue;
        if (on) {
          client.unpipe(upstream);
          upstream.unpipe(client);
          client.pause();
          upstream.pause();
        } else {
          client.pipe(upstream);
          upstream.pipe(client);
          client.resume();
          upstream.resume();
        }
      }
      down = on ? 'blackhole' : undefined;
      if (!on) for (const pair of [...pairs]) if (!pair.upstream) hardClose(pair.client);
    },
    setDown(isDown, mode = 'reset') {
      const wasBlackhole = down === 'blackhole';
      down = isDown ? mode : undefined;
      if (!isDown && wasBlackhole) {
        for (const pair of [...pairs]) if (!pair.upstream) hardClose(pair.client);
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        cutAll();
        server.close(() => resolve());
      }),
  };
}

export interface FlapperOptions {
  /** Random wait between disruptions, uniform in [minIntervalMs, maxIntervalMs]. */
  minIntervalMs?: number;
  maxIntervalMs?: number;
  /** Stop after this many disruptions. */
  maxCuts?: number;
  /** Stop after this much time. At least one of maxCuts/durationMs bounds the run (default 30 s). */
  durationMs?: number;
  /** After each cut, keep the proxy down this long (0 = cut only). */
  downMs?: number;
  downMode?: DownMode;
  /** Seed for a reproducible schedule. */
  seed?: number;
}

export interface Flapper {
  /** Disruptions performed so far. */
  readonly cuts: number;
  /** Live connections destroyed so far. */
  readonly connectionsCut: number;
  /** Resolves with the number of disruptions when the flapper finishes. */
  readonly done: Promise<number>;
  /** Ends early and leaves the proxy up. */
  stop(): Promise<number>;
}

/** Cuts the proxy's connections at random intervals, for a bounded count and time. */
export function startFlapper(proxy: TcpProxy, opts: FlapperOptions = {}): Flapper {
  const { minIntervalMs = 100, maxIntervalMs = 1000, maxCuts = Number.POSITIVE_INFINITY, downMs = 0 } = opts;
  const durationMs = opts.durationMs ?? (Number.isFinite(maxCuts) ? Number.POSITIVE_INFINITY : 30_000);
  const random = rng(opts.seed ?? Date.now());
  const deadline = Date.now() + durationMs;
  let cuts = 0;
  let connectionsCut = 0;
  let stopped = false;
  let wake: (() => void) | undefined;

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const done = (async () => {
    while (!stopped && cuts < maxCuts) {
      await pause(minIntervalMs + random() * (maxIntervalMs - minIntervalMs));
      if (stopped || Date.now() >= deadline) break;
      connectionsCut += proxy.cutAll();
      cuts++;
      if (downMs > 0) {
        proxy.setDown(true, opts.downMode);
        await pause(downMs);
        proxy.setDown(false);
      }
    }
    proxy.setDown(false);
    return cuts;
  })();

  return {
    get cuts() {
      return cuts;
    },
    get connectionsCut() {
      return connectionsCut;
    },
    done,
    stop() {
      stopped = true;
      wake?.();
      return done;
    },
  };
}
