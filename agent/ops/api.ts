/**
 * The local HTTP(S) API and dashboard (node:http or node:https, 127.0.0.1 by default).
 *
 *   GET  /                      the dashboard (one self-contained page, no CDN)
 *   GET  /healthz               200 while the liveness checks pass, else 503 with the reasons
 *   GET  /readyz                200 once the store is open and every source started, else 503 (status
 *                               "degraded" when the store or latch journal is unusable: still protecting)
 *   GET  /metrics               Prometheus text format (agent/telemetry.ts)
 *   GET  /api/twin              the digital twin of every asset
 *   GET  /api/series?since=MS   recent values per sensor and anomaly markers, for charts
 *   GET  /api/events[?asset=ID] recent notable events per asset (anomalies, trips, acks, control, faults)
 *   GET  /api/status            gateway, store, sync and source status
 *   GET  /api/session           who is logged in, the CSRF token, whether reading needs a login
 *   POST /api/login             body {"token", "name"?}: sets the session cookie; 401 | 429 (rate limited)
 *   POST /api/logout            ends the session
 *   POST /api/assets/:id/ack    body {"by": "NAME"}: 200 {ok, asset, state[, deferred, raised]} | 400 | 401 |
 *                               403 | 404 | 409 {ok: false, error, raised: [{detector, sensor}]} while a tripping
 *                               condition holds (contract C), or 409 {ok: false, error} when not tripped
 *   POST /api/control/reset     body {"by": "NAME", "detector"?: "ID"}: run-time overrides back to the
 *                               config file (`edge-agent control reset`); 200 {ok, reset} | 400 | 401 | 403 | 404 | 409
 *
 * Security, on every request, in this order:
 * 1. Host allow-list (localhost, 127.0.0.1, [::1], the listen address, `api.allowed_hosts`): anything
 *    else is 403, also on loopback, so a page on another site cannot read the API through DNS rebinding.
 * 2. Who is asking: `Authorization: Bearer TOKEN` (the API token or a user's token; for tools and the
 *    CLI, no CSRF check since a browser never sends it by itself), or the session cookie set by
 *    /api/login (HttpOnly, Secure, SameSite=Strict, `__Host-` prefix).
 * 3. Every POST with a session cookie carries `X-CSRF-Token` equal to the session's token, and an
 *    `Origin`, when present, must be one of the allowed hosts. Bodies must be JSON.
 * 4. Failed logins and wrong bearer tokens are counted per client address; past
 *    `api.login_max_failures` within `api.login_window` the address gets 429 without the token being checked.
 * 5. Reading without login only when `api.public_read` (default: only on a loopback listen address).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { ApiConfig } from '../config/schema.js';
import { type Logger, RateLimitedLog } from '../log.js';
import type { ApiRoute, Telemetry } from '../telemetry.js';
import type { AckResult } from '../types.js';

const DASHBOARD = new URL('./dashboard.html', import.meta.url);
const SESSION_COOKIE = '__Host-edge_session';

/** What the API reads from the running service; swapped atomically on reload. */
export interface ApiBackend {
  liveness(): { ok: boolean; reasons: readonly string[] };
  /** `degraded`: protecting the machines, but the store (or latch journal) is not usable. */
  readiness(): { ready: boolean; degraded?: boolean; reasons: readonly string[] };
  metrics(): Promise<string>;
  twin(): unknown;
  series(since: number): unknown;
  /** Recent notable events of the asset (or of every asset, by id), newest first; undefined for an unknown asset. */
  events(asset: string | undefined, limit: number): unknown;
  status(): unknown | Promise<unknown>;
  /** The shared API token, or undefined when none is configured. */
  token(): string | undefined;
  hasAsset(asset: string): boolean;
  /** Acknowledges the asset's trip: released, deferred (reset: when_clear), or refused (contract C). */
  ack(asset: string, by: string, via: string): AckResult;
  /** Returns detectors (all when undefined) to the config file's values. */
  controlReset?(detector: string | undefined, by: string): { ok: boolean; error?: string; reset?: readonly string[] };
}

export interface ApiOptions {
  readonly config: ApiConfig;
  readonly backend: ApiBackend;
  readonly logger: Logger;
  readonly telemetry: Telemetry;
  readonly now?: () => number;
}

export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(i + 1)) };
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

const isWildcard = (host: string) => host === '0.0.0.0' || host === '::' || host === '';

/** Config problems of the `api` section (used by the semantic checks of `edge-agent validate`). */
export function apiProblems(api: ApiConfig): Array<{ path: Array<string | number>; message: string; hint?: string }> {
  if (!api.enabled) return [];
  const { host } = parseListen(api.listen);
  const problems: Array<{ path: Array<string | number>; message: string; hint?: string }> = [];
  if (!isLoopbackHost(host) && !api.tls)
    problems.push({
      path: ['api', 'tls'],
      message: `api.listen ${api.listen} is not a loopback address: the plant network needs HTTPS`,
      hint: 'set api.tls.cert_file and api.tls.key_file; README, "Opening the dashboard to the plant network"',
    });
  const seen = new Map<string, string>();
  api.users.forEach((u, i) => {
    const other = seen.get(u.token_sha256);
    if (other !== undefined)
      problems.push({
        path: ['api', 'users', i, 'token_sha256'],
        message: `"${u.name}" has the same token as "${other}": the audit could not tell them apart`,
        hint: 'give every person their own token',
      });
    seen.set(u.token_sha256, u.name);
  });
  if (isWildcard(host) && api.allowed_hosts.length === 0)
    problems.push({
      path: ['api', 'allowed_hosts'],
      message: `api.listen ${api.listen} binds every address: name the host names the dashboard is reached by`,
      hint: 'e.g. allowed_hosts: [gw-line1.plant.example, 10.20.0.15]',
    });
  return problems;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time comparison of the presented bearer token with the configured one. */
export function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return !!m && timingSafeEqual(digest(m[1] as string), digest(token));
}

interface Principal {
  /** The person, or undefined for the shared API token used by a tool (the request names them). */
  readonly name: string | undefined;
  readonly via: 'api' | 'dashboard';
}

interface Session {
  readonly id: string;
  readonly csrf: string;
  readonly name: string;
  readonly shared: boolean;
  readonly expires: number;
}

type Who = { kind: 'anonymous' } | { kind: 'bearer'; principal: Principal } | { kind: 'session'; session: Session };

/** Answer with this and stop: thrown by the checks, caught by the request handler. */
class Refusal extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const MAX_SESSIONS = 1000;
const DISABLED =
  'login and acknowledging over the API are disabled: no token configured (set api.token from the environment, e.g. EDGE_API_TOKEN, api.token_file, the systemd credential "api-token", or api.users)';

export class ApiServer {
  private server: Server | undefined;
  private readonly page: Buffer;
  private readonly csp: string;
  private readonly sessions = new Map<string, Session>();
  private readonly failures = new Map<string, number[]>();
  private readonly allowed: Set<string>;
  private readonly users: ReadonlyArray<{ name: string; sha256: Buffer }>;
  private readonly publicRead: boolean;
  private readonly tls: { cert: Buffer; key: Buffer } | undefined;
  private readonly now: () => number;
  /** Over HTTPS, browsers are told to never use plain HTTP for this name again. */
  private readonly hsts: Record<string, string>;
  private readonly rateLog: RateLimitedLog;

  /** Reads the page and the TLS files; throws (naming the file) when one is unreadable. */
  constructor(private readonly opts: ApiOptions) {
    const c = opts.config;
    this.now = opts.now ?? Date.now;
    this.rateLog = new RateLimitedLog(60_000, this.now);
    this.page = readFileSync(DASHBOARD);
    // The page's one inline script and style, allowed by hash: nothing injected runs.
    const html = this.page.toString('utf8');
    const hash = (re: RegExp) =>
      `'sha256-${createHash('sha256')
        .update((re.exec(html)?.[1] ?? '') as string)
        .digest('base64')}'`;
    this.csp = [
      "default-src 'none'",
      `script-src ${hash(/<script>([\s\S]*?)<\/script>/)}`,
      `style-src ${hash(/<style>([\s\S]*?)<\/style>/)}`,
      "connect-src 'self'",
      "img-src 'self' data:",
      "frame-ancestors 'none'",
      "form-action 'self'",
      "base-uri 'none'",
    ].join('; ');
    const { host } = parseListen(c.listen);
    this.allowed = new Set(['localhost', '127.0.0.1', '::1', ...c.allowed_hosts].map((h) => normalizeHost(h)));
    if (!isWildcard(host)) this.allowed.add(normalizeHost(host));
    this.users = c.users.map((u) => ({ name: u.name, sha256: Buffer.from(u.token_sha256, 'hex') }));
    this.publicRead = c.public_read ?? isLoopbackHost(host);
    this.tls = c.tls ? { cert: readFileSync(c.tls.cert_file), key: readFileSync(c.tls.key_file) } : undefined;
    this.hsts = this.tls ? { 'strict-transport-security': 'max-age=31536000' } : {};
  }

  /** Listens; rejects (with the address in the message) when the port is taken. */
  async start(): Promise<AddressInfo> {
    const { host, port } = parseListen(this.opts.config.listen);
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((err: Error) => {
        if (err instanceof Refusal) return this.json(res, 'other', err.code, { ok: false, error: err.message }, err.headers);
        this.opts.logger.warn({ err: err.message, url: req.url?.split('?')[0] }, 'API request failed');
        if (!res.headersSent) this.json(res, 'other', 500, { error: 'internal error' });
        else res.end();
      });
    };
    const server: Server = this.tls
      ? (createHttpsServer({ cert: this.tls.cert, key: this.tls.key, minVersion: 'TLSv1.2' }, handler) as unknown as Server)
      : createHttpServer(handler);
    server.keepAliveTimeout = 5000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(new Error(`cannot listen on ${this.opts.config.listen}: ${err.message}`, { cause: err })),
      );
      server.listen({ host, port }, resolve);
    });
    this.server = server;
    const addr = server.address() as AddressInfo;
    this.opts.logger.info(
      {
        listen: `${addr.address}:${addr.port}`,
        https: !!this.tls,
        public_read: this.publicRead,
        allowed_hosts: [...this.allowed],
      },
      'API and dashboard listening',
    );
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
    res.writeHead(code, {
      ...this.hsts,
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      ...headers,
    });
    res.end(data);
    this.opts.telemetry.apiRequests.inc({ route, code: `${Math.floor(code / 100)}xx` });
  }

  /** The Host header must name this agent (DNS rebinding: a foreign name is the attacker's page). */
  private checkHost(req: IncomingMessage): void {
    const raw = req.headers.host;
    const host = raw ? normalizeHost(raw.replace(/:\d+$/, '')) : '';
    if (!host || !this.allowed.has(host))
      throw new Refusal(
        403,
        `host "${raw ?? ''}" is not allowed: add it to api.allowed_hosts if this agent is reached by that name`,
      );
  }

  private clientKey(req: IncomingMessage): string {
    return req.socket.remoteAddress ?? 'unknown';
  }

  private checkRate(req: IncomingMessage): void {
    const c = this.opts.config;
    const list = this.failures.get(this.clientKey(req));
    if (!list) return;
    const t = this.now();
    while (list.length > 0 && (list[0] as number) <= t - c.login_window) list.shift();
    if (list.length >= c.login_max_failures) {
      const retry = Math.max(1, Math.ceil(((list[0] as number) + c.login_window - t) / 1000));
      throw new Refusal(429, `too many failed logins from this address; try again in ${retry} s`, {
        'retry-after': String(retry),
      });
    }
  }

  private noteFailure(req: IncomingMessage): void {
    const key = this.clientKey(req);
    const list = this.failures.get(key) ?? [];
    list.push(this.now());
    if (list.length > this.opts.config.login_max_failures) list.shift();
    this.failures.set(key, list);
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value as string);
    // One line per minute at most: a password-guessing run must not flood the journal.
    this.rateLog.log(this.opts.logger, 'warn', 'login-failed', { client: key }, 'API login or bearer token refused');
  }

  /** Who a presented token belongs to: the shared API token (no name) or a user. */
  private principalOf(token: string): { name: string | undefined; shared: boolean } | undefined {
    const d = digest(token);
    for (const u of this.users) if (timingSafeEqual(d, u.sha256)) return { name: u.name, shared: false };
    const shared = this.opts.backend.token();
    if (shared && timingSafeEqual(d, digest(shared))) return { name: undefined, shared: true };
    return undefined;
  }

  private loginEnabled(): boolean {
    return this.users.length > 0 || this.opts.backend.token() !== undefined;
  }

  private who(req: IncomingMessage): Who {
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      this.checkRate(req);
      const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      const p = m ? this.principalOf(m[1] as string) : undefined;
      if (!p) {
        const challenge = { 'www-authenticate': 'Bearer realm="edge-agent"' };
        if (!this.loginEnabled()) throw new Refusal(401, DISABLED, challenge);
        if (m) this.noteFailure(req);
        throw new Refusal(401, 'missing or wrong bearer token', challenge);
      }
      return { kind: 'bearer', principal: { name: p.name, via: 'api' } };
    }
    const id = cookie(req.headers.cookie, SESSION_COOKIE);
    const s = id ? this.sessions.get(id) : undefined;
    if (s && s.expires > this.now()) return { kind: 'session', session: s };
    if (s) this.sessions.delete(s.id);
    return { kind: 'anonymous' };
  }

  /** State-changing requests from a browser: the session's CSRF token, a same-site Origin, a JSON body. */
  private checkWrite(req: IncomingMessage, who: Who): void {
    const origin = req.headers.origin;
    if (origin !== undefined) {
      let host = '';
      try {
        host = normalizeHost(new URL(origin).hostname);
      } catch {}
      if (!this.allowed.has(host)) throw new Refusal(403, `cross-site request refused (Origin ${origin})`);
    }
    if (who.kind === 'bearer') return;
    // A cross-site form can only send text/plain, urlencoded or multipart bodies without a preflight.
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? ''))
      throw new Refusal(415, 'the body must be JSON (content-type: application/json)');
    if (who.kind === 'session') {
      const sent = req.headers['x-csrf-token'];
      if (typeof sent !== 'string' || !safeEqual(sent, who.session.csrf))
        throw new Refusal(403, 'missing or wrong CSRF token (X-CSRF-Token); reload the page');
    }
  }

  private canRead(who: Who): boolean {
    return this.publicRead || who.kind !== 'anonymous';
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.checkHost(req);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const b = this.opts.backend;
    const method = req.method ?? 'GET';
    const ack = /^\/api\/assets\/([^/]+)\/ack$/.exec(path);
    if (ack || path === '/api/login' || path === '/api/logout') {
      const route: ApiRoute = ack ? 'ack' : 'login';
      if (method !== 'POST') return this.json(res, route, 405, { error: 'use POST' }, { allow: 'POST' });
      if (path === '/api/login') return this.login(req, res);
      const who = this.who(req);
      if (who.kind !== 'anonymous') this.checkWrite(req, who);
      if (path === '/api/logout') {
        if (who.kind === 'session') this.sessions.delete(who.session.id);
        return this.json(
          res,
          'login',
          200,
          { ok: true },
          { 'set-cookie': `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict` },
        );
      }
      return this.ack(req, res, who, decodeURIComponent(ack?.[1] as string));
    }
    if (path === '/api/control/reset') {
      if (method !== 'POST') return this.json(res, 'other', 405, { error: 'use POST' }, { allow: 'POST' });
      const who = this.who(req);
      if (who.kind !== 'anonymous') this.checkWrite(req, who);
      return this.controlReset(req, res, who);
    }
    if (method !== 'GET' && method !== 'HEAD')
      return this.json(res, 'other', 405, { error: 'method not allowed' }, { allow: 'GET' });
    switch (path) {
      case '/':
      case '/index.html':
        res.writeHead(200, {
          ...this.hsts,
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-cache',
          'content-security-policy': this.csp,
          'x-frame-options': 'DENY',
          'x-content-type-options': 'nosniff',
          'referrer-policy': 'no-referrer',
        });
        res.end(this.page);
        this.opts.telemetry.apiRequests.inc({ route: 'dashboard', code: '2xx' });
        return;
      case '/favicon.ico':
        res.writeHead(204, { 'cache-control': 'max-age=86400' });
        res.end();
        return;
      case '/healthz': {
        const l = b.liveness();
        return this.json(res, 'healthz', l.ok ? 200 : 503, { status: l.ok ? 'ok' : 'failing', reasons: l.reasons });
      }
      case '/readyz': {
        const r = b.readiness();
        const status = r.ready ? 'ready' : r.degraded ? 'degraded' : 'not ready';
        return this.json(res, 'readyz', r.ready ? 200 : 503, { status, reasons: r.reasons });
      }
      case '/api/session': {
        const who = this.who(req);
        const s = who.kind === 'session' ? who.session : undefined;
        return this.json(res, 'login', 200, {
          user: s ? s.name : who.kind === 'bearer' ? (who.principal.name ?? null) : null,
          csrf_token: s?.csrf ?? null,
          expires_at: s?.expires ?? null,
          login_enabled: this.loginEnabled(),
          public_read: this.publicRead,
        });
      }
    }
    const who = this.who(req);
    if (!this.canRead(who))
      return this.json(
        res,
        'other',
        401,
        { error: 'log in first (or send Authorization: Bearer TOKEN)' },
        {
          'www-authenticate': 'Bearer realm="edge-agent"',
        },
      );
    switch (path) {
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
      case '/api/events': {
        const asset = url.searchParams.get('asset') ?? undefined;
        const limit = Math.min(100, Math.max(1, Number(url.searchParams.get('limit') ?? 50) || 50));
        const events = b.events(asset, limit);
        if (events === undefined) return this.json(res, 'events', 404, { error: `unknown asset "${asset}"` });
        return this.json(res, 'events', 200, asset === undefined ? { assets: events } : { asset, events });
      }
      case '/api/status':
        return this.json(res, 'status', 200, await b.status());
      default:
        return this.json(res, 'other', 404, { error: 'not found' });
    }
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.checkWrite(req, { kind: 'anonymous' });
    this.checkRate(req);
    if (!this.loginEnabled())
      return this.json(res, 'login', 401, {
        ok: false,
        error: DISABLED,
      });
    let body: Record<string, unknown>;
    try {
      body = await readJson(req);
    } catch (err) {
      return this.json(res, 'login', 400, { ok: false, error: `body must be JSON {"token", "name"}: ${(err as Error).message}` });
    }
    const token = typeof body.token === 'string' ? body.token : '';
    const p = token ? this.principalOf(token) : undefined;
    if (!p) {
      this.noteFailure(req);
      return this.json(res, 'login', 401, { ok: false, error: 'wrong token' });
    }
    const name = p.name ?? (typeof body.name === 'string' ? body.name.trim() : '');
    if (!name || name.length > 64)
      return this.json(res, 'login', 400, { ok: false, error: 'with the shared API token, give your name (1-64 characters)' });
    const ttl = this.opts.config.session_ttl;
    const session: Session = {
      id: randomBytes(32).toString('base64url'),
      csrf: randomBytes(32).toString('base64url'),
      name,
      shared: p.shared,
      expires: this.now() + ttl,
    };
    this.pruneSessions();
    this.sessions.set(session.id, session);
    this.failures.delete(this.clientKey(req));
    this.opts.logger.info({ user: name, shared_token: p.shared, client: this.clientKey(req) }, 'dashboard login');
    return this.json(
      res,
      'login',
      200,
      { ok: true, user: name, csrf_token: session.csrf, expires_at: session.expires },
      {
        'set-cookie': `${SESSION_COOKIE}=${session.id}; Path=/; Max-Age=${Math.floor(ttl / 1000)}; HttpOnly; Secure; SameSite=Strict`,
      },
    );
  }

  private pruneSessions(): void {
    const t = this.now();
    for (const [id, s] of this.sessions) if (s.expires <= t) this.sessions.delete(id);
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string);
  }

  /** `edge-agent control reset`: authorised like an acknowledgement; returning to the file never weakens protection. */
  private async controlReset(req: IncomingMessage, res: ServerResponse, who: Who): Promise<void> {
    if (who.kind === 'anonymous')
      return this.json(
        res,
        'other',
        401,
        { ok: false, error: this.loginEnabled() ? 'log in, or send Authorization: Bearer TOKEN' : DISABLED },
        {
          'www-authenticate': 'Bearer realm="edge-agent"',
        },
      );
    let body: Record<string, unknown>;
    try {
      body = await readJson(req);
    } catch (err) {
      return this.json(res, 'other', 400, {
        ok: false,
        error: `body must be JSON {"by": "NAME", "detector"?: "ID"}: ${(err as Error).message}`,
      });
    }
    const named = who.kind === 'session' ? who.session.name : who.principal.name;
    const by = named ?? (typeof body.by === 'string' ? body.by.trim() : '');
    if (!by || by.length > 64)
      return this.json(res, 'other', 400, { ok: false, error: '"by" must name the person resetting (1-64 characters)' });
    if (body.detector !== undefined && typeof body.detector !== 'string')
      return this.json(res, 'other', 400, { ok: false, error: '"detector" must be a string' });
    const r = this.opts.backend.controlReset?.(body.detector, by) ?? { ok: false, error: 'agent not running' };
    return this.json(res, 'other', r.ok ? 200 : /unknown detector/.test(r.error ?? '') ? 404 : 409, r);
  }

  private async ack(req: IncomingMessage, res: ServerResponse, who: Who, asset: string): Promise<void> {
    const b = this.opts.backend;
    const challenge = { 'www-authenticate': 'Bearer realm="edge-agent"' };
    if (who.kind === 'anonymous') {
      if (!this.loginEnabled())
        return this.json(
          res,
          'ack',
          401,
          {
            ok: false,
            error: DISABLED,
          },
          challenge,
        );
      return this.json(res, 'ack', 401, { ok: false, error: 'log in, or send Authorization: Bearer TOKEN' }, challenge);
    }
    let body: { by?: unknown };
    try {
      body = await readJson(req);
    } catch (err) {
      return this.json(res, 'ack', 400, { ok: false, error: `body must be JSON {"by": "NAME"}: ${(err as Error).message}` });
    }
    const named = who.kind === 'session' ? who.session.name : who.principal.name;
    const by = named ?? (typeof body?.by === 'string' ? body.by.trim() : '');
    if (!by || by.length > 64)
      return this.json(res, 'ack', 400, { ok: false, error: '"by" must name the person acknowledging (1-64 characters)' });
    if (!b.hasAsset(asset)) return this.json(res, 'ack', 404, { ok: false, error: `unknown asset "${asset}"` });
    const r = b.ack(asset, by, who.kind === 'session' ? 'dashboard' : 'api');
    if (!r.ok) return this.json(res, 'ack', 409, { ok: false, error: r.error, asset, raised: 'raised' in r ? r.raised : [] });
    return this.json(res, 'ack', 200, { asset, ...r });
  }
}

function normalizeHost(h: string): string {
  return h
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '');
}

function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

function cookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const text = await readBody(req, 4096);
  const v = JSON.parse(text || '{}') as unknown;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object');
  return v as Record<string, unknown>;
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
