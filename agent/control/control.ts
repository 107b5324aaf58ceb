/**
 * The control plane: signed control messages change, within declared bounds, the tuning parameters
 * the data stream is judged by (docs/control.md). Transport-agnostic: the MQTT (agent/control/mqtt.ts)
 * and the Kafka control topic (agent/sync/control.ts) hand every raw message to `handle` and publish
 * its answer; there is no other way in.
 *
 * Order of checks for a message: signed envelope (key, Ed25519 signature), body schema, gateway id,
 * times (expired, issued in the future, lifetime above control.max_lifetime), replay (an id already
 * applied is remembered until the message expires, persisted), then the command:
 *   set      parameters declared in control.limits.<detector>, each within its bounds; the detector's
 *            whole config with them must pass the config file's schema and checks. A value weaker than
 *            the file's (control.weakening) needs valid_for, after which the file's value returns.
 *   reset    back to the file's values
 *   relearn  a new learning phase, for learning detectors that do not protect (trip) anything
 *   model    swap the on-device model to a version from the models directory
 * Protection itself (trip, direction, severity, sensors, windows, interlocks) is never changeable:
 * only a validated config reload changes it.
 *
 * A `set` is persisted, then applied in one synchronous step between two readings (atomic: no
 * reading is judged by a half-applied update), then audited. Anything wrong is refused with its
 * reason; detection keeps running either way.
 */
import type { KeyObject } from 'node:crypto';
import type { z } from 'zod';
import type { AgentConfig, DetectorConfig } from '../config/schema.js';
import { detectorSchema } from '../config/schema.js';
import { detectionChecks } from '../detectors/registry.js';
import type { Logger } from '../log.js';
import type { ModelControl } from '../model/control.js';
import type { Pipeline } from '../pipeline.js';
import type { AgentEvent } from '../types.js';
import {
  type Command,
  commandSchema,
  keysFilePath,
  loadKeys,
  type VerifyFailure,
  validForMs,
  verifyMessage,
} from './envelope.js';
import { isWeakening, tunableParams } from './params.js';
import type { ParamOrigin, SetpointStore, StoredSetpoint } from './setpoints.js';

export type ControlResult =
  | {
      readonly ok: true;
      readonly id?: string;
      readonly detector?: string;
      readonly op: string;
      readonly config?: DetectorConfig;
      readonly expires_at?: string;
      readonly reset?: readonly string[];
      readonly model_version?: string;
    }
  | { readonly ok: false; readonly id?: string; readonly error: string; readonly reason?: RefusalKind };

export type RefusalKind = VerifyFailure | 'no_keys' | 'rate_limited' | 'replayed' | 'refused';

/** One run-time parameter as the twin and `control show` report it (contract B). */
export interface Setting {
  readonly value: number | null;
  readonly file_value: number | null;
  readonly origin: 'file' | 'override';
  readonly by?: string;
  readonly message_id?: string;
  readonly applied_at?: number;
  readonly expires_at?: number;
}

/** A stored override, for `control show`: in force, or suspended because the config file changed under it. */
export interface OverrideView {
  readonly detector: string;
  readonly param: string;
  readonly file_value: unknown;
  readonly value: unknown;
  readonly by: string | null;
  readonly message_id: string | null;
  readonly applied_at: number;
  readonly expires_at: number | null;
  readonly origin: string;
  /** Set when the config file's value changed since the override was made: the file's value applies. */
  readonly conflict?: { readonly file_value_then: unknown; readonly file_value_now: unknown };
  /** Set when today's control.limits do not allow the value: it is dropped at the next start. */
  readonly not_allowed?: string;
}

export interface ControlOptions {
  readonly config: AgentConfig;
  readonly pipeline: Pipeline;
  readonly emit: (ev: AgentEvent) => void;
  readonly logger: Logger;
  readonly now?: () => number;
  readonly model?: ModelControl;
}

/** Refusals of messages nobody proved they may send are logged (and audited) at most once per this. */
const LOG_EVERY_MS = 10_000;
const UNAUTHENTICATED = new Set<RefusalKind>([
  'malformed',
  'unsigned',
  'unknown_key',
  'bad_signature',
  'no_keys',
  'rate_limited',
]);

/** Keys named as protection in the refusal, even where a detector type does not have them. */
const PROTECTED = new Set([
  'trip',
  'direction',
  'severity',
  'enabled',
  'interlock',
  'id',
  'type',
  'asset',
  'sensor',
  'sensors',
  'window',
  'feature',
  'learn',
]);

interface Override extends StoredSetpoint {
  timer?: NodeJS.Timeout;
}

export class ControlPlane {
  private readonly fileConfig = new Map<string, DetectorConfig>();
  /** Overrides in force, by detector. */
  private readonly overrides = new Map<string, Override>();
  /** Stored overrides the config file changed under (not applied), by detector. */
  private readonly conflicts = new Map<string, StoredSetpoint>();
  /** Ids applied, until their message expires (also persisted in the store, when there is one). */
  private readonly applied = new Map<string, number>();
  private readonly protective = new Set<string>();
  private keys: ReadonlyMap<string, KeyObject> | undefined;
  private keysProblem = 'no public keys loaded';
  private store: SetpointStore | undefined;
  private readonly lastLog = new Map<RefusalKind, { at: number; suppressed: number }>();
  private readonly now: () => number;
  /** Token bucket of control.max_rate checks per second: an Ed25519 verification costs CPU the hot path shares. */
  private tokens: number;
  private refilledAt = Number.NEGATIVE_INFINITY;
  /** Called after a detector's effective parameters changed (twin). Must be cheap and synchronous. */
  readonly listeners: Array<(detector: string) => void> = [];
  readonly counters = { applied: 0, rejected: 0, byReason: {} as Partial<Record<RefusalKind, number>> };

  constructor(private readonly o: ControlOptions) {
    this.now = o.now ?? Date.now;
    this.tokens = o.config.control.max_rate;
    for (const d of o.config.detectors) this.fileConfig.set(d.id, d);
    const tripping = new Set(o.config.detectors.filter((d) => d.trip).map((d) => d.id));
    for (const e of o.config.ensembles) if (e.trip) for (const m of e.members) tripping.add(m);
    for (const id of tripping) this.protective.add(id);
  }

  private get logger(): Logger {
    return this.o.logger;
  }

  /** Loads the public keys (control.keys_file, the systemd credential, or the default path). Never throws. */
  loadKeys(env: NodeJS.ProcessEnv = process.env): void {
    const path = keysFilePath(this.o.config.control.keys_file, env);
    try {
      this.keys = loadKeys(path);
      this.logger.info({ path, key_ids: [...this.keys.keys()] }, 'control keys loaded');
      if (this.keys.size === 0) this.keysProblem = `${path} lists no keys`;
    } catch (err) {
      this.keys = undefined;
      this.keysProblem = `no public keys: ${(err as Error).message}`;
      if (this.o.config.control.mqtt || this.o.config.control.kafka)
        this.logger.error(
          { path, err: (err as Error).message },
          'control keys unavailable: every control message will be refused',
        );
    }
  }

  /** Uses these keys (tests, tools). */
  setKeys(keys: ReadonlyMap<string, KeyObject>): void {
    this.keys = keys;
  }

  /**
   * Re-applies the overrides persisted by earlier runs (at start, before sources start). Each one is
   * checked again against today's file: expired ones are dropped, ones outside today's bounds are
   * dropped, and ones whose parameters the file changed since are suspended (the file wins) and
   * named in the log. Every override in force is logged with both values.
   */
  restore(store: SetpointStore): void {
    this.store = store;
    const now = this.now();
    store.prune(now);
    for (const s of store.all()) {
      const file = this.fileConfig.get(s.detector);
      if (s.expiresAt !== null && s.expiresAt <= now) {
        store.remove(s.detector);
        this.audit({ type: 'control_expired', detector: s.detector, params: s.params, expired_at: s.expiresAt });
        this.logger.info(
          { detector: s.detector, params: s.params },
          'run-time override expired while stopped; config file values apply',
        );
        continue;
      }
      const changed = file ? fileChanges(file, s) : [];
      if (changed.length > 0) {
        this.conflicts.set(s.detector, s);
        for (const c of changed)
          this.logger.warn(
            { detector: s.detector, param: c.param, file_value_then: c.then, file_value_now: c.now, override: s.params[c.param] },
            'config file changed under a run-time override: the file value applies, the override is suspended (edge-agent control show / reset)',
          );
        this.audit({ type: 'control_conflict', detector: s.detector, params: s.params, changes: changed });
        continue;
      }
      const res = this.validateSet(s.detector, s.params, s.expiresAt);
      if ('error' in res) {
        store.remove(s.detector);
        this.logger.warn(
          { detector: s.detector, params: s.params, reason: res.error },
          'persisted override not allowed by this config: dropped, config file values apply',
        );
        this.audit({ type: 'control_rejected', origin: 'restore', detector: s.detector, params: s.params, reason: res.error });
        continue;
      }
      this.o.pipeline.reconfigure(s.detector, res.config);
      this.setOverride(s);
      for (const [param, value] of Object.entries(s.params))
        this.logger.info(
          {
            detector: s.detector,
            param,
            file_value: file ? (file as unknown as Record<string, unknown>)[param] : undefined,
            value,
            by: s.meta[param]?.by ?? s.by,
            message_id: s.meta[param]?.message_id ?? s.messageId,
            expires_at: s.expiresAt === null ? null : new Date(s.expiresAt).toISOString(),
          },
          'run-time override in force',
        );
      this.notify(s.detector);
    }
  }

  /** A raw message from a control topic: verify, then apply. The answer keeps the shape {ok, id, error?}. */
  async handle(raw: string | Uint8Array, origin: string): Promise<ControlResult> {
    const now = this.now();
    if (!this.take(now))
      return this.refuse(
        'rate_limited',
        `more than control.max_rate (${this.o.config.control.max_rate}/s) control messages: not checked`,
        undefined,
        origin,
        raw,
      );
    if (!this.keys || this.keys.size === 0) return this.refuse('no_keys', this.keysProblem, undefined, origin, raw);
    const v = verifyMessage(raw, {
      keys: this.keys,
      gatewayId: this.o.config.gateway.id,
      now,
      maxLifetimeMs: this.o.config.control.max_lifetime,
    });
    if (!v.ok) return this.refuse(v.kind, v.error, v.id, origin, raw);
    const b = v.body;
    const expires = Date.parse(b.expires_at);
    if (this.wasApplied(b.id, now)) return this.refuse('replayed', `message "${b.id}" was already applied`, b.id, origin, raw);
    const { gateway_id: _g, issued_at: _i, expires_at: _e, ...cmd } = b;
    const meta = { origin, keyId: v.keyId, seenUntil: expires };
    if (cmd.op === 'model') return this.applyModel(cmd, meta);
    return this.applyCommand(cmd, meta);
  }

  private take(now: number): boolean {
    const rate = this.o.config.control.max_rate;
    if (now > this.refilledAt) {
      this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAt) / 1000) * rate);
      this.refilledAt = now;
    }
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  private async applyModel(
    cmd: Extract<Command, { op: 'model' }>,
    meta: { origin: string; keyId?: string; seenUntil?: number },
  ): Promise<ControlResult> {
    if (!this.o.model) return this.refuse('refused', 'no model is configured on this gateway', cmd.id, meta.origin, cmd);
    const res = await this.o.model.apply({ model_version: cmd.params.model_version });
    if (!res.ok) return this.refuse('refused', res.reason ?? 'model swap refused', cmd.id, meta.origin, cmd);
    this.remember(cmd.id, meta.seenUntil);
    this.audit({
      type: 'control',
      op: 'model',
      model_version: cmd.params.model_version,
      message_id: cmd.id,
      by: cmd.by,
      origin: meta.origin,
      key_id: meta.keyId,
    });
    this.counters.applied++;
    return { ok: true, id: cmd.id, op: 'model', model_version: cmd.params.model_version };
  }

  /**
   * Applies one command whose sender was already verified (`handle`), or a JSON command in the
   * golden detection cases. Synchronous: validated, persisted, applied, audited.
   */
  applyCommand(input: unknown, meta: { origin: string; keyId?: string; seenUntil?: number }): ControlResult {
    const { origin } = meta;
    let data = input;
    if (typeof input === 'string') {
      try {
        data = JSON.parse(input);
      } catch (err) {
        return this.refuse('malformed', `not JSON: ${(err as Error).message}`, undefined, origin, input);
      }
    }
    const parsed = commandSchema.safeParse(data);
    if (!parsed.success) {
      const msgId = typeof (data as { id?: unknown })?.id === 'string' ? (data as { id: string }).id : undefined;
      return this.refuse('bad_body', formatIssues(parsed.error.issues), msgId, origin, data);
    }
    const m = parsed.data;
    if (m.op === 'model') return this.refuse('refused', 'model swaps go through handle()', m.id, origin, data);
    const current = this.o.pipeline.detector(m.detector);
    if (!current) return this.refuse('refused', `unknown detector "${m.detector}"`, m.id, origin, data);
    const now = this.now();

    if (m.op === 'relearn') {
      if (this.protective.has(m.detector))
        return this.refuse(
          'refused',
          `detector "${m.detector}" protects an interlock (trip): relearning would silence it; restart or reload the config to relearn`,
          m.id,
          origin,
          data,
        );
      if (!this.o.pipeline.relearn(m.detector))
        return this.refuse('refused', `detector "${m.detector}" (${current.config.type}) learns no baseline`, m.id, origin, data);
      this.remember(m.id, meta.seenUntil);
      this.audit({
        type: 'control',
        op: 'relearn',
        detector: m.detector,
        message_id: m.id,
        by: m.by,
        origin,
        key_id: meta.keyId,
      });
      this.counters.applied++;
      return { ok: true, id: m.id, detector: m.detector, op: m.op };
    }

    const file = this.fileConfig.get(m.detector) as DetectorConfig;
    if (m.op === 'reset') {
      const previous = current.config;
      const had = this.overrides.has(m.detector) || this.conflicts.has(m.detector);
      try {
        this.store?.remove(m.detector, meta.seenUntil !== undefined ? { id: m.id, until: meta.seenUntil } : undefined);
      } catch (err) {
        return this.notPersisted(m.id, origin, err, data);
      }
      if (meta.seenUntil !== undefined) this.applied.set(m.id, meta.seenUntil);
      this.dropOverride(m.detector);
      this.o.pipeline.reconfigure(m.detector, file);
      const changed = Object.keys(this.pickChanged(previous, file));
      this.audit({
        type: 'control',
        op: 'reset',
        detector: m.detector,
        previous: pick(previous, changed),
        applied: pick(file, changed),
        had_override: had,
        message_id: m.id,
        by: m.by,
        origin,
        key_id: meta.keyId,
      });
      this.counters.applied++;
      this.logger.info({ detector: m.detector, op: 'reset', origin, by: m.by }, 'run-time override reset to the config file');
      this.notify(m.detector);
      return { ok: true, id: m.id, detector: m.detector, op: m.op, config: file };
    }

    const existing = this.overrides.get(m.detector);
    const params = { ...existing?.params, ...m.params };
    let expiresAt = existing?.expiresAt ?? null;
    if (m.valid_for !== undefined) {
      const ms = validForMs(m.valid_for);
      const max = this.o.config.control.max_valid_for;
      if (ms > max)
        return this.refuse(
          'refused',
          `valid_for ${ms / 1000} s exceeds control.max_valid_for (${max / 1000} s)`,
          m.id,
          origin,
          data,
        );
      expiresAt = now + ms;
    }
    const res = this.validateSet(m.detector, params, expiresAt);
    if ('error' in res) return this.refuse('refused', res.error, m.id, origin, data);
    const metaByParam: Record<string, ParamOrigin> = { ...existing?.meta };
    for (const k of Object.keys(m.params)) metaByParam[k] = { by: m.by, message_id: m.id, applied_at: now };
    const stored: StoredSetpoint = {
      detector: m.detector,
      params,
      updatedAt: now,
      messageId: m.id,
      origin,
      by: m.by,
      expiresAt,
      fileParams: pick(file, Object.keys(params)),
      meta: metaByParam,
    };
    try {
      this.store?.save(stored, meta.seenUntil);
    } catch (err) {
      return this.notPersisted(m.id, origin, err, data);
    }
    if (meta.seenUntil !== undefined) this.applied.set(m.id, meta.seenUntil);
    const previous = current.config;
    this.o.pipeline.reconfigure(m.detector, res.config);
    this.conflicts.delete(m.detector);
    this.setOverride(stored);
    const changed = Object.keys(m.params);
    this.audit({
      type: 'control',
      op: 'set',
      detector: m.detector,
      params: m.params,
      previous: pick(previous, changed),
      applied: pick(res.config, changed),
      file: pick(file, changed),
      expires_at: expiresAt,
      message_id: m.id,
      by: m.by,
      origin,
      key_id: meta.keyId,
    });
    this.counters.applied++;
    this.logger.info({ detector: m.detector, op: 'set', params: m.params, by: m.by, origin }, 'run-time override applied');
    this.notify(m.detector);
    return {
      ok: true,
      id: m.id,
      detector: m.detector,
      op: m.op,
      config: res.config,
      ...(expiresAt !== null ? { expires_at: new Date(expiresAt).toISOString() } : {}),
    };
  }

  /**
   * Returns detectors to the config file (all when `detector` is undefined): the local API's
   * `edge-agent control reset`, authenticated by the API token. Never weakens: the file is the
   * validated configuration.
   */
  reset(detector: string | undefined, by: string, origin = 'api'): ControlResult {
    if (detector !== undefined && !this.fileConfig.has(detector))
      return { ok: false, error: `unknown detector "${detector}"`, reason: 'refused' };
    const targets = detector !== undefined ? [detector] : [...new Set([...this.overrides.keys(), ...this.conflicts.keys()])];
    const reset: string[] = [];
    for (const d of targets) {
      const r = this.applyCommand({ op: 'reset', detector: d, id: `${origin}-reset-${this.now()}-${d}`, by }, { origin });
      if (!r.ok) return r;
      reset.push(d);
    }
    return { ok: true, op: 'reset', reset, ...(detector !== undefined ? { detector } : {}) };
  }

  /** Every stored override: in force, or suspended by a conflict with the config file. */
  overridesView(): OverrideView[] {
    const out: OverrideView[] = [];
    const rows = [...this.overrides.values(), ...this.conflicts.values()].sort((a, b) => a.detector.localeCompare(b.detector));
    for (const s of rows) out.push(...viewOf(s, this.fileConfig.get(s.detector), this.o.config.control.limits));
    return out;
  }

  /** The run-time changeable parameters of a detector (those in control.limits), with their origin (contract B). */
  settings(detector: string): Record<string, Setting> {
    const declared = this.o.config.control.limits[detector];
    const d = this.o.pipeline.detector(detector);
    const file = this.fileConfig.get(detector);
    if (!declared || !d || !file) return {};
    const o = this.overrides.get(detector);
    const out: Record<string, Setting> = {};
    for (const param of Object.keys(declared)) {
      const value = num((d.config as unknown as Record<string, unknown>)[param]);
      const fileValue = num((file as unknown as Record<string, unknown>)[param]);
      if (o && param in o.params) {
        const pm = o.meta[param];
        out[param] = {
          value,
          file_value: fileValue,
          origin: 'override',
          by: pm?.by ?? o.by ?? undefined,
          message_id: pm?.message_id ?? o.messageId ?? undefined,
          applied_at: pm?.applied_at ?? o.updatedAt,
          ...(o.expiresAt !== null ? { expires_at: o.expiresAt } : {}),
        } as Setting;
      } else out[param] = { value, file_value: fileValue, origin: 'file' };
    }
    return out;
  }

  /** Clears the expiry timers (agent stop). Idempotent. */
  stop(): void {
    for (const o of this.overrides.values()) if (o.timer) clearTimeout(o.timer);
  }

  private validateSet(
    detector: string,
    params: Record<string, unknown>,
    expiresAt: number | null,
  ): { config: DetectorConfig } | { error: string } {
    const base = this.fileConfig.get(detector);
    if (!base) return { error: `unknown detector "${detector}"` };
    const c = this.o.config.control;
    const declared = c.limits[detector] ?? {};
    const tunable = new Set(tunableParams(base.type));
    for (const [param, value] of Object.entries(params)) {
      const bounds = declared[param];
      if (!bounds) {
        if (!tunable.has(param) && !PROTECTED.has(param) && !(param in base))
          return { error: `"${param}" is not a parameter of a ${base.type} detector` };
        const why = tunable.has(param)
          ? `not declared in control.limits.${detector}`
          : 'protection and structure (trip, direction, severity, enabled, asset, sensors, windows, interlocks) change only by a config reload';
        const allowed = Object.keys(declared);
        return {
          error: `cannot change "${param}" of "${detector}" at run time: ${why}${allowed.length ? ` (changeable: ${allowed.join(', ')})` : ' (nothing of it is changeable)'}`,
        };
      }
      if (typeof value !== 'number' || !Number.isFinite(value)) return { error: `${param}: expected a number` };
      const [lo, hi] = bounds;
      if (value < lo || value > hi)
        return { error: `${param} ${value} is outside its bounds [${lo}, ${hi}] (control.limits.${detector})` };
    }
    const parsed = detectorSchema.safeParse({ ...base, ...params });
    if (!parsed.success) return { error: formatIssues(parsed.error.issues) };
    const problems = detectionChecks({ ...this.o.config, detectors: [parsed.data] });
    if (problems.length > 0) return { error: problems.map((p) => p.message).join('; ') };
    for (const [param, value] of Object.entries(params)) {
      if (!isWeakening(base, param, value as number)) continue;
      const fileValue = (base as unknown as Record<string, unknown>)[param];
      if (c.weakening === 'reject')
        return {
          error: `${param} ${value} is weaker protection than the file's ${fileValue}, and control.weakening is "reject"`,
        };
      if (expiresAt === null)
        return {
          error: `${param} ${value} is weaker protection than the file's ${fileValue}: send it with valid_for (at most ${c.max_valid_for / 1000} s); the file's value returns after it`,
        };
    }
    return { config: parsed.data };
  }

  private setOverride(s: StoredSetpoint): void {
    const old = this.overrides.get(s.detector);
    if (old?.timer) clearTimeout(old.timer);
    const o: Override = { ...s };
    if (s.expiresAt !== null) {
      o.timer = setTimeout(
        () => this.expire(s.detector, s.expiresAt as number),
        Math.min(2 ** 31 - 1, Math.max(0, s.expiresAt - this.now())),
      );
      o.timer.unref();
    }
    this.overrides.set(s.detector, o);
  }

  private dropOverride(detector: string): void {
    const o = this.overrides.get(detector);
    if (o?.timer) clearTimeout(o.timer);
    this.overrides.delete(detector);
    this.conflicts.delete(detector);
  }

  /** The file's values return when an override's valid_for has passed. */
  private expire(detector: string, expiresAt: number): void {
    const o = this.overrides.get(detector);
    if (!o || o.expiresAt !== expiresAt) return;
    if (this.now() < expiresAt) {
      this.setOverride(o);
      return;
    }
    const file = this.fileConfig.get(detector) as DetectorConfig;
    try {
      this.store?.remove(detector);
    } catch (err) {
      this.logger.error(
        { detector, err: (err as Error).message },
        'cannot remove an expired override from the store; it is dropped at the next start',
      );
    }
    this.dropOverride(detector);
    this.o.pipeline.reconfigure(detector, file);
    this.audit({
      type: 'control_expired',
      detector,
      params: o.params,
      applied: pick(file, Object.keys(o.params)),
      expired_at: expiresAt,
    });
    this.logger.info({ detector, params: o.params }, 'run-time override expired; config file values apply');
    this.notify(detector);
  }

  private wasApplied(id: string, now: number): boolean {
    const until = this.applied.get(id);
    if (until !== undefined && until > now) return true;
    try {
      return this.store?.seen(id, now) ?? false;
    } catch {
      return false;
    }
  }

  private remember(id: string, until: number | undefined): void {
    if (until === undefined) return;
    this.applied.set(id, until);
    try {
      this.store?.markSeen(id, until);
    } catch (err) {
      this.logger.warn(
        { err: (err as Error).message },
        'cannot persist an applied message id (replay protection holds until restart)',
      );
    }
    if (this.applied.size > 10_000) {
      const now = this.now();
      for (const [k, t] of this.applied) if (t <= now) this.applied.delete(k);
    }
  }

  private notify(detector: string): void {
    for (const l of this.listeners) {
      try {
        l(detector);
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'control listener failed');
      }
    }
  }

  private pickChanged(a: DetectorConfig, b: DetectorConfig): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(b))
      if (JSON.stringify((a as unknown as Record<string, unknown>)[k]) !== JSON.stringify(v)) out[k] = v;
    return out;
  }

  private notPersisted(id: string, origin: string, err: unknown, data: unknown): ControlResult {
    this.logger.error({ err: (err as Error).message }, 'cannot persist a control change; not applied');
    return this.refuse('refused', `not persisted: ${(err as Error).message}`, id, origin, data);
  }

  private refuse(kind: RefusalKind, reason: string, msgId: string | undefined, origin: string, raw: unknown): ControlResult {
    this.counters.rejected++;
    this.counters.byReason[kind] = (this.counters.byReason[kind] ?? 0) + 1;
    // Anyone who can reach the topic can send unsigned or forged messages: log and audit those at
    // most once per LOG_EVERY_MS per kind, with the count of those left out, so a flood cannot fill the store.
    let suppressed = 0;
    if (UNAUTHENTICATED.has(kind)) {
      const now = this.now();
      const l = this.lastLog.get(kind);
      if (l && now - l.at < LOG_EVERY_MS) {
        l.suppressed++;
        return this.answer(msgId, reason, kind);
      }
      suppressed = l?.suppressed ?? 0;
      this.lastLog.set(kind, { at: now, suppressed: 0 });
    }
    const text =
      typeof raw === 'string'
        ? raw
        : raw instanceof Uint8Array
          ? Buffer.from(raw).toString('utf8')
          : (JSON.stringify(raw) ?? String(raw));
    this.audit({
      type: 'control_rejected',
      origin,
      message_id: msgId,
      reason,
      kind,
      message: text.slice(0, 1024),
      ...(suppressed ? { suppressed_since_last: suppressed } : {}),
    });
    this.logger.warn(
      { origin, kind, reason, ...(suppressed ? { suppressed_since_last: suppressed } : {}) },
      'control message refused',
    );
    return this.answer(msgId, reason, kind);
  }

  private answer(msgId: string | undefined, error: string, reason: RefusalKind): ControlResult {
    return msgId === undefined ? { ok: false, error, reason } : { ok: false, id: msgId, error, reason };
  }

  private audit(payload: Record<string, unknown>): void {
    const at = this.now();
    this.o.emit({ kind: 'audit', key: this.o.config.gateway.id, eventTime: at, payload: { ...payload, at } });
  }
}

/** Parameters whose value in today's file differs from the file's value when the override was made. */
export function fileChanges(file: DetectorConfig, s: StoredSetpoint): Array<{ param: string; then: unknown; now: unknown }> {
  if (!s.fileParams) return [];
  const out: Array<{ param: string; then: unknown; now: unknown }> = [];
  for (const param of Object.keys(s.params)) {
    const then = s.fileParams[param];
    const now = (file as unknown as Record<string, unknown>)[param];
    if (JSON.stringify(then) !== JSON.stringify(now)) out.push({ param, then, now });
  }
  return out;
}

/** One row per overridden parameter, with the conflict when the file changed under it. */
export function viewOf(
  s: StoredSetpoint,
  file: DetectorConfig | undefined,
  limits?: AgentConfig['control']['limits'],
): OverrideView[] {
  const changes = new Map((file ? fileChanges(file, s) : []).map((c) => [c.param, c]));
  return Object.entries(s.params).map(([param, value]) => {
    const c = changes.get(param);
    const pm = s.meta[param];
    const bounds = limits?.[s.detector]?.[param];
    const notAllowed =
      limits === undefined
        ? undefined
        : !file
          ? 'the detector is no longer in the config file'
          : !bounds
            ? `${param} is not declared in control.limits.${s.detector}`
            : typeof value !== 'number' || value < bounds[0] || value > bounds[1]
              ? `outside control.limits.${s.detector}.${param} [${bounds[0]}, ${bounds[1]}]`
              : undefined;
    return {
      detector: s.detector,
      param,
      file_value: file ? (file as unknown as Record<string, unknown>)[param] : undefined,
      value,
      by: pm?.by ?? s.by,
      message_id: pm?.message_id ?? s.messageId,
      applied_at: pm?.applied_at ?? s.updatedAt,
      expires_at: s.expiresAt,
      origin: s.origin,
      ...(c ? { conflict: { file_value_then: c.then, file_value_now: c.now } } : {}),
      ...(notAllowed ? { not_allowed: notAllowed } : {}),
    };
  });
}

function num(v: unknown): number | null {
  return typeof v === 'number' ? v : null;
}

function pick(o: object, keys: readonly string[]): Record<string, unknown> {
  const r: Record<string, unknown> = {};
  for (const k of keys) if (k in o) r[k] = (o as Record<string, unknown>)[k];
  return r;
}

function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((i) => `${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`).join('; ');
}
