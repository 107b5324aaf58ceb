/**
 * `edge-agent run` as a service: the agent plus the local API, the twin, telemetry, the systemd
 * notify protocol and signals.
 *
 * - READY=1 once the store is open, every driver started (or is retrying under its supervisor) and
 *   the API listens. WATCHDOG=1 from the liveness check (agent/ops/liveness.ts), when $WATCHDOG_USEC is set.
 * - SIGHUP reloads the config file. The new config is validated first; a bad one is rejected with
 *   every problem logged and the running agent keeps going. An unchanged one changes nothing.
 *   A change to `api` or `log` alone is applied in place; any other change restarts the agent's
 *   components with the new config (the store is closed and reopened: nothing is lost, and latched
 *   trips are read back).
 * - SIGTERM/SIGINT: STOPPING=1, close the API, then the agent in order: stop drivers, flush detectors
 *   and windows, commit the store (and close Kafka, when present). Exit 0.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Agent } from '../agent.js';
import { formatConfigError } from '../config/load.js';
import type { AgentConfig, ApiConfig } from '../config/schema.js';
import { safetyWarnings } from '../config/semantic.js';
import { createLogger, type Logger } from '../log.js';
import { openDb } from '../store/db.js';
import { activeTrips } from '../store/queries.js';
import { Telemetry, type TelemetrySnapshot } from '../telemetry.js';
import { type ApiBackend, ApiServer } from './api.js';
import { AssetEventLog } from './events.js';
import { HelperThreads } from './helper-threads.js';
import { Liveness } from './liveness.js';
import { loadConfigIsolated } from './load-config.js';
import { createNotifier, type Notifier, watchdogTimeoutMs } from './sd-notify.js';
import { TwinTracker } from './twin.js';
import { startupDone } from './young-gen.js';

export const EX_CONFIG = 78;

interface Generation {
  readonly config: AgentConfig;
  readonly agent: Agent;
  readonly twin: TwinTracker;
  readonly events: AssetEventLog;
  readonly startedAt: number;
}

/** Where the ack token comes from: api.token, then api.token_file, then the systemd credential "api-token". */
export function resolveToken(
  api: Partial<ApiConfig>,
  env: NodeJS.ProcessEnv,
): { token: string | undefined; source: 'config' | 'file' | 'credential' | 'none'; error?: string } {
  if (api.token?.trim()) return { token: api.token.trim(), source: 'config' };
  const file = api.token_file ?? (env.CREDENTIALS_DIRECTORY ? join(env.CREDENTIALS_DIRECTORY, 'api-token') : undefined);
  if (!file) return { token: undefined, source: 'none' };
  try {
    const token = readFileSync(file, 'utf8').trim();
    if (token) return { token, source: api.token_file ? 'file' : 'credential' };
    return { token: undefined, source: 'none', error: `${file} is empty` };
  } catch (err) {
    if (!api.token_file && (err as NodeJS.ErrnoException).code === 'ENOENT') return { token: undefined, source: 'none' };
    return { token: undefined, source: 'none', error: `cannot read ${file}: ${(err as Error).message}` };
  }
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const withoutOps = (c: AgentConfig) => ({
  ...c,
  api: undefined,
  log: undefined,
  gateway: { ...c.gateway, helper_nice: undefined },
});

export class Service {
  private gen: Generation | undefined;

  /** The running agent (undefined while stopped or between reload generations). */
  get agent(): Agent | undefined {
    return this.gen?.agent;
  }
  private api: ApiServer | undefined;
  /** Where the API listens (undefined when disabled or not listening). */
  apiAddress: AddressInfo | undefined;
  private token: string | undefined;
  private readonly telemetry = new Telemetry();
  private readonly notifier: Notifier;
  private readonly liveness: Liveness;
  private reloading: Promise<void> | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  private readonly startedAt = Date.now();
  private readonly helpers: HelperThreads;

  constructor(
    private config: AgentConfig,
    private readonly file: string,
    private readonly logger: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.notifier = createNotifier(logger.child({ component: 'systemd' }), env);
    this.helpers = new HelperThreads(config.gateway.helper_nice, logger.child({ component: 'threads' }));
    const watchdog = watchdogTimeoutMs(env);
    const budget = watchdog ?? 30_000;
    this.liveness = new Liveness({
      intervalMs: watchdog ? Math.max(50, watchdog / 3) : 5000,
      maxLagMs: budget / 2,
      storeStallMs: Math.max(budget, 10_000),
      store: () =>
        this.gen ? { backlog: this.gen.agent.store.backlog, persisted: this.gen.agent.store.stats.persisted } : undefined,
      ...(watchdog ? { ping: () => this.notifier.notify('WATCHDOG=1') } : {}),
      logger: logger.child({ component: 'liveness' }),
      telemetry: this.telemetry,
    });
  }

  private async startGeneration(config: AgentConfig): Promise<Generation> {
    const agent = await Agent.create(config, { logger: this.logger });
    const twin = new TwinTracker(config, {
      emit: (ev) => agent.store.append(ev),
      isTripped: (asset) => agent.interlocks.state(asset) === 'tripped',
      modelVersion: (asset) => agent.modelVersion(asset),
      learning: (asset) => agent.learned.views(asset),
      detector: (id) => {
        const d = agent.pipeline.detector(id);
        return d ? { config: d.config, settings: agent.control.settings(id) } : undefined;
      },
    });
    const events = new AssetEventLog(config);
    agent.model?.onInference((seconds) => this.telemetry.inferenceLatency.observe(seconds));
    if (agent.journal) agent.journal.onSynced = (seconds) => this.telemetry.journalSyncLatency.observe(seconds);
    agent.control.listeners.push((id) => twin.settingsChanged(id));
    agent.sensorTaps.push({ batch: (b) => twin.onReadings(b), one: (slot, r) => twin.onReading(slot, r) });
    agent.eventTaps.push(
      (ev) => twin.onEvent(ev),
      (ev) => events.onEvent(ev),
      (ev) => this.telemetry.onEvent(ev),
    );
    const path = config.store.path;
    if (path !== ':memory:' && existsSync(path)) {
      try {
        const db = openDb(path, 'NORMAL', true);
        try {
          twin.restoreTrips(activeTrips(db));
          events.seed(db);
        } finally {
          db.close();
        }
      } catch (err) {
        // A corrupt store is quarantined by agent.start(); the twin starts without the old trips.
        this.logger.warn({ err: (err as Error).message }, 'cannot read trips for the twin from the store');
      }
    }
    await agent.start();
    twin.start(config.twin.interval);
    return { config, agent, twin, events, startedAt: Date.now() };
  }

  private async stopGeneration(g: Generation): Promise<void> {
    g.twin.stop();
    g.twin.publishAll();
    await g.agent.stop();
  }

  private async startApi(api: ApiConfig): Promise<void> {
    const resolved = resolveToken(api, this.env);
    if (resolved.error)
      this.logger.error({ err: resolved.error }, 'API token unreadable; acknowledging over the API is disabled');
    else if (!resolved.token && api.enabled && api.users.length === 0)
      this.logger.warn(
        'no API token configured: the dashboard and API are read-only (set EDGE_API_TOKEN, api.token_file or api.users)',
      );
    this.token = resolved.token;
    if (!api.enabled) return;
    try {
      const server = new ApiServer({
        config: api,
        backend: this.backend(),
        logger: this.logger.child({ component: 'api' }),
        telemetry: this.telemetry,
      });
      this.apiAddress = await server.start();
      this.api = server;
    } catch (err) {
      // The API is for people; protection of the machines does not depend on it.
      this.logger.error({ err: (err as Error).message }, 'local API and dashboard unavailable; the agent keeps running');
    }
  }

  async start(): Promise<void> {
    this.gen = await this.startGeneration(this.config);
    await this.helpers.start();
    this.auditConfig('config_loaded', this.config);
    await this.startApi(this.config.api);
    this.telemetry.startSampler(() => this.snapshot());
    this.liveness.start();
    this.notifier.notify(`READY=1\nSTATUS=${this.statusLine()}\nMAINPID=${process.pid}`);
    this.logger.info({ notify: this.notifier.transport, watchdog_ms: watchdogTimeoutMs(this.env) ?? null }, 'service ready');
    this.watchStatus();
  }

  /**
   * A config takes effect: its safety warnings (agent/config/semantic.ts, as `edge-agent validate` prints
   * them) are logged, and an audit event records the change with them, so a reload that weakens
   * protection leaves a trace beside the trips it affects.
   */
  private auditConfig(type: 'config_loaded' | 'config_reloaded', config: AgentConfig): void {
    const warnings = safetyWarnings(config).map((w) => `${w.path.join('.')}: ${w.message}`);
    for (const w of warnings) this.logger.warn({ file: this.file, warning: w }, 'config weakens protection');
    const at = Date.now();
    this.gen?.agent.store.append({
      kind: 'audit',
      key: config.gateway.id,
      eventTime: at,
      payload: { type, file: this.file, at, warnings },
    });
  }

  private statusLine(): string {
    const tripped = this.gen?.agent.interlocks.tripped() ?? [];
    const degraded = this.degradation();
    return `running; ${tripped.length ? `tripped: ${tripped.join(', ')}` : 'no trips'}${degraded.length ? `; DEGRADED: ${degraded.join('; ')}` : ''}`;
  }

  /**
   * What keeps the agent from being fully ready although it protects the machines: an event store that
   * cannot be opened or written (events held in the bounded memory buffer), an unusable latch journal.
   */
  private degradation(): string[] {
    const g = this.gen;
    if (!g) return [];
    const out: string[] = [];
    const st = g.agent.store.stats;
    if (st.degraded || st.failing)
      out.push(
        `event store ${st.degraded ? 'cannot be opened' : 'cannot be written'} (${st.lastError ?? 'unknown error'}); interlocks keep protecting the machines, ${g.agent.store.backlog} events held in memory`,
      );
    if (g.agent.journalError) out.push(`latch journal unusable (${g.agent.journalError}); trips may not survive a crash`);
    return out;
  }

  /** Keeps the STATUS= line current while the store degrades or recovers (only changes are sent). */
  private watchStatus(): void {
    let last = this.statusLine();
    this.statusTimer = setInterval(() => {
      const line = this.statusLine();
      if (line === last) return;
      last = line;
      this.notifier.notify(`STATUS=${line}`);
    }, 2000);
    this.statusTimer.unref();
  }

  /** SIGHUP. Never throws; concurrent reloads are coalesced. */
  reload(): Promise<void> {
    if (this.stopping) return Promise.resolve();
    this.reloading ??= this.doReload().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  private async doReload(): Promise<void> {
    const res = await loadConfigIsolated(this.file, this.env);
    if (!res.ok) {
      this.telemetry.reloads.inc({ result: 'rejected' });
      this.logger.error(
        { file: this.file, problems: res.errors.map(formatConfigError) },
        `config reload rejected (${res.errors.length} problem(s)); the running config stays in force`,
      );
      return;
    }
    const next = res.config;
    if (sameJson(next, this.config)) {
      this.telemetry.reloads.inc({ result: 'unchanged' });
      this.logger.info({ file: this.file }, 'config reload: unchanged');
      return;
    }
    this.notifier.notify(`RELOADING=1\nMONOTONIC_USEC=${Math.round(performance.timeOrigin * 1000 + performance.now() * 1000)}`);
    const old = this.config;
    try {
      if (!sameJson(withoutOps(next), withoutOps(old))) await this.swapAgent(next);
      // After a swap: the new generation's worker threads are lowered now, not at the next sweep.
      await this.helpers.configure(next.gateway.helper_nice);
      this.config = next;
      this.logger.level = next.log.level;
      if (!sameJson(next.api, old.api)) {
        await this.api?.stop();
        this.api = undefined;
        this.apiAddress = undefined;
        await this.startApi(next.api);
      }
      this.telemetry.reloads.inc({ result: 'applied' });
      this.logger.info({ file: this.file }, 'config reloaded');
      this.auditConfig('config_reloaded', next);
    } catch (err) {
      this.telemetry.reloads.inc({ result: 'failed' });
      this.logger.error({ err: (err as Error).message }, 'config reload failed; see the previous lines for what runs now');
    } finally {
      this.notifier.notify(`READY=1\nSTATUS=${this.statusLine()}`);
    }
  }

  /** Builds the new agent before stopping the old one, so a driver that refuses the config changes nothing. */
  private async swapAgent(next: AgentConfig): Promise<void> {
    const old = this.gen;
    if (!old) return;
    // init() only: validates drivers without I/O. Then stop the old agent and start the new.
    await Agent.create(next, { logger: this.logger });
    this.gen = undefined;
    await this.stopGeneration(old);
    try {
      this.gen = await this.startGeneration(next);
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'new config failed to start; restarting the previous config');
      this.gen = await this.startGeneration(old.config);
      throw err;
    }
  }

  /** Ordered shutdown. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.statusTimer) clearInterval(this.statusTimer);
      this.notifier.notify('STOPPING=1\nSTATUS=stopping');
      await this.reloading;
      await this.api?.stop();
      this.telemetry.stopSampler();
      this.helpers.stop();
      if (this.gen) await this.stopGeneration(this.gen);
      this.liveness.stop();
      this.notifier.close();
    })();
    return this.stopping;
  }

  private snapshot(): TelemetrySnapshot | undefined {
    const g = this.gen;
    if (!g) return undefined;
    return {
      generation: g,
      pipeline: g.agent.pipeline.counters,
      detectorsSkipped: g.agent.pipeline.detectorsSkipped(),
      sources: g.agent.sourceCounters.values(),
      store: g.agent.store.stats,
      storeBacklog: g.agent.store.backlog,
      storePath: g.config.store.path,
      trippedAssets: g.agent.interlocks.tripped().length,
      devices: g.agent.devices,
      control: g.agent.control.counters,
      ...(g.agent.model ? { model: g.agent.model.counters as unknown as Record<string, number> } : {}),
      ...(g.agent.journal ? { journal: g.agent.journal.stats } : {}),
      ...(g.agent.sync ? { sync: g.agent.sync.snapshot() } : {}),
    };
  }

  private readiness(): { ready: boolean; degraded: boolean; reasons: string[] } {
    const reasons: string[] = [];
    const g = this.gen;
    if (this.stopping) reasons.push('stopping');
    if (!g) reasons.push('agent not running (starting or reloading)');
    else for (const s of g.agent.sourceStates()) if (!s.started) reasons.push(`source ${s.id} not started (retrying)`);
    const degraded = this.degradation();
    reasons.push(...degraded);
    return { ready: reasons.length === 0, degraded: degraded.length > 0, reasons };
  }

  private backend(): ApiBackend {
    return {
      liveness: () => this.liveness.last,
      readiness: () => this.readiness(),
      metrics: async () => {
        const s = this.snapshot();
        if (s) this.telemetry.refresh(s);
        return this.telemetry.metrics();
      },
      twin: () => ({
        gateway: this.config.gateway.id,
        generated_at: Date.now(),
        assets: this.gen?.twin.snapshot() ?? [],
        devices: this.gen?.agent.devices.map((d) => d.view()) ?? [],
      }),
      series: (since) => ({ generated_at: Date.now(), assets: this.gen?.twin.series(since) ?? [] }),
      events: (asset, limit) => {
        const log = this.gen?.events;
        if (asset !== undefined) return log?.list(asset, limit);
        return Object.fromEntries(this.config.assets.map((a) => [a.id, log?.list(a.id, limit) ?? []]));
      },
      status: () => this.status(),
      token: () => this.token,
      hasAsset: (asset) => this.config.assets.some((a) => a.id === asset),
      ack: (asset, by, via) => {
        const g = this.gen;
        if (!g) return { ok: false, reason: 'not_tripped', error: 'agent not running (starting or reloading)' };
        const res = g.agent.interlocks.ack(asset, by, via);
        if (res.ok) this.notifier.notify(`STATUS=${this.statusLine()}`);
        return res;
      },
      controlReset: (detector, by) => this.gen?.agent.control.reset(detector, by) ?? { ok: false, error: 'agent not running' },
    };
  }

  private status(): unknown {
    const g = this.gen;
    const gauge = (m: { get(): Promise<{ values: Array<{ value: number }> }> }) =>
      m.get().then((v) => v.values[0]?.value ?? null);
    const t = this.telemetry;
    const snap = this.snapshot();
    if (snap) t.refresh(snap);
    return Promise.all([gauge(t.syncLagEvents), gauge(t.syncLagSeconds), gauge(t.syncLastSuccess), gauge(t.storeBytes)]).then(
      ([lagEvents, lagSeconds, lastSuccess, bytes]) => ({
        gateway: this.config.gateway.id,
        site: this.config.gateway.site ?? null,
        uptime_s: Math.round((Date.now() - this.startedAt) / 1000),
        ready: this.readiness(),
        health: this.liveness.last,
        ack_enabled: this.token !== undefined || this.config.api.users.length > 0,
        sources: g?.agent.sourceStates() ?? [],
        pipeline: g ? { readings: g.agent.pipeline.counters.readings, anomalies: g.agent.pipeline.counters.anomalies } : null,
        store: g
          ? {
              path: g.config.store.path,
              backlog: g.agent.store.backlog,
              accepted: g.agent.store.stats.accepted,
              persisted: g.agent.store.stats.persisted,
              last_seq: g.agent.store.stats.lastSeq,
              write_errors: g.agent.store.stats.writeErrors,
              last_error: g.agent.store.stats.lastError ?? null,
              bytes,
            }
          : null,
        control: g
          ? {
              applied: g.agent.control.counters.applied,
              rejected: g.agent.control.counters.rejected,
              rejected_by_reason: g.agent.control.counters.byReason,
              overrides: g.agent.control.overridesView(),
            }
          : null,
        // Fed by the Kafka sync through the telemetry gauges; null/0 until a sync is configured.
        sync: {
          configured: g?.config.sync.kafka !== undefined,
          lag_events: lagEvents,
          lag_seconds: lagSeconds,
          last_success: lastSuccess ? lastSuccess * 1000 : null,
        },
      }),
    );
  }
}

/** `edge-agent run`: loads the config (exit 78 when invalid), runs until SIGTERM/SIGINT, reloads on SIGHUP. */
export async function runService(file: string): Promise<void> {
  const res = await loadConfigIsolated(file);
  if (!res.ok) {
    for (const e of res.errors) process.stderr.write(`${formatConfigError(e)}\n`);
    process.stderr.write(`${res.errors.length} problem(s) in ${file}\n`);
    process.exit(EX_CONFIG);
  }
  const logger = createLogger(res.config.log.level);
  const service = new Service(res.config, file, logger);
  process.on('SIGHUP', () => {
    logger.info({ file }, 'SIGHUP: reloading the config');
    void service.reload();
  });
  // A terminal's Ctrl-C reaches every process of the foreground group, and a wrapper (npm, tsx) relays
  // it too, so one keypress can arrive twice within milliseconds: only a signal more than a second
  // after the first means "stop waiting".
  let firstSignalAt = 0;
  const shutdown = (signal: string) => {
    if (firstSignalAt > 0) {
      if (Date.now() - firstSignalAt < 1000) return;
      logger.warn({ signal }, 'second signal: exiting without waiting');
      logger.flush();
      process.exit(1);
    }
    firstSignalAt = Date.now();
    logger.info({ signal }, 'shutting down');
    service.stop().then(
      () => {
        logger.flush();
        process.exit(0);
      },
      (err: Error) => {
        logger.error({ err: err.message }, 'shutdown failed; events not yet written may be lost');
        logger.flush();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  try {
    await service.start();
    startupDone();
  } catch (err) {
    logger.error({ err: (err as Error).message }, 'agent failed to start');
    await service.stop().catch(() => {});
    logger.flush();
    process.exit(1);
  }
}
