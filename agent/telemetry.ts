/**
 * The telemetry catalog: every metric the agent exposes on /metrics is declared here, once.
 * Labels come from bounded enums only (qualities, severities, event kinds, result classes), never
 * from ids, values or error text. Hot paths never touch a metric: they sum into plain counters
 * (pipeline, sources, store) and `refresh()` publishes the deltas when /metrics is scraped or the
 * slow sampler runs. Gateway resources (CPU, memory, disk, temperature) are sampled on a slow timer.
 */
import { stat, statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { SourceCounter } from './driver.js';
import { DEVICE_ERROR_KINDS, DEVICE_LATENCY_BUCKETS, DEVICE_STATUSES, type DeviceHealth } from './health.js';
import { GatewaySampler } from './ops/gateway-resources.js';
import type { PipelineCounters } from './pipeline.js';
import type { StoreStats } from './store/store.js';
import { type AgentEvent, EVENT_KINDS, QUALITIES } from './types.js';

export const SOURCE_PROBLEMS = ['errors', 'malformed', 'reconnects', 'dropped'] as const satisfies readonly SourceCounter[];
export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export const ANOMALY_STATES = ['raised', 'cleared'] as const;
export const ACTION_RESULTS = ['ok', 'failed'] as const;
export const WATCHDOG_WITHHELD = ['event_loop', 'store'] as const;
export const REJECT_REASONS = ['late', 'future', 'untrusted_clock', 'out_of_order'] as const;
export const RELOAD_RESULTS = ['applied', 'unchanged', 'rejected', 'failed'] as const;
export const API_ROUTES = [
  'healthz',
  'readyz',
  'metrics',
  'twin',
  'series',
  'status',
  'events',
  'login',
  'ack',
  'dashboard',
  'other',
] as const;
export type ApiRoute = (typeof API_ROUTES)[number];

/** What `refresh()` reads from the running agent. A new `generation` (after a reload) restarts the deltas. */
export interface TelemetrySnapshot {
  readonly generation: object;
  readonly pipeline: PipelineCounters;
  readonly sources: Iterable<Readonly<Record<SourceCounter, number>>>;
  readonly store: Readonly<StoreStats>;
  readonly storeBacklog: number;
  readonly storePath: string;
  readonly trippedAssets: number;
  /** Every device behind the sources (configured ids only). */
  readonly devices?: readonly DeviceHealth[];
  /** The control plane's counters. */
  readonly control?: {
    readonly applied: number;
    readonly rejected: number;
    readonly byReason: Readonly<Partial<Record<string, number>>>;
  };
  /** The on-device model's counters, when a model is configured. */
  readonly model?: Readonly<Record<string, number>>;
  /** Inputs the detectors skipped because they were older than the last one each judged. */
  readonly detectorsSkipped?: number;
  /** The latch journal's counters, when there is one. */
  readonly journal?: { readonly records: number; readonly syncs: number; readonly errors: number };
  /** The Kafka sync, when configured. */
  readonly sync?: {
    readonly lagEvents: number;
    readonly lagSeconds: number;
    readonly lastSuccess: number;
    /** Unexpected exits of the sync process (each followed by a restart). */
    readonly restarts?: number;
  };
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Telemetry {
  readonly registry = new Registry();
  private readonly r = [this.registry];

  // Ingest and detection
  readonly readings = new Counter({
    name: 'edge_agent_readings_total',
    help: 'Readings accepted by the pipeline, by quality',
    labelNames: ['quality'],
    registers: this.r,
  });
  readonly unknownSensor = new Counter({
    name: 'edge_agent_readings_unknown_sensor_total',
    help: 'Readings for a sensor that is not in the config (dropped)',
    registers: this.r,
  });
  readonly ingestRate = new Gauge({
    name: 'edge_agent_ingest_readings_per_second',
    help: 'Readings per second over the last sampling interval',
    registers: this.r,
  });
  readonly sourceProblems = new Counter({
    name: 'edge_agent_source_problems_total',
    help: 'Source driver problems by kind, summed over all sources',
    labelNames: ['kind'],
    registers: this.r,
  });
  readonly anomalies = new Counter({
    name: 'edge_agent_anomalies_total',
    help: 'Anomaly state changes by severity and state',
    labelNames: ['severity', 'state'],
    registers: this.r,
  });
  readonly trips = new Counter({ name: 'edge_agent_trips_total', help: 'Assets tripped by an interlock', registers: this.r });
  readonly tripped = new Gauge({
    name: 'edge_agent_tripped_assets',
    help: 'Assets currently latched tripped',
    registers: this.r,
  });
  readonly acks = new Counter({ name: 'edge_agent_acks_total', help: 'Trips acknowledged by a person', registers: this.r });
  readonly actions = new Counter({
    name: 'edge_agent_actions_total',
    help: 'Actuator commands by result (device acknowledgement)',
    labelNames: ['result'],
    registers: this.r,
  });
  readonly actionLatency = new Histogram({
    name: 'edge_agent_action_latency_seconds',
    help: 'From sending an actuator command to the device acknowledging it',
    buckets: LATENCY_BUCKETS,
    registers: this.r,
  });
  readonly inferenceLatency = new Histogram({
    name: 'edge_agent_inference_latency_seconds',
    help: 'Model inference time per batch (to the runner and back, as the agent waits for it)',
    buckets: LATENCY_BUCKETS,
    registers: this.r,
  });

  // Store
  readonly storeBacklog = new Gauge({
    name: 'edge_agent_store_backlog_events',
    help: 'Events accepted but not yet committed to SQLite',
    registers: this.r,
  });
  readonly storePersisted = new Counter({
    name: 'edge_agent_store_events_persisted_total',
    help: 'Events committed to SQLite',
    registers: this.r,
  });
  readonly storeWriteErrors = new Counter({
    name: 'edge_agent_store_write_errors_total',
    help: 'Failed store writes (rows are kept and retried)',
    registers: this.r,
  });
  readonly storeLastSeq = new Gauge({
    name: 'edge_agent_store_last_sequence',
    help: 'Highest committed sequence number',
    registers: this.r,
  });
  readonly storeBytes = new Gauge({
    name: 'edge_agent_store_bytes',
    help: 'Size of the SQLite database and its WAL',
    registers: this.r,
  });
  readonly storeEvictions = new Counter({
    name: 'edge_agent_store_evictions_total',
    help: 'Unsent events evicted to respect the store limits, by kind',
    labelNames: ['kind'],
    registers: this.r,
  });

  // Sync (fed by the Kafka sync)
  readonly syncLagEvents = new Gauge({
    name: 'edge_agent_sync_lag_events',
    help: 'Stored events not yet acknowledged by Kafka',
    registers: this.r,
  });
  readonly syncLagSeconds = new Gauge({
    name: 'edge_agent_sync_lag_seconds',
    help: 'Age of the oldest stored event not yet acknowledged by Kafka',
    registers: this.r,
  });
  readonly syncLastSuccess = new Gauge({
    name: 'edge_agent_sync_last_success_timestamp_seconds',
    help: 'When Kafka last acknowledged a batch (0: never)',
    registers: this.r,
  });
  readonly syncRestarts = new Counter({
    name: 'edge_agent_sync_process_restarts_total',
    help: 'Unexpected exits of the Kafka sync process, each followed by a restart with backoff',
    registers: this.r,
  });

  // Gateway
  readonly cpuLoad = new Gauge({
    name: 'edge_agent_gateway_cpu_load_ratio',
    help: 'Gateway CPU load, 0-1',
    registers: this.r,
  });
  readonly memUsed = new Gauge({
    name: 'edge_agent_gateway_memory_used_bytes',
    help: 'Gateway memory in use (without caches)',
    registers: this.r,
  });
  readonly memTotal = new Gauge({ name: 'edge_agent_gateway_memory_total_bytes', help: 'Gateway memory', registers: this.r });
  readonly diskFree = new Gauge({
    name: 'edge_agent_gateway_disk_free_bytes',
    help: 'Free bytes on the filesystem of the event store',
    registers: this.r,
  });
  readonly diskTotal = new Gauge({
    name: 'edge_agent_gateway_disk_total_bytes',
    help: 'Size of the filesystem of the event store',
    registers: this.r,
  });
  readonly temperature = new Gauge({
    name: 'edge_agent_gateway_temperature_celsius',
    help: 'Gateway temperature (no series when the hardware does not report one)',
    labelNames: ['sensor'],
    registers: this.r,
  });

  // Operations
  readonly watchdogPings = new Counter({
    name: 'edge_agent_watchdog_pings_total',
    help: 'Liveness checks passed (WATCHDOG=1 sent when run by systemd)',
    registers: this.r,
  });
  readonly watchdogWithheld = new Counter({
    name: 'edge_agent_watchdog_withheld_total',
    help: 'Liveness checks failed, by reason',
    labelNames: ['reason'],
    registers: this.r,
  });
  readonly reloads = new Counter({
    name: 'edge_agent_config_reloads_total',
    help: 'SIGHUP config reloads by result',
    labelNames: ['result'],
    registers: this.r,
  });
  readonly apiRequests = new Counter({
    name: 'edge_agent_api_requests_total',
    help: 'Local API requests by route and status class',
    labelNames: ['route', 'code'],
    registers: this.r,
  });

  // Control plane, model, latch journal, pipeline rejects
  readonly controlMessages = new Counter({
    name: 'edge_agent_control_messages_total',
    help: 'Control messages applied, and refused by reason',
    labelNames: ['result', 'reason'],
    registers: this.r,
  });
  readonly modelWindows = new Counter({
    name: 'edge_agent_model_windows_total',
    help: 'Feature windows of the on-device model by outcome (offered, scored, coalesced, dropped, failed, discarded_on_swap)',
    labelNames: ['outcome'],
    registers: this.r,
  });
  readonly modelBatches = new Counter({
    name: 'edge_agent_model_batches_total',
    help: 'Inference batches by result',
    labelNames: ['result'],
    registers: this.r,
  });
  readonly modelSwaps = new Counter({
    name: 'edge_agent_model_swaps_total',
    help: 'Model files swapped in, and refused',
    labelNames: ['result'],
    registers: this.r,
  });
  readonly journalRecords = new Counter({
    name: 'edge_agent_latch_journal_records_total',
    help: 'Latch journal records written, fsyncs, and write errors',
    labelNames: ['op'],
    registers: this.r,
  });
  readonly journalSyncLatency = new Histogram({
    name: 'edge_agent_latch_journal_sync_seconds',
    help: "Latch journal fdatasync, from the call to its callback on the agent's main thread (a trip is durable then)",
    buckets: LATENCY_BUCKETS,
    registers: this.r,
  });
  readonly detectorSkipped = new Counter({
    name: 'edge_agent_detector_inputs_skipped_total',
    help: 'Inputs detectors skipped because they were older than the last one each judged (order-sensitive detectors: z-score, rate of change, flatline, adaptive, multivariate rows)',
    registers: this.r,
  });
  readonly readingsRejected = new Counter({
    name: 'edge_agent_readings_rejected_total',
    help: 'Readings the pipeline flagged on arrival, by reason (late, future, untrusted_clock, out_of_order)',
    labelNames: ['reason'],
    registers: this.r,
  });

  private last = new Map<string, number>();
  private devices: readonly DeviceHealth[] = [];
  private generation: object | undefined;
  private lastRate: { at: number; readings: number } | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private readonly gateway = new GatewaySampler();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'edge_agent_' });
    // Publish every label value up front so dashboards see zeros instead of missing series.
    for (const q of QUALITIES) this.readings.inc({ quality: q }, 0);
    for (const k of SOURCE_PROBLEMS) this.sourceProblems.inc({ kind: k }, 0);
    for (const s of SEVERITIES) for (const st of ANOMALY_STATES) this.anomalies.inc({ severity: s, state: st }, 0);
    for (const r of ACTION_RESULTS) this.actions.inc({ result: r }, 0);
    for (const k of EVENT_KINDS) this.storeEvictions.inc({ kind: k }, 0);
    for (const r of WATCHDOG_WITHHELD) this.watchdogWithheld.inc({ reason: r }, 0);
    for (const r of RELOAD_RESULTS) this.reloads.inc({ result: r }, 0);
    for (const r of REJECT_REASONS) this.readingsRejected.inc({ reason: r }, 0);
    this.controlMessages.inc({ result: 'applied', reason: '' }, 0);
    this.registerDeviceMetrics();
  }

  /**
   * Per-device series, labelled by the configured source id and device (`link`, `unit-<id>`, `broker`):
   * bounded by the config. Read from the drivers' `DeviceHealth` at scrape time; like every counter of a
   * process, they restart from zero when a reload rebuilds the drivers.
   */
  private registerDeviceMetrics(): void {
    type Value = { labels: Record<string, string | number>; value: number; metricName?: string };
    const add = (name: string, help: string, type: 'counter' | 'gauge' | 'histogram', values: (d: DeviceHealth) => Value[]) => {
      const metric = {
        name,
        help,
        type,
        aggregator: 'sum',
        get: async () => ({
          name,
          help,
          type,
          aggregator: 'sum',
          values: this.devices.flatMap((d) =>
            values(d).map((v) => ({ ...v, labels: { source: d.source, device: d.device, ...v.labels } })),
          ),
        }),
        reset: () => {},
      };
      this.registry.registerMetric(metric as never);
    };
    add(
      'edge_agent_device_requests_total',
      'Requests sent to the device (Modbus) or messages received from it (MQTT)',
      'counter',
      (d) => [{ labels: {}, value: d.requests }],
    );
    add(
      'edge_agent_device_errors_total',
      'Failed requests or messages by kind (timeout, exception, disconnected, protocol, malformed)',
      'counter',
      (d) => DEVICE_ERROR_KINDS.map((kind) => ({ labels: { kind }, value: d.errors[kind] })),
    );
    add('edge_agent_device_connects_total', 'Connections established to the device or link', 'counter', (d) => [
      { labels: {}, value: d.connects },
    ]);
    add('edge_agent_device_disconnects_total', 'Connections lost', 'counter', (d) => [{ labels: {}, value: d.disconnects }]);
    add(
      'edge_agent_device_dead_links_total',
      'Links declared dead by keepalive or application timeouts (half-open TCP, silent broker, stale serial port) and reopened',
      'counter',
      (d) => [{ labels: {}, value: d.deadLinks }],
    );
    add('edge_agent_device_polls_skipped_total', 'Polls skipped while the unit backs off after failures', 'counter', (d) => [
      { labels: {}, value: d.skipped },
    ]);
    add('edge_agent_device_poll_overruns_total', 'Poll slots missed because the previous poll still ran', 'counter', (d) => [
      { labels: {}, value: d.overruns },
    ]);
    add(
      'edge_agent_device_dropped_total',
      'Messages or values skipped, by reason (MQTT: malformed reasons, unmatched topic)',
      'counter',
      (d) => Object.entries(d.dropped).map(([reason, value]) => ({ labels: { reason }, value })),
    );
    add(
      'edge_agent_device_last_good_timestamp_seconds',
      'When the device last answered (Modbus) or sent a usable message (MQTT); 0: never',
      'gauge',
      (d) => [{ labels: {}, value: (d.lastGood ?? 0) / 1000 }],
    );
    add('edge_agent_device_status', 'Device status: 1 for the current one of ok, failing, down, unknown', 'gauge', (d) => {
      const now = d.status();
      return DEVICE_STATUSES.map((status) => ({ labels: { status }, value: status === now ? 1 : 0 }));
    });
    add(
      'edge_agent_device_request_duration_seconds',
      'Request round trip (Modbus request → answer, timeouts at their timeout; MQTT PINGREQ → PINGRESP)',
      'histogram',
      (d) => {
        const out: Value[] = [];
        let acc = 0;
        DEVICE_LATENCY_BUCKETS.forEach((le, i) => {
          acc += d.buckets[i] as number;
          out.push({ metricName: 'edge_agent_device_request_duration_seconds_bucket', labels: { le }, value: acc });
        });
        out.push({
          metricName: 'edge_agent_device_request_duration_seconds_bucket',
          labels: { le: '+Inf' },
          value: d.latencyCount,
        });
        out.push({ metricName: 'edge_agent_device_request_duration_seconds_sum', labels: {}, value: d.latencySum });
        out.push({ metricName: 'edge_agent_device_request_duration_seconds_count', labels: {}, value: d.latencyCount });
        return out;
      },
    );
  }

  /** Counts what an event means for operators. Cheap; called for every event the agent emits. */
  onEvent(ev: AgentEvent): void {
    if (ev.kind === 'aggregate') return;
    const p = ev.payload as Record<string, unknown>;
    if (ev.kind === 'anomaly') {
      const severity = SEVERITIES.includes(p.severity as never) ? (p.severity as string) : 'warning';
      const state = p.state === 'cleared' ? 'cleared' : 'raised';
      this.anomalies.inc({ severity, state });
    } else if (ev.kind === 'action') {
      if (p.type === 'trip') this.trips.inc();
      else if (p.type === 'command_result') {
        this.actions.inc({ result: p.ok ? 'ok' : 'failed' });
        if (typeof p.sent_at === 'number' && typeof p.acked_at === 'number')
          this.actionLatency.observe(Math.max(0, p.acked_at - p.sent_at) / 1000);
      }
    } else if (ev.kind === 'audit' && p.type === 'ack') this.acks.inc();
  }

  /** Publishes the agent's local counters as deltas. Called before every scrape. */
  refresh(s: TelemetrySnapshot): void {
    if (s.generation !== this.generation) {
      this.generation = s.generation;
      this.last.clear();
      this.lastRate = undefined;
    }
    for (const q of QUALITIES) this.feed(this.readings, `q.${q}`, s.pipeline.byQuality[q], { quality: q });
    this.feed(this.unknownSensor, 'unknown', s.pipeline.unknownSensor);
    for (const k of SOURCE_PROBLEMS) {
      let n = 0;
      for (const c of s.sources) n += c[k];
      this.feed(this.sourceProblems, `src.${k}`, n, { kind: k });
    }
    this.feed(this.storePersisted, 'persisted', s.store.persisted);
    this.feed(this.storeWriteErrors, 'writeErrors', s.store.writeErrors);
    this.storeBacklog.set(s.storeBacklog);
    this.storeLastSeq.set(s.store.lastSeq);
    this.tripped.set(s.trippedAssets);
    for (const k of EVENT_KINDS)
      this.feed(this.storeEvictions, `ev.${k}`, (s.store.evicted[k] ?? 0) + (s.store.dropped[k] ?? 0), { kind: k });
    this.devices = s.devices ?? [];
    if (s.control) {
      this.feed(this.controlMessages, 'ctl.applied', s.control.applied, { result: 'applied', reason: '' });
      for (const [reason, n] of Object.entries(s.control.byReason))
        this.feed(this.controlMessages, `ctl.rejected.${reason}`, n ?? 0, { result: 'rejected', reason });
    }
    if (s.model) {
      const m = s.model;
      const windows: Record<string, number | undefined> = {
        offered: m.offered,
        scored: m.scored,
        coalesced: m.coalesced,
        dropped: m.dropped,
        failed: m.failedWindows,
        discarded_on_swap: m.discardedOnSwap,
      };
      for (const [outcome, n] of Object.entries(windows))
        if (n !== undefined) this.feed(this.modelWindows, `mw.${outcome}`, n, { outcome });
      this.feed(this.modelBatches, 'mb.ok', (m.batches ?? 0) - (m.failedBatches ?? 0), { result: 'ok' });
      this.feed(this.modelBatches, 'mb.failed', m.failedBatches ?? 0, { result: 'failed' });
      this.feed(this.modelSwaps, 'ms.applied', m.swaps ?? 0, { result: 'applied' });
      this.feed(this.modelSwaps, 'ms.rejected', m.rejected ?? 0, { result: 'rejected' });
    }
    if (s.journal) {
      this.feed(this.journalRecords, 'j.records', s.journal.records, { op: 'record' });
      this.feed(this.journalRecords, 'j.syncs', s.journal.syncs, { op: 'sync' });
      this.feed(this.journalRecords, 'j.errors', s.journal.errors, { op: 'error' });
    }
    const p = s.pipeline;
    this.feed(this.readingsRejected, 'rej.late', p.late, { reason: 'late' });
    this.feed(this.readingsRejected, 'rej.future', p.future, { reason: 'future' });
    this.feed(this.readingsRejected, 'rej.untrusted', p.untrustedClock, { reason: 'untrusted_clock' });
    this.feed(this.readingsRejected, 'rej.ooo', p.outOfOrder, { reason: 'out_of_order' });
    this.feed(this.detectorSkipped, 'ds', s.detectorsSkipped ?? 0);
    if (s.sync) {
      this.syncLagEvents.set(s.sync.lagEvents);
      this.syncLagSeconds.set(s.sync.lagSeconds);
      this.syncLastSuccess.set(s.sync.lastSuccess);
      this.feed(this.syncRestarts, 'sync.restarts', s.sync.restarts ?? 0);
    }
  }

  private feed(counter: Counter<string>, key: string, value: number, labels?: Record<string, string>): void {
    const d = value - (this.last.get(key) ?? 0);
    if (d > 0) {
      if (labels) counter.inc(labels, d);
      else counter.inc(d);
    }
    this.last.set(key, value);
  }

  /** Samples gateway resources and the ingest rate every `intervalMs` (asynchronous reads of /proc and /sys: agent/ops/gateway-resources.ts). */
  startSampler(snapshot: () => TelemetrySnapshot | undefined, intervalMs = 15_000): void {
    const run = () => void this.sample(snapshot()).catch(() => {});
    run();
    this.sampler = setInterval(run, intervalMs);
    this.sampler.unref();
  }

  stopSampler(): void {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = undefined;
  }

  async sample(s: TelemetrySnapshot | undefined): Promise<void> {
    if (s) {
      this.refresh(s);
      const now = Date.now();
      const readings = s.pipeline.readings;
      if (this.lastRate && now > this.lastRate.at)
        this.ingestRate.set(((readings - this.lastRate.readings) * 1000) / (now - this.lastRate.at));
      this.lastRate = { at: now, readings };
      if (s.storePath !== ':memory:') {
        const path = resolve(s.storePath);
        let bytes = 0;
        for (const f of [path, `${path}-wal`])
          bytes += await stat(f).then(
            (st) => st.size,
            () => 0,
          );
        this.storeBytes.set(bytes);
        const fs = await statfs(dirname(path)).catch(() => undefined);
        if (fs) {
          this.diskFree.set(fs.bavail * fs.bsize);
          this.diskTotal.set(fs.blocks * fs.bsize);
        }
      }
    }
    const g = await this.gateway.sample();
    if (g.cpuLoad !== undefined) this.cpuLoad.set(g.cpuLoad);
    this.memUsed.set(g.memUsed);
    this.memTotal.set(g.memTotal);
    if (g.temperature !== undefined) this.temperature.set({ sensor: 'cpu' }, g.temperature);
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
