/**
 * Interlocks: a tripping anomaly latches the asset and issues its stop actions in configured order,
 * synchronously, in the same tick as the reading that caused it. Acknowledgements from the devices
 * arrive later and are audited as their own events; nothing here waits for the store.
 *
 * Per asset (see `interlocks[]` in the config): debounce (N consecutive raised readings and/or a
 * minimum raised duration in event time), re-assertion of the stop while the latch is held, operator
 * acknowledgement (CLI/HTTP API/MQTT all end in `ack()`), cooldown and rate limit after an
 * acknowledgement, dry-run (commissioning), and a fail-safe when a watched sensor goes silent or bad.
 *
 * Audit trail (all `kind: 'action'` unless noted), every record carrying the asset as key:
 * - `trip`: reading_event_time, decided_at, commands[{actuator, command, sent_at}]
 * - `command_result`: phase (trip | reassert | release), sent_at, acked_at, ok, ack or error
 * - `reassert`: the re-sent commands, with the count so far
 * - `dry_run_trip`: what would have been sent; nothing was
 * - `suppressed`: a trip not acted on, and why (cooldown | rate_limit)
 * - `ack` (`kind: 'audit'`): who acknowledged, through what, when
 * - `fail_safe` (`kind: 'alarm'`): a watched sensor went silent or bad, or came back
 */

import type { DetectorConfig, InterlockConfig } from './config/schema.js';
import type { ActuatorDriver, ActuatorResult } from './driver.js';
import { type Logger, RateLimitedLog } from './log.js';
import type { AgentEvent, Anomaly, Reading, Severity } from './types.js';

export type MachineState = 'running' | 'tripped';
type Phase = 'trip' | 'reassert' | 'release';

/** What tripped the asset: a detector's anomaly, or the fail-safe. */
interface TripCause {
  readonly detector: string;
  readonly sensor: string;
  readonly severity: Severity;
  readonly value: number;
  readonly eventTime: number;
}

interface Pending {
  readonly cause: TripCause;
  readonly since: number;
  count: number;
}

interface AssetLatch {
  readonly config: InterlockConfig;
  state: MachineState;
  trippedAt: number | undefined;
  cause: TripCause | undefined;
  pending: Pending | undefined;
  reassertTimer: NodeJS.Timeout | undefined;
  reasserts: number;
  cooldownUntil: number;
  /** Decision times of recent trips, for the rate limit. */
  readonly recentTrips: number[];
}

/**
 * The pipeline's handle on one watched sensor: it calls `seen()` for every reading of that sensor
 * (after the detectors ran). Cheap when nothing is pending or faulted.
 */
export class SensorWatch {
  lastSeen: number;
  badRun = 0;
  silent = false;
  bad = false;

  constructor(
    readonly asset: string,
    readonly sensor: string,
    private readonly owner: Interlocks,
    private readonly latch: AssetLatch,
    startedAt: number,
  ) {
    this.lastSeen = startedAt;
  }

  seen(r: Reading): void {
    this.lastSeen = r.ingestTime;
    if (this.silent) this.owner.sensorBack(this, 'silent');
    if (r.quality === 'bad' || r.quality === 'comm_error') {
      this.badRun++;
      if (!this.bad && this.badRun >= this.latch.config.fail_safe.bad_readings) this.owner.sensorFault(this, 'bad', r);
    } else {
      this.badRun = 0;
      if (this.bad) this.owner.sensorBack(this, 'bad');
    }
    const p = this.latch.pending;
    if (p !== undefined && p.cause.sensor === this.sensor && r.quality === 'good') {
      p.count++;
      this.owner.checkPending(this.latch, r);
    }
  }
}

/** The decision fields of a trip event; built after the commands are on the wire. */
function decisionOf(asset: string, cause: TripCause, decidedAt: number) {
  return {
    asset,
    detector: cause.detector,
    severity: cause.severity,
    value: cause.value,
    reading_event_time: cause.eventTime,
    decided_at: decidedAt,
  };
}

export class Interlocks {
  private readonly latches = new Map<string, AssetLatch>();
  private readonly watches: SensorWatch[] = [];
  private failSafeTimer: NodeJS.Timeout | undefined;
  private readonly rateLog: RateLimitedLog;
  private started = false;
  tripCount = 0;

  constructor(
    interlocks: readonly InterlockConfig[],
    private readonly actuators: ReadonlyMap<string, ActuatorDriver>,
    private readonly emit: (ev: AgentEvent) => void,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
    detectors: readonly DetectorConfig[] = [],
  ) {
    this.rateLog = new RateLimitedLog(60_000, now);
    const t0 = now();
    for (const il of interlocks) {
      const latch: AssetLatch = {
        config: il,
        state: 'running',
        trippedAt: undefined,
        cause: undefined,
        pending: undefined,
        reassertTimer: undefined,
        reasserts: 0,
        cooldownUntil: 0,
        recentTrips: [],
      };
      this.latches.set(il.asset, latch);
      const tripping = detectors
        .filter((d) => d.asset === il.asset && d.trip)
        .flatMap((d) => ('sensors' in d ? d.sensors : [d.sensor]));
      const sensors = new Set([...tripping, ...(il.fail_safe.sensors ?? [])]);
      for (const s of sensors) this.watches.push(new SensorWatch(il.asset, s, this, latch, t0));
    }
  }

  /** The sensors the pipeline must report to (debounce and fail-safe). */
  watched(): readonly SensorWatch[] {
    return this.watches;
  }

  state(asset: string): MachineState {
    return this.latches.get(asset)?.state ?? 'running';
  }

  /** Re-latches assets that were tripped and not acknowledged when the agent last stopped. */
  restore(tripped: readonly string[]): void {
    for (const asset of tripped) {
      const latch = this.latches.get(asset);
      if (latch) latch.state = 'tripped';
    }
  }

  /**
   * Starts the timers: re-assertion for restored trips (their stop is sent again at once, since the
   * machine may have been reset while the agent was down) and the fail-safe silence check.
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    const t = this.now();
    for (const w of this.watches) w.lastSeen = t;
    for (const latch of this.latches.values()) {
      if (latch.state === 'tripped' && !latch.config.dry_run) {
        this.reassert(latch);
        this.armReassert(latch);
      }
    }
    const periods = [...this.latches.values()]
      .filter((l) => l.config.fail_safe.policy !== 'none')
      .map((l) => l.config.fail_safe.silent_after);
    if (periods.length > 0 && this.watches.length > 0) {
      const every = Math.max(50, Math.min(...periods) / 4);
      this.failSafeTimer = setInterval(() => this.checkSilence(), every);
      this.failSafeTimer.unref?.();
    }
  }

  /** Clears every timer. Latches keep their state (they are restored from the store on restart). */
  stop(): void {
    this.started = false;
    if (this.failSafeTimer) clearInterval(this.failSafeTimer);
    this.failSafeTimer = undefined;
    for (const latch of this.latches.values()) this.disarmReassert(latch);
  }

  /** Hot path. Returns true when this anomaly tripped the asset now. */
  onAnomaly(a: Anomaly): boolean {
    if (!a.trip) return false;
    const latch = this.latches.get(a.asset);
    if (!latch) return false;
    if (a.state === 'cleared') {
      if (latch.pending?.cause.detector === a.detector) latch.pending = undefined;
      return false;
    }
    if (latch.state === 'tripped') return false;
    const cause: TripCause = {
      detector: a.detector,
      sensor: a.sensor,
      severity: a.severity,
      value: a.value,
      eventTime: a.eventTime,
    };
    const db = latch.config.debounce;
    if (db.readings <= 1 && db.duration <= 0) return this.trip(latch, cause);
    // The raising reading itself is counted by SensorWatch.seen(), which the pipeline calls next.
    latch.pending ??= { cause, since: a.eventTime, count: 0 };
    return false;
  }

  /** Called by a SensorWatch after counting a raised reading. */
  checkPending(latch: AssetLatch, r: Reading): void {
    const p = latch.pending;
    if (!p || latch.state === 'tripped') return;
    const db = latch.config.debounce;
    if (p.count >= db.readings && r.eventTime - p.since >= db.duration) {
      latch.pending = undefined;
      if (this.trip(latch, { ...p.cause, value: r.value, eventTime: r.eventTime }))
        this.logger.debug({ asset: r.asset, readings: p.count }, 'debounced trip');
    }
  }

  private trip(latch: AssetLatch, cause: TripCause): boolean {
    if (latch.state === 'tripped') return false;
    const cfg = latch.config;
    const asset = cfg.asset;
    const decidedAt = this.now();
    const suppressedBy = this.suppression(latch, decidedAt);
    if (suppressedBy) {
      this.emit({
        kind: 'action',
        key: asset,
        eventTime: cause.eventTime,
        payload: {
          type: 'suppressed',
          asset,
          reason: suppressedBy,
          detector: cause.detector,
          value: cause.value,
          reading_event_time: cause.eventTime,
          decided_at: decidedAt,
        },
      });
      this.rateLog.log(
        this.logger,
        'error',
        `suppressed:${asset}:${suppressedBy}`,
        { asset, detector: cause.detector, reason: suppressedBy },
        'trip condition not acted on (suppressed by configuration); a person must check the machine',
      );
      return false;
    }
    latch.state = 'tripped';
    latch.trippedAt = decidedAt;
    latch.cause = cause;
    latch.pending = undefined;
    latch.reasserts = 0;
    latch.recentTrips.push(decidedAt);
    this.tripCount++;
    if (cfg.dry_run) {
      this.emit({
        kind: 'action',
        key: asset,
        eventTime: cause.eventTime,
        payload: {
          type: 'dry_run_trip',
          ...decisionOf(asset, cause, decidedAt),
          would_send: cfg.actions.map((a) => ({ actuator: a.actuator, command: a.command })),
        },
      });
      this.logger.warn({ asset, detector: cause.detector }, 'asset would have tripped (dry run: nothing sent)');
      return true;
    }
    // Act first, record second: every command is on the wire before the first event is built.
    const sent = this.send(latch, 'trip');
    this.emit({
      kind: 'action',
      key: asset,
      eventTime: cause.eventTime,
      payload: {
        type: 'trip',
        ...decisionOf(asset, cause, decidedAt),
        commands: sent,
      },
    });
    this.armReassert(latch);
    this.logger.warn({ asset, detector: cause.detector, value: cause.value }, 'asset tripped');
    return true;
  }

  private suppression(latch: AssetLatch, t: number): 'cooldown' | 'rate_limit' | undefined {
    if (t < latch.cooldownUntil) return 'cooldown';
    const rl = latch.config.rate_limit;
    if (rl) {
      const recent = latch.recentTrips;
      while (recent.length > 0 && (recent[0] as number) <= t - rl.per) recent.shift();
      if (recent.length >= rl.max_trips) return 'rate_limit';
    }
    return undefined;
  }

  /** Issues every action of the asset, in order, each before the next; returns what was sent. */
  private send(latch: AssetLatch, phase: Phase): Array<{ actuator: string; command: string; sent_at: number }> {
    const asset = latch.config.asset;
    const cause = latch.cause;
    const reason = cause ? { detector: cause.detector, value: cause.value, event_time: cause.eventTime, phase } : { phase };
    const sent: Array<{ actuator: string; command: string; sent_at: number }> = [];
    for (const action of latch.config.actions) {
      const command = phase === 'release' ? action.release : action.command;
      if (command === undefined) continue;
      const driver = this.actuators.get(action.actuator);
      if (!driver) continue;
      const sentAt = this.now();
      let result: Promise<ActuatorResult>;
      try {
        result = driver.execute({ asset, command, reason });
      } catch (err) {
        result = Promise.resolve({ ok: false, error: (err as Error).message });
      }
      sent.push({ actuator: action.actuator, command, sent_at: sentAt });
      result.then(
        (res) => this.recordResult(asset, phase, action.actuator, command, sentAt, res.ok, res.ack, res.error),
        (err: Error) => this.recordResult(asset, phase, action.actuator, command, sentAt, false, undefined, err.message),
      );
    }
    return sent;
  }

  private recordResult(
    asset: string,
    phase: Phase,
    actuator: string,
    command: string,
    sentAt: number,
    ok: boolean,
    ack: unknown,
    error: string | undefined,
  ): void {
    const at = this.now();
    this.emit({
      kind: 'action',
      key: asset,
      eventTime: sentAt,
      payload: {
        type: 'command_result',
        asset,
        phase,
        actuator,
        command,
        ok,
        sent_at: sentAt,
        acked_at: at,
        ...(ack ? { ack } : {}),
        ...(error ? { error } : {}),
      },
    });
    if (!ok)
      this.rateLog.log(
        this.logger,
        'error',
        `failed:${asset}:${actuator}:${phase}`,
        { asset, actuator, command, phase, error },
        phase === 'release' ? 'release command failed' : 'stop command failed; a person must check the machine',
      );
  }

  private armReassert(latch: AssetLatch): void {
    const every = latch.config.reassert_every;
    if (every <= 0 || latch.reassertTimer || !this.started) return;
    latch.reassertTimer = setInterval(() => this.reassert(latch), every);
    latch.reassertTimer.unref?.();
  }

  private disarmReassert(latch: AssetLatch): void {
    if (latch.reassertTimer) clearInterval(latch.reassertTimer);
    latch.reassertTimer = undefined;
  }

  private reassert(latch: AssetLatch): void {
    if (latch.state !== 'tripped' || latch.config.dry_run) return;
    const sent = this.send(latch, 'reassert');
    latch.reasserts++;
    const at = this.now();
    this.emit({
      kind: 'action',
      key: latch.config.asset,
      eventTime: at,
      payload: {
        type: 'reassert',
        asset: latch.config.asset,
        count: latch.reasserts,
        tripped_at: latch.trippedAt,
        commands: sent,
      },
    });
  }

  /**
   * Operator acknowledgement (CLI through the HTTP API, the API itself, or an MQTT ack topic):
   * unlatches the asset, stops re-assertion, sends the configured release commands and starts the
   * cooldown. Returns false when the asset was not tripped.
   */
  ack(asset: string, by: string, via = 'api'): boolean {
    const latch = this.latches.get(asset);
    if (latch?.state !== 'tripped') return false;
    this.disarmReassert(latch);
    const at = this.now();
    const trippedAt = latch.trippedAt;
    const released = latch.config.dry_run ? [] : this.send(latch, 'release');
    latch.state = 'running';
    latch.pending = undefined;
    latch.cause = undefined;
    latch.cooldownUntil = at + latch.config.cooldown;
    this.emit({
      kind: 'audit',
      key: asset,
      eventTime: at,
      payload: {
        type: 'ack',
        asset,
        by,
        via,
        at,
        ...(trippedAt !== undefined ? { tripped_at: trippedAt } : {}),
        ...(released.length > 0 ? { released } : {}),
      },
    });
    this.logger.info({ asset, by, via }, 'trip acknowledged');
    return true;
  }

  tripped(): string[] {
    return [...this.latches.entries()].filter(([, l]) => l.state === 'tripped').map(([a]) => a);
  }

  private checkSilence(): void {
    const t = this.now();
    for (const w of this.watches) {
      const latch = this.latches.get(w.asset) as AssetLatch;
      const fs = latch.config.fail_safe;
      if (fs.policy === 'none' || w.silent) continue;
      if (t - w.lastSeen > fs.silent_after) this.sensorFault(w, 'silent', undefined);
    }
  }

  /** A watched sensor went silent or bad: alarm, and trip when the policy says stop. */
  sensorFault(w: SensorWatch, cause: 'silent' | 'bad', r: Reading | undefined): void {
    const latch = this.latches.get(w.asset) as AssetLatch;
    const fs = latch.config.fail_safe;
    if (fs.policy === 'none') return;
    if (cause === 'silent') w.silent = true;
    else w.bad = true;
    const at = this.now();
    this.emit({
      kind: 'alarm',
      key: w.asset,
      eventTime: r?.eventTime ?? at,
      payload: {
        type: 'fail_safe',
        state: 'raised',
        asset: w.asset,
        sensor: w.sensor,
        cause,
        policy: fs.policy,
        last_seen: w.lastSeen,
        at,
        ...(r ? { quality: r.quality } : {}),
      },
    });
    this.logger.warn({ asset: w.asset, sensor: w.sensor, cause, policy: fs.policy }, 'watched sensor lost');
    if (fs.policy === 'stop')
      this.trip(latch, {
        detector: `fail_safe:${cause}`,
        sensor: w.sensor,
        severity: 'critical',
        value: r?.value ?? Number.NaN,
        eventTime: r?.eventTime ?? at,
      });
  }

  sensorBack(w: SensorWatch, cause: 'silent' | 'bad'): void {
    if (cause === 'silent') w.silent = false;
    else w.bad = false;
    const at = this.now();
    this.emit({
      kind: 'alarm',
      key: w.asset,
      eventTime: at,
      payload: { type: 'fail_safe', state: 'cleared', asset: w.asset, sensor: w.sensor, cause, at },
    });
    this.logger.info({ asset: w.asset, sensor: w.sensor, cause }, 'watched sensor back');
  }
}
