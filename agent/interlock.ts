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
 * Reset permissive (IEC 61511: a trip is reset only by a person, and only once its cause has cleared):
 * the interlock keeps the set of tripping conditions currently raised on the asset (tripping detectors,
 * the out-of-range check, watched sensors silent, bad or not yet read since start). An acknowledgement
 * while any holds is refused (`reset: refuse`, the default) or recorded and carried out by itself once
 * all have cleared (`reset: when_clear`). While the asset runs, any raised condition trips it, checked on
 * every watched reading and on the fail-safe timer, not only when a detector raises (level, not edge).
 *
 * Durability: right after the stop commands of a trip were issued, the decision goes to the latch
 * journal (agent/latch-journal.ts), then the trip event to the store. `restore()` re-latches from it.
 * With an `aftermath` (the agent's), the records that follow a command (journal lines, events, their
 * log lines) wait a millisecond after it, in order, so that the command is delivered first.
 *
 * Audit trail (all `kind: 'action'` unless noted), every record carrying the asset as key:
 * - `trip`: reading_event_time, decided_at, commands[{actuator, command, sent_at}]
 * - `command_result`: phase (trip | reassert | release), sent_at, acked_at, ok, ack or error
 * - `reassert`: the re-sent commands, with the count so far
 * - `dry_run_trip`: what would have been sent; nothing was
 * - `suppressed`: a trip not acted on, and why (cooldown | rate_limit)
 * - `ack` (`kind: 'audit'`): who acknowledged, through what, when (the release)
 * - `ack_refused` (`kind: 'audit'`): an acknowledgement refused, with the conditions still raised
 * - `ack_deferred` (`kind: 'audit'`): `reset: when_clear`: acknowledged; released once they clear
 * - `fail_safe` (`kind: 'alarm'`): a watched sensor went silent or bad, or came back
 */

import type { Aftermath } from './aftermath.js';
import type { DetectorConfig, InterlockConfig } from './config/schema.js';
import type { ActuatorDriver, ActuatorResult } from './driver.js';
import type { LatchJournal, LatchRecord } from './latch-journal.js';
import { type Logger, RateLimitedLog } from './log.js';
import type { AckResult, AgentEvent, Anomaly, RaisedCondition, Reading, Severity } from './types.js';

export type { AckResult, RaisedCondition };

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
  /** Tripping conditions raised now, by `detector\u0000sensor`. */
  readonly raised: Map<string, RaisedCondition>;
  /** `reset: when_clear`: the acknowledgement waiting for every condition to clear. */
  deferredAck: { by: string; via: string; at: number } | undefined;
  readonly watches: SensorWatch[];
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
 * One watched sensor: `seen()` runs for every reading of it (after the detectors judged it), through
 * `Interlocks.observe`. Cheap when nothing is pending or faulted.
 */
class SensorWatch {
  lastSeen: number;
  badRun = 0;
  silent = false;
  bad = false;
  /** No reading since the interlocks started: nothing is known about this sensor yet. */
  unseen = true;

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
    this.unseen = false;
    if (this.silent) this.owner.sensorBack(this, 'silent');
    // 'stale' is a driver repeating the last value of a device it is not reaching (a dead Modbus unit
    // backing off): not a fresh reading, so it must not reset the run of failed readings (issue 19).
    if (r.quality !== 'good') {
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
    this.owner.recheck(this.latch);
  }
}

/** The decision fields of a trip event; built after the commands are on the wire. */
function decisionOf(asset: string, cause: TripCause, decidedAt: number) {
  return {
    asset,
    detector: cause.detector,
    sensor: cause.sensor,
    severity: cause.severity,
    value: cause.value,
    reading_event_time: cause.eventTime,
    decided_at: decidedAt,
  };
}

const conditionKey = (detector: string, sensor: string) => `${detector}\u0000${sensor}`;

/** Options beyond the configuration. */
export interface InterlockOptions {
  /** Where trip decisions are made durable (none: tests and tools that do not restart). */
  readonly journal?: LatchJournal;
  /** Holds the records that follow a command (agent/aftermath.ts); none: they are made at once. */
  readonly aftermath?: Aftermath;
}

/** A latch read back at start: from the journal (with its decision) or from the store (asset only). */
export type RestoredLatch = string | LatchRecord;

export class Interlocks {
  private readonly latches = new Map<string, AssetLatch>();
  private readonly watches: SensorWatch[] = [];
  private failSafeTimer: NodeJS.Timeout | undefined;
  private readonly rateLog: RateLimitedLog;
  private started = false;
  private readonly emit: (ev: AgentEvent) => void;

  constructor(
    interlocks: readonly InterlockConfig[],
    private readonly actuators: ReadonlyMap<string, ActuatorDriver>,
    emit: (ev: AgentEvent) => void,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
    detectors: readonly DetectorConfig[] = [],
    private readonly opts: InterlockOptions = {},
  ) {
    const after = opts.aftermath;
    this.emit = after ? (ev) => after.run(() => emit(ev)) : emit;
    this.rateLog = new RateLimitedLog(60_000, now);
    const t0 = now();
    for (const il of interlocks) {
      const latch: AssetLatch = {
        config: il,
        raised: new Map(),
        deferredAck: undefined,
        watches: [],
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
      for (const s of sensors) {
        const w = new SensorWatch(il.asset, s, this, latch, t0);
        this.watches.push(w);
        latch.watches.push(w);
      }
    }
  }

  /**
   * The handle under which the judge reports readings of this sensor to `observe`, resolved once at
   * start; -1 when no interlock watches it.
   */
  watchOf(asset: string, sensor: string): number {
    return this.watches.findIndex((w) => w.asset === asset && w.sensor === sensor);
  }

  /**
   * The decision on a reading, after the detectors judged it (their anomalies came through
   * `onAnomaly` first): debounce counting, fail-safe (silent, bad, back), and the level check that
   * trips or releases. `watch` is from `watchOf`.
   */
  observe(watch: number, r: Reading): void {
    (this.watches[watch] as SensorWatch).seen(r);
  }

  state(asset: string): MachineState {
    return this.latches.get(asset)?.state ?? 'running';
  }

  /**
   * Re-latches assets that were tripped and not released when the agent last stopped (before start()).
   * A journal record also restores what tripped it; a bare asset id (from the store) does not.
   */
  restore(tripped: readonly RestoredLatch[]): void {
    for (const t of tripped) {
      const asset = typeof t === 'string' ? t : t.asset;
      const latch = this.latches.get(asset);
      if (!latch) continue;
      latch.state = 'tripped';
      if (typeof t !== 'string') {
        latch.trippedAt = t.decided_at;
        latch.cause = {
          detector: t.detector,
          sensor: t.sensor,
          severity: t.severity as Severity,
          value: t.value ?? Number.NaN,
          eventTime: t.reading_event_time,
        };
      }
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
    for (const w of this.watches) {
      w.lastSeen = t;
      w.unseen = true;
    }
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
    const key = conditionKey(a.detector, a.sensor);
    if (a.state === 'cleared') {
      latch.raised.delete(key);
      if (latch.pending?.cause.detector === a.detector) latch.pending = undefined;
      this.maybeRelease(latch);
      return false;
    }
    latch.raised.set(key, { detector: a.detector, sensor: a.sensor });
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
    // The raising reading itself is counted by observe(), which the judge calls next.
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

  /**
   * Level check (every watched reading, every fail-safe tick): a tripped asset with a deferred ack is
   * released once nothing holds; a running asset with a tripping condition raised trips now, e.g. once
   * a cooldown or rate limit that suppressed it has passed. Waits for a debounce in progress; a
   * suppression is audited once, when the condition raised, not here.
   */
  recheck(latch: AssetLatch): void {
    if (latch.state === 'tripped') {
      if (latch.deferredAck) this.maybeRelease(latch);
      return;
    }
    if (latch.pending || latch.raised.size === 0) return;
    if (this.suppression(latch, this.now())) return;
    const c = latch.raised.values().next().value as RaisedCondition;
    this.trip(latch, { detector: c.detector, sensor: c.sensor, severity: 'critical', value: Number.NaN, eventTime: this.now() });
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
    // Act first, record second: every command is on the wire before the first event is built, and the
    // decision is in the journal before the store hears of it.
    const sent = this.send(latch, 'trip');
    this.record(() =>
      this.opts.journal?.tripped({
        asset,
        detector: cause.detector,
        sensor: cause.sensor,
        severity: cause.severity,
        value: Number.isFinite(cause.value) ? cause.value : null,
        reading_event_time: cause.eventTime,
        decided_at: decidedAt,
        commands: sent,
      }),
    );
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
    this.record(() => this.logger.warn({ asset, detector: cause.detector, value: cause.value }, 'asset tripped'));
    return true;
  }

  /** A record that follows a command: now, or once the aftermath lets it (in order with the events). */
  private record(make: () => void): void {
    const after = this.opts.aftermath;
    if (after) after.run(make);
    else make();
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
    /** Drivers to call once after the last command of this decision (a driver may yield the CPU there). */
    const after = new Map<ActuatorDriver, string>();
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
      if (driver.afterCommands && !after.has(driver)) after.set(driver, action.actuator);
      result.then(
        (res) => this.recordResult(asset, phase, action.actuator, command, sentAt, res.ok, res.ack, res.error),
        (err: Error) => this.recordResult(asset, phase, action.actuator, command, sentAt, false, undefined, err.message),
      );
    }
    // The commands are on the wire: what they leave to record waits until they are delivered.
    if (sent.length > 0) this.opts.aftermath?.hold();
    for (const [driver, actuator] of after) {
      try {
        driver.afterCommands?.();
      } catch (err) {
        this.logger.error({ actuator, err: (err as Error).message }, 'actuator afterCommands failed');
      }
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
   * The tripping conditions of the asset that hold now: raised tripping detectors (and the range and
   * fail-safe checks), and watched sensors that are silent, bad, or have not been read since start (an
   * unread sensor cannot show that the cause has cleared).
   */
  raisedConditions(asset: string): RaisedCondition[] {
    const latch = this.latches.get(asset);
    if (!latch) return [];
    const out = [...latch.raised.values()];
    if (latch.config.fail_safe.policy === 'none') return out;
    for (const w of latch.watches) {
      const why = w.silent ? 'silent' : w.bad || w.badRun > 0 ? 'bad' : w.unseen ? 'no_reading' : undefined;
      if (why && !latch.raised.has(conditionKey(`fail_safe:${why}`, w.sensor)))
        out.push({ detector: `fail_safe:${why}`, sensor: w.sensor });
    }
    return out;
  }

  /**
   * Operator acknowledgement (CLI through the HTTP API, the API itself, or an MQTT ack topic). Releases
   * the asset only when no tripping condition holds: unlatches, stops re-assertion, sends the configured
   * release commands and starts the cooldown. Otherwise the ack is refused and audited (`reset: refuse`)
   * or recorded and carried out once every condition has cleared (`reset: when_clear`).
   */
  ack(asset: string, by: string, via = 'api'): AckResult {
    const latch = this.latches.get(asset);
    if (latch?.state !== 'tripped') return { ok: false, reason: 'not_tripped', error: `asset "${asset}" is not tripped` };
    const at = this.now();
    const raised = this.raisedConditions(asset);
    if (raised.length > 0) {
      const names = raised.map((c) => `${c.detector} on ${c.sensor}`).join(', ');
      if (latch.config.reset === 'when_clear') {
        latch.deferredAck = { by, via, at };
        this.emit({
          kind: 'audit',
          key: asset,
          eventTime: at,
          payload: { type: 'ack_deferred', asset, by, via, at, raised },
        });
        this.logger.info({ asset, by, via, raised: names }, 'trip acknowledged; released once its conditions clear');
        return { ok: true, state: 'tripped', deferred: true, raised };
      }
      this.emit({ kind: 'audit', key: asset, eventTime: at, payload: { type: 'ack_refused', asset, by, via, at, raised } });
      this.logger.warn({ asset, by, via, raised: names }, 'acknowledgement refused: tripping condition still raised');
      return {
        ok: false,
        reason: 'raised',
        error: `asset "${asset}" stays tripped: its tripping condition still holds (${names}); acknowledge again once it has cleared`,
        raised,
      };
    }
    this.release(latch, by, via, at);
    return { ok: true, state: 'running' };
  }

  /** `reset: when_clear`: releases a deferred acknowledgement once nothing is raised any more. */
  private maybeRelease(latch: AssetLatch): void {
    const d = latch.deferredAck;
    if (!d || latch.state !== 'tripped') return;
    if (this.raisedConditions(latch.config.asset).length > 0) return;
    this.release(latch, d.by, d.via, this.now(), true);
  }

  private release(latch: AssetLatch, by: string, via: string, at: number, deferred = false): void {
    const asset = latch.config.asset;
    this.disarmReassert(latch);
    const trippedAt = latch.trippedAt;
    const released = latch.config.dry_run ? [] : this.send(latch, 'release');
    latch.state = 'running';
    latch.pending = undefined;
    latch.cause = undefined;
    latch.deferredAck = undefined;
    latch.cooldownUntil = at + latch.config.cooldown;
    if (!latch.config.dry_run) this.record(() => this.opts.journal?.released(asset, by, at));
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
        ...(deferred ? { deferred: true } : {}),
        ...(trippedAt !== undefined ? { tripped_at: trippedAt } : {}),
        ...(released.length > 0 ? { released } : {}),
      },
    });
    this.record(() => this.logger.info({ asset, by, via, deferred }, 'trip acknowledged'));
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
      // The gateway clock stepped back: restart the silence clock rather than wait out the jump.
      if (t < w.lastSeen) w.lastSeen = t;
      if (t - w.lastSeen > fs.silent_after) this.sensorFault(w, 'silent', undefined);
    }
    for (const latch of this.latches.values()) this.recheck(latch);
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
    if (fs.policy === 'stop') {
      latch.raised.set(conditionKey(`fail_safe:${cause}`, w.sensor), { detector: `fail_safe:${cause}`, sensor: w.sensor });
      this.trip(latch, {
        detector: `fail_safe:${cause}`,
        sensor: w.sensor,
        severity: 'critical',
        value: r?.value ?? Number.NaN,
        eventTime: r?.eventTime ?? at,
      });
    }
  }

  sensorBack(w: SensorWatch, cause: 'silent' | 'bad'): void {
    if (cause === 'silent') w.silent = false;
    else w.bad = false;
    const latch = this.latches.get(w.asset) as AssetLatch;
    latch.raised.delete(conditionKey(`fail_safe:${cause}`, w.sensor));
    const at = this.now();
    this.emit({
      kind: 'alarm',
      key: w.asset,
      eventTime: at,
      payload: { type: 'fail_safe', state: 'cleared', asset: w.asset, sensor: w.sensor, cause, at },
    });
    this.logger.info({ asset: w.asset, sensor: w.sensor, cause }, 'watched sensor back');
    this.maybeRelease(latch);
  }
}
