import { describe, expect, it } from 'vitest';
import { anomalyRecord, recordBody, snakeCase } from './records.js';
import type { Anomaly } from './types.js';

const a: Anomaly = {
  detector: 'hot',
  detectorType: 'threshold',
  asset: 'pump-1',
  sensor: 'temperature',
  severity: 'critical',
  state: 'raised',
  eventTime: 1_767_225_600_000,
  value: 121,
  evidence: { raise_at: 120, watched_by: ['hot'], members: { pumpHot: { active: true } } },
  trip: true,
};

describe('record encoder', () => {
  it('writes an anomaly body exactly as stores written before it hold one (old rows and new rows sync alike)', () => {
    // The body the agent stored before the encoder (schema/events/anomaly.v2.json), field for field.
    const old = {
      detector: 'hot',
      detector_type: 'threshold',
      asset: 'pump-1',
      sensor: 'temperature',
      severity: 'critical',
      state: 'raised',
      event_time: 1_767_225_600_000,
      value: 121,
      evidence: { raise_at: 120, watched_by: ['hot'], members: { pumpHot: { active: true } } },
      trip: true,
    };
    expect(anomalyRecord(a, undefined)).toEqual(old);
    expect(JSON.parse(JSON.stringify(anomalyRecord(a, undefined)))).toEqual(JSON.parse(JSON.stringify(old)));
    expect(anomalyRecord(a, { boot_id: 'b', monotonic_ms: 5 })).toEqual({
      ...old,
      clock_trusted: false,
      boot_id: 'b',
      monotonic_ms: 5,
    });
  });

  it('renames top-level keys only: nested keys are data (ids), snake_case keys stay', () => {
    expect(snakeCase('detectorType')).toBe('detector_type');
    expect(snakeCase('window_start')).toBe('window_start');
    expect(recordBody({ modelVersion: 'v', byId: { pumpA: 1 } })).toEqual({ model_version: 'v', by_id: { pumpA: 1 } });
  });
});
