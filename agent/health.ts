/**
 * Per-device health, kept by the drivers and published by the agent: one `DeviceHealth` per Modbus
 * unit, per Modbus link (the TCP connection or serial bus) and per MQTT broker connection. Devices
 * are named by configured ids only (source id + unit id), so metric labels stay bounded.
 *
 * Drivers count into plain fields (no metric objects on the poll path); /metrics, the twin and the
 * dashboard read `view()` and the counters when asked (agent/telemetry.ts, agent/ops/*).
 *
 * Status, for a technician: `ok` the last exchange succeeded; `failing` the last exchange failed (a
 * timeout, an exception answer, a garbled frame) but the link is up; `down` the link is lost or
 * declared dead (no answer within the dead-link budget); `unknown` nothing exchanged yet.
 */

export const DEVICE_ERROR_KINDS = ['timeout', 'exception', 'disconnected', 'protocol', 'malformed'] as const;
export type DeviceErrorKind = (typeof DEVICE_ERROR_KINDS)[number];
export const DEVICE_STATUSES = ['ok', 'failing', 'down', 'unknown'] as const;
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];
/** Upper bounds (seconds) of the request latency histogram: Modbus answers take ms; a timeout is seconds. */
export const DEVICE_LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;

export type DeviceKind = 'modbus_unit' | 'modbus_link' | 'mqtt_broker';

/** The JSON view of one device (twin, /api/status, dashboard). */
export interface DeviceView {
  readonly source: string;
  readonly device: string;
  readonly kind: DeviceKind;
  /** What it is, for people: host:port, serial port, broker URL, unit id. */
  readonly describe: string;
  readonly status: DeviceStatus;
  readonly requests: number;
  readonly errors: Readonly<Record<DeviceErrorKind, number>>;
  readonly connects: number;
  readonly disconnects: number;
  /** Links declared dead by keepalive or application timeouts (half-open TCP, silent broker, vanished tty). */
  readonly dead_links: number;
  readonly skipped: number;
  readonly overruns: number;
  readonly dropped: Readonly<Record<string, number>>;
  /** Epoch ms of the last good answer or message; null: never. */
  readonly last_good: number | null;
  readonly last_error: { readonly kind: DeviceErrorKind; readonly at: number } | null;
  /** Median and worst request latency of the last 64 requests, ms (null: none yet). */
  readonly latency_ms: { readonly p50: number; readonly max: number } | null;
}

const RECENT = 64;

export class DeviceHealth {
  requests = 0;
  readonly errors: Record<DeviceErrorKind, number> = { timeout: 0, exception: 0, disconnected: 0, protocol: 0, malformed: 0 };
  connects = 0;
  disconnects = 0;
  deadLinks = 0;
  /** Polls skipped while the device was backing off after failures (Modbus units). */
  skipped = 0;
  /** Poll slots missed because the previous poll still ran. */
  overruns = 0;
  /** Messages or values skipped, by a bounded reason the driver names (MQTT: malformed reasons, unmatched). */
  dropped: Record<string, number> = {};
  /** Cumulative counts per latency bucket (last slot: above the largest bound). */
  readonly buckets = new Float64Array(DEVICE_LATENCY_BUCKETS.length + 1);
  latencySum = 0;
  latencyCount = 0;
  lastGood: number | null = null;
  lastError: { kind: DeviceErrorKind; at: number } | null = null;
  /** The link is up (a device without a link of its own follows its link's state). */
  linkUp: boolean | undefined;
  private readonly recent = new Float64Array(RECENT);
  private recentN = 0;
  /** Set when the status moves between healthy and not, for the agent's alarm events. */
  onChange: ((h: DeviceHealth, healthy: boolean, cause: DeviceErrorKind | undefined) => void) | undefined;
  private healthy: boolean | undefined;

  constructor(
    readonly source: string,
    readonly device: string,
    readonly kind: DeviceKind,
    readonly describe: string,
    private readonly link?: DeviceHealth,
  ) {}

  /** A request was answered (or a message arrived) after `ms`. */
  ok(at: number, ms?: number): void {
    this.lastGood = at;
    if (ms !== undefined) this.observe(ms);
    this.transition(true, undefined);
  }

  observe(ms: number): void {
    const s = ms / 1000;
    let i = 0;
    while (i < DEVICE_LATENCY_BUCKETS.length && s > (DEVICE_LATENCY_BUCKETS[i] as number)) i++;
    (this.buckets as Float64Array)[i] = (this.buckets[i] as number) + 1;
    this.latencySum += s;
    this.latencyCount++;
    this.recent[this.recentN++ % RECENT] = ms;
  }

  fail(kind: DeviceErrorKind, at: number, ms?: number): void {
    this.errors[kind]++;
    if (ms !== undefined) this.observe(ms);
    // A malformed message says nothing about the link or the device: counted, not a status change.
    if (kind === 'malformed') return;
    this.lastError = { kind, at };
    this.transition(false, kind);
  }

  /** The link (re)connected. */
  up(): void {
    this.connects++;
    this.linkUp = true;
    this.transition(true, undefined);
  }

  /** The link was lost (`dead`: declared dead by keepalive or application timeouts, not closed by the peer). */
  down(at: number, cause: DeviceErrorKind, dead = false): void {
    if (this.linkUp === true) this.disconnects++;
    if (dead) this.deadLinks++;
    this.linkUp = false;
    this.lastError = { kind: cause, at };
    this.transition(false, cause);
  }

  private transition(healthy: boolean, cause: DeviceErrorKind | undefined): void {
    if (this.healthy === healthy) return;
    const first = this.healthy === undefined;
    this.healthy = healthy;
    // The first success is not news; a first failure is.
    if (!(first && healthy)) this.onChange?.(this, healthy, cause);
  }

  status(): DeviceStatus {
    const link = this.link ?? this;
    if (link.linkUp === false) return 'down';
    if (this.lastError && (this.lastGood === null || this.lastError.at >= this.lastGood))
      return this.lastError.kind === 'disconnected' ? 'down' : 'failing';
    return this.lastGood === null && link.linkUp !== true ? 'unknown' : 'ok';
  }

  private latency(): { p50: number; max: number } | null {
    const n = Math.min(this.recentN, RECENT);
    if (n === 0) return null;
    const v = Array.from(this.recent.subarray(0, n)).sort((a, b) => a - b);
    const round = (x: number) => Math.round(x * 100) / 100;
    return { p50: round(v[Math.floor(n / 2)] as number), max: round(v[n - 1] as number) };
  }

  view(): DeviceView {
    return {
      source: this.source,
      device: this.device,
      kind: this.kind,
      describe: this.describe,
      status: this.status(),
      requests: this.requests,
      errors: { ...this.errors },
      connects: this.connects,
      disconnects: this.disconnects,
      dead_links: this.deadLinks,
      skipped: this.skipped,
      overruns: this.overruns,
      dropped: { ...this.dropped },
      last_good: this.lastGood,
      last_error: this.lastError ? { ...this.lastError } : null,
      latency_ms: this.latency(),
    };
  }
}
