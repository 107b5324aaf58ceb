/**
 * The one encoder of stored and synced record bodies: in-process records are camelCase
 * (`Anomaly.detectorType`), record bodies snake_case (`detector_type`), as the event contract
 * (schema/events/*.v2.json, docs/events.md) says. Every body built from an in-process object goes
 * through `recordBody`; bodies written as literals (trips, alarms, audits, aggregates, twins) are
 * snake_case as written, which test/events-contract.test.ts checks on every key of every record.
 *
 * Only the top level is renamed: nested objects are data (evidence, a twin's sensors by id, an
 * ensemble's members by detector id) whose keys are ids or already snake_case, never renamed.
 * The stored form is the synced form, byte for byte; it is the same as before this encoder, so
 * stores written by earlier versions sync unchanged.
 */
import type { Anomaly } from './types.js';

const snakeKeys = new Map<string, string>();

/** `detectorType` → `detector_type`; snake_case keys are returned as they are. */
export function snakeCase(key: string): string {
  let s = snakeKeys.get(key);
  if (s === undefined) {
    s = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    snakeKeys.set(key, s);
  }
  return s;
}

/** The record body of an in-process object: its own top-level keys in snake_case, then `extra`. */
export function recordBody(o: object, extra?: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[snakeCase(k)] = v;
  if (extra) Object.assign(out, extra);
  return out;
}

/** Where an anomaly decided under an untrusted clock came from (boot and monotonic clock). */
export interface UntrustedClock {
  readonly boot_id: string;
  readonly monotonic_ms: number;
}

/** The body of an `anomaly` record (schema/events/anomaly.v2.json). */
export function anomalyRecord(a: Anomaly, untrusted: UntrustedClock | undefined): Record<string, unknown> {
  return recordBody(a, untrusted ? { clock_trusted: false, ...untrusted } : undefined);
}
