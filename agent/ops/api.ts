/**
 * The local HTTP API and dashboard (node:http, 127.0.0.1 by default).
 *
 *   GET  /                      the dashboard (one self-contained page, no CDN)
 *   GET  /healthz               200 while the liveness checks pass, else 503 with the reasons
 *   GET  /readyz                200 once the store is open and every source started, else 503
 *   GET  /metrics               Prometheus text format (agent/telemetry.ts)
 *   GET  /api/twin              the digital twin of every asset
 *   GET  /api/series?since=MS   recent values per sensor and anomaly markers, for charts
 *   GET  /api/status            gateway, store, sync and source status
 *   POST /api/assets/:id/ack    body {"by": "NAME"}, header `Authorization: Bearer TOKEN`;
 *                               200 {asset, state} | 400 | 401 | 404 unknown asset | 409 not tripped
 *   POST /api/control/reset     body {"by": "NAME", "detector"?: "ID"}, same token: run-time overrides
 *                               back to the config file (`edge-agent control reset`); 200 {ok, reset} | 400 | 401 | 404
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import type { ApiRoute, Telemetry } from '../telemetry.js';

const DASHBOARD = new URL('./dashboard.html', import.meta.url);

/** What the API reads from the running service; swapped atomically on reload. */
export interface ApiBackend {
  liveness(): { ok: boolean; reasons: readonly string[] };
  readiness(): { ready: boolean; reasons: readonly string[] };
  metrics(): Promise<string>;
  twin(): unknown;
  series(since: number): unknown;
  status(): unknown | Promise<unknown>;
  /** The bearer token, or undefined when acknowledging over the API is disabled. */
  token(): string | undefined;
  hasAsset(asset: string): boolean;
  /** Unlatches the asset's trip; returns the new machine state, or undefined when it was not tripped. */
  ack(asset: string, by: string): string | undefined;
  /** Returns detectors (all when undefined) to the config file's values. */
  controlReset?(detector: string | undefined, by: string): { ok: boolean; error?: string; reset?: readonly string[] };
}

export interface ApiOptions {
  readonly listen: string;
  readonly backend: ApiBackend;
  readonly logger: Logger;
  readonly telemetry: Telemetry;
}

export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(i + 1)) };
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time comparison of the presented bearer token with the configured one. */
export function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return !!m && timingSafeEqual(digest(m[1] as string), digest(token));
}

export class ApiServer {
  private server: Server | undefined;
  private readonly page: Buffer;

  constructor(private readonly opts: ApiOptions) {
    this.page = readFileSync(DASHBOARD);
  }

  /** Listens; rejects (with the address in the message) when the port is taken. */
  async start(): Promise<AddressInfo> {
    const { host, port } = parseListen(this.opts.listen);
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        this.opts.logger.warn({ err: err.message, url: req.url?.split('?')[0] }, 'API request failed');
        if (!res.headersSent) this.json(res, 'other', 500, { error: 'internal error' });
        else res.end();
      });
    });
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`cannot listen on ${this.opts.listen}: ${err.message}`, { cause: err })));
      server.listen({ host, port }, resolve);
    });
    this.server = server;
    const addr = server.address() as AddressInfo;
    this.opts.logger.info({ listen: `${addr.address}:${addr.port}` }, 'API and dashboard listening');
    return addr;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  private json(res: ServerResponse, route: ApiRoute, code: number, body: unknown, headers: Record<string, string> = {}): void {
    const data = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
    res.end(data);
    this.opts.telemetry.apiRequests.inc({ route, code: `${Math.floor(code / 100)}xx` });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const b = this.opts.backend;
    const method = req.method ?? 'GET';
    const ack = /^\/api\/assets\/([^/]+)\/ack$/.exec(path);
    if (ack) {
      if (method !== 'POST') return this.json(res, 'ack', 405, { error: 'use POST' }, { allow: 'POST' });
      return this.ack(req, res, decodeURIComponent(ack[1] as string));
    }
    if (path === '/api/control/reset') {
      if (method !== 'POST') return this.json(res, 'other', 405, { error: 'use POST' }, { allow: 'POST' });
      return this.controlReset(req, res);
    }
    if (method !== 'GET' && method !== 'HEAD')
      return this.json(res, 'other', 405, { error: 'method not allowed' }, { allow: 'GET' });
    switch (path) {
      case '/':
      case '/index.html':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' });
        res.end(this.page);
        this.opts.telemetry.apiRequests.inc({ route: 'dashboard', code: '2xx' });
        return;
      case '/healthz': {
        const l = b.liveness();
        return this.json(res, 'healthz', l.ok ? 200 : 503, { status: l.ok ? 'ok' : 'failing', reasons: l.reasons });
      }
      case '/readyz': {
        const r = b.readiness();
        return this.json(res, 'readyz', r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', reasons: r.reasons });
      }
      case '/metrics': {
        const text = await b.metrics();
        res.writeHead(200, { 'content-type': this.opts.telemetry.contentType });
        res.end(text);
        this.opts.telemetry.apiRequests.inc({ route: 'metrics', code: '2xx' });
        return;
      }
      case '/api/twin':
        return this.json(res, 'twin', 200, b.twin());
      case '/api/series': {
        const since = Number(url.searchParams.get('since') ?? 0);
        return this.json(res, 'series', 200, b.series(Number.isFinite(since) ? since : 0));
      }
      case '/api/status':
        return this.json(res, 'status', 200, await b.status());
      default:
        return this.json(res, 'other', 404, { error: 'not found' });
    }
  }

  /** For routes outside this class. */
  reply(res: ServerResponse, code: number, body: unknown): void {
    this.json(res, 'other', code, body);
  }

  private controlReset(req: IncomingMessage, res: ServerResponse): Promise<void> {
    return controlResetRoute(this, req, res, this.opts.backend);
  }

  private async ack(req: IncomingMessage, res: ServerResponse, asset: string): Promise<void> {
    const b = this.opts.backend;
    const token = b.token();
    const challenge = { 'www-authenticate': 'Bearer realm="edge-agent"' };
    if (!token)
      return this.json(
        res,
        'ack',
        401,
        {
          error:
            'acknowledging over the API is disabled: no token configured (set api.token from the environment, e.g. EDGE_API_TOKEN, or api.token_file, or the systemd credential "api-token")',
        },
        challenge,
      );
    if (!tokenMatches(req.headers.authorization, token))
      return this.json(res, 'ack', 401, { error: 'missing or wrong bearer token' }, challenge);
    let body: { by?: unknown };
    try {
      body = JSON.parse((await readBody(req, 4096)) || '{}') as { by?: unknown };
    } catch (err) {
      return this.json(res, 'ack', 400, { error: `body must be JSON {"by": "NAME"}: ${(err as Error).message}` });
    }
    const by = typeof body?.by === 'string' ? body.by.trim() : '';
    if (!by || by.length > 64)
      return this.json(res, 'ack', 400, { error: '"by" must name the person acknowledging (1-64 characters)' });
    if (!b.hasAsset(asset)) return this.json(res, 'ack', 404, { error: `unknown asset "${asset}"` });
    const state = b.ack(asset, by);
    if (state === undefined) return this.json(res, 'ack', 409, { error: `asset "${asset}" is not tripped`, asset });
    return this.json(res, 'ack', 200, { asset, state });
  }
}

/** `edge-agent control reset`: authenticated like an acknowledgement; returning to the file never weakens protection. */
async function controlResetRoute(api: ApiServer, req: IncomingMessage, res: ServerResponse, backend: ApiBackend): Promise<void> {
  const json = (code: number, body: unknown) => api.reply(res, code, body);
  const token = backend.token();
  if (!token || !tokenMatches(req.headers.authorization, token))
    return json(401, {
      error: token ? 'missing or wrong bearer token' : 'no API token configured: the API cannot reset overrides',
    });
  let body: { by?: unknown; detector?: unknown };
  try {
    body = JSON.parse((await readBody(req, 4096)) || '{}') as typeof body;
  } catch (err) {
    return json(400, { error: `body must be JSON {"by": "NAME", "detector"?: "ID"}: ${(err as Error).message}` });
  }
  const by = typeof body?.by === 'string' ? body.by.trim() : '';
  if (!by || by.length > 64) return json(400, { error: '"by" must name the person resetting (1-64 characters)' });
  if (body.detector !== undefined && typeof body.detector !== 'string')
    return json(400, { error: '"detector" must be a string' });
  const r = backend.controlReset?.(body.detector, by) ?? { ok: false, error: 'agent not running' };
  return json(r.ok ? 200 : /unknown detector/.test(r.error ?? '') ? 404 : 409, r);
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new Error(`larger than ${limit} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
