/**
 * The records that flow through the agent. A `Reading` is made once at the driver boundary and
 * never reshaped; anomalies, actions and audit entries are their own records that point back to it.
 */

export const METRICS = [
  'temperature',
  'pressure',
  'vibration',
  'current',
  'voltage',
  'flow',
  'speed',
  'level',
  'state',
  'other',
] as const;
export type Metric = (typeof METRICS)[number];

/** good: fresh value; stale: last known value repeated; comm_error: the device did not answer; bad: out of range / sensor fault. */
export const QUALITIES = ['good', 'stale', 'comm_error', 'bad'] as const;
export type Quality = (typeof QUALITIES)[number];

export interface Reading {
  readonly asset: string;
  readonly sensor: string;
  readonly metric: Metric;
  readonly value: number;
  readonly unit: string;
  /** When the value was measured, epoch ms (source clock, or arrival when the source has none). */
  readonly eventTime: number;
  /** When the agent accepted it, epoch ms. */
  readonly ingestTime: number;
  readonly quality: Quality;
}

export const EVENT_KINDS = ['aggregate', 'anomaly', 'action', 'audit', 'alarm', 'capture', 'twin'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/** Routine aggregates rank below everything an operator or auditor needs. Higher is kept longer. */
export const EVENT_PRIORITY: Readonly<Record<EventKind, number>> = {
  aggregate: 0,
  capture: 1,
  twin: 1,
  anomaly: 2,
  alarm: 2,
  action: 3,
  audit: 3,
};

/** An event as handed to the store. The store assigns the sequence number. */
export interface AgentEvent {
  readonly kind: EventKind;
  /** Partitioning key: the asset id, or the gateway id for gateway-wide events. */
  readonly key: string;
  readonly eventTime: number;
  readonly payload: Readonly<Record<string, unknown>>;
}

export type Severity = 'info' | 'warning' | 'critical';

export interface Anomaly {
  readonly detector: string;
  readonly detectorType: string;
  readonly asset: string;
  readonly sensor: string;
  readonly severity: Severity;
  /** 'raised' when the condition starts, 'cleared' when it ends. */
  readonly state: 'raised' | 'cleared';
  readonly eventTime: number;
  readonly value: number;
  /** What the detector saw: limits, window, counts, scores. */
  readonly evidence: Readonly<Record<string, unknown>>;
  /** Whether this anomaly may trip the asset's interlock. */
  readonly trip: boolean;
}

/** A tripping condition that holds now: the detector (or `fail_safe:*`, `range:*`) and its sensor. */
export interface RaisedCondition {
  readonly detector: string;
  readonly sensor: string;
}

/** The outcome of an acknowledgement (contract C: a refusal names the conditions still raised). */
export type AckResult =
  | { readonly ok: true; readonly state: 'running' }
  | { readonly ok: true; readonly state: 'tripped'; readonly deferred: true; readonly raised: readonly RaisedCondition[] }
  | { readonly ok: false; readonly reason: 'not_tripped'; readonly error: string }
  | { readonly ok: false; readonly reason: 'raised'; readonly error: string; readonly raised: readonly RaisedCondition[] };
