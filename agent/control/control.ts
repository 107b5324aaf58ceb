/**
 * The control plane: a control stream updates the settings the data stream is judged by.
 * Transport-agnostic: MQTT today (agent/control/mqtt.ts), a Kafka control topic later; each hands
 * the raw message to `applyControl` and publishes the result.
 *
 * Messages (JSON):
 *   { "op": "set", "detector": "pump-1-overheat", "params": { "setpoint": 95, "delta_up": 2 }, "id": "m-17", "by": "operator" }
 *   { "op": "reset", "detector": "pump-1-overheat" }      back to the config file's values
 *   { "op": "relearn", "detector": "pump-1-baseline" }    start a new learning phase
 *
 * A `set` is validated as a whole (the detector's config with the new params must pass the same
 * schema and checks as the config file; ids, types, sensors and windows cannot change at run
 * time), persisted, then applied in one synchronous step between two readings (atomic: no reading
 * is judged by a half-applied update), then audited. Anything wrong is rejected with its reason and
 * audited too; detection keeps running either way.
 */
import { z } from 'zod';
import { type AgentConfig, type DetectorConfig, detectorSchema, id } from '../config/schema.js';
import { detectionChecks } from '../detect/semantic.js';
import type { Logger } from '../log.js';
import type { Pipeline } from '../pipeline.js';
import type { AgentEvent } from '../types.js';
import type { SetpointStore } from './setpoints.js';

const common = {
  id: z.string().max(128).optional().meta({ description: 'Message id, echoed in the reply and the audit event' }),
  by: z.string().max(128).optional().meta({ description: 'Who sent it (operator, system)' }),
  detector: id,
};

export const controlMessageSchema = z.discriminatedUnion('op', [
  z.strictObject({ ...common, op: z.literal('set'), params: z.record(z.string(), z.unknown()) }),
  z.strictObject({ ...common, op: z.literal('reset') }),
  z.strictObject({ ...common, op: z.literal('relearn') }),
]);
export type ControlMessage = z.output<typeof controlMessageSchema>;

export type ControlResult =
  | { readonly ok: true; readonly id?: string; readonly detector: string; readonly op: string; readonly config?: DetectorConfig }
  | { readonly ok: false; readonly id?: string; readonly error: string };

/** Keys that define what a detector is and where it looks; changing them needs a config reload. */
const FIXED_KEYS = new Set(['id', 'type', 'asset', 'sensor', 'sensors', 'window', 'feature', 'learn']);
const MAX_RAW = 64 * 1024;

export class ControlPlane {
  private readonly fileConfig = new Map<string, DetectorConfig>();
  private readonly overrides = new Map<string, Record<string, unknown>>();
  counters = { applied: 0, rejected: 0 };

  constructor(
    private readonly config: AgentConfig,
    private readonly pipeline: Pipeline,
    private readonly emit: (ev: AgentEvent) => void,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
    private store: SetpointStore | undefined = undefined,
  ) {
    for (const d of config.detectors) this.fileConfig.set(d.id, d);
  }

  /** Re-applies the overrides persisted by earlier runs (at start, before sources start). */
  restore(store: SetpointStore): void {
    this.store = store;
    for (const s of store.all()) {
      const res = this.validateSet(s.detector, s.params);
      if ('error' in res) {
        this.logger.warn(
          { detector: s.detector, reason: res.error },
          'persisted setpoint no longer valid; config file value kept',
        );
        this.audit({ type: 'control_rejected', origin: 'restore', detector: s.detector, reason: res.error });
        continue;
      }
      this.pipeline.reconfigure(s.detector, res.config);
      this.overrides.set(s.detector, s.params);
    }
    if (this.overrides.size > 0) this.logger.info({ detectors: [...this.overrides.keys()] }, 'run-time setpoints restored');
  }

  /** Validates and applies one control message (a JSON string, bytes, or an already parsed object). */
  applyControl(raw: unknown, origin = 'api'): ControlResult {
    let data: unknown = raw;
    if (typeof raw === 'string' || raw instanceof Uint8Array) {
      const text = typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8');
      if (text.length > MAX_RAW) return this.reject(undefined, origin, `message larger than ${MAX_RAW} bytes`, text);
      try {
        data = JSON.parse(text);
      } catch (err) {
        return this.reject(undefined, origin, `not JSON: ${(err as Error).message}`, text);
      }
    }
    const parsed = controlMessageSchema.safeParse(data);
    if (!parsed.success) {
      const msgId = typeof (data as { id?: unknown })?.id === 'string' ? ((data as { id: string }).id as string) : undefined;
      return this.reject(msgId, origin, formatIssues(parsed.error.issues), data);
    }
    const m = parsed.data;
    const current = this.pipeline.detector(m.detector);
    if (!current) return this.reject(m.id, origin, `unknown detector "${m.detector}"`, data);

    if (m.op === 'relearn') {
      if (!this.pipeline.relearn(m.detector))
        return this.reject(m.id, origin, `detector "${m.detector}" (${current.config.type}) learns no baseline`, data);
      this.audit({ type: 'control', op: 'relearn', detector: m.detector, message_id: m.id, by: m.by, origin });
      this.counters.applied++;
      return { ok: true, id: m.id, detector: m.detector, op: m.op };
    }

    const params = m.op === 'set' ? { ...this.overrides.get(m.detector), ...m.params } : {};
    const res = this.validateSet(m.detector, params);
    if ('error' in res) return this.reject(m.id, origin, res.error, data);
    const at = this.now();
    try {
      if (m.op === 'reset') this.store?.remove(m.detector);
      else this.store?.save(m.detector, params, at, m.id, origin);
    } catch (err) {
      this.logger.error({ detector: m.detector, err: (err as Error).message }, 'cannot persist setpoint; update not applied');
      return this.reject(m.id, origin, `not persisted: ${(err as Error).message}`, data);
    }
    const previous = current.config;
    this.pipeline.reconfigure(m.detector, res.config);
    if (m.op === 'reset') this.overrides.delete(m.detector);
    else this.overrides.set(m.detector, params);
    const changed = m.op === 'set' ? Object.keys(m.params) : Object.keys(this.fileConfig.get(m.detector) ?? {});
    this.audit({
      type: 'control',
      op: m.op,
      detector: m.detector,
      params: m.op === 'set' ? m.params : undefined,
      previous: pick(previous, changed),
      applied: pick(res.config, changed),
      message_id: m.id,
      by: m.by,
      origin,
    });
    this.counters.applied++;
    this.logger.info({ detector: m.detector, op: m.op, origin }, 'setpoint updated');
    return { ok: true, id: m.id, detector: m.detector, op: m.op, config: res.config };
  }

  private validateSet(detector: string, params: Record<string, unknown>): { config: DetectorConfig } | { error: string } {
    const base = this.fileConfig.get(detector);
    if (!base) return { error: `unknown detector "${detector}"` };
    const fixed = Object.keys(params).filter((k) => FIXED_KEYS.has(k));
    if (fixed.length > 0) return { error: `cannot change ${fixed.join(', ')} at run time (edit the config file)` };
    const parsed = detectorSchema.safeParse({ ...base, ...params });
    if (!parsed.success) return { error: formatIssues(parsed.error.issues) };
    const problems = detectionChecks({ ...this.config, detectors: [parsed.data] });
    if (problems.length > 0) return { error: problems.map((p) => p.message).join('; ') };
    return { config: parsed.data };
  }

  private reject(msgId: string | undefined, origin: string, reason: string, raw: unknown): ControlResult {
    this.counters.rejected++;
    const text = typeof raw === 'string' ? raw : (JSON.stringify(raw) ?? String(raw));
    this.audit({ type: 'control_rejected', origin, message_id: msgId, reason, message: text.slice(0, 1024) });
    this.logger.warn({ origin, reason }, 'control message rejected');
    return msgId === undefined ? { ok: false, error: reason } : { ok: false, id: msgId, error: reason };
  }

  private audit(payload: Record<string, unknown>): void {
    const at = this.now();
    this.emit({ kind: 'audit', key: this.config.gateway.id, eventTime: at, payload: { ...payload, at } });
  }
}

function pick(o: object, keys: readonly string[]): Record<string, unknown> {
  const r: Record<string, unknown> = {};
  for (const k of keys) if (k in o) r[k] = (o as Record<string, unknown>)[k];
  return r;
}

function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((i) => `${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`).join('; ');
}
