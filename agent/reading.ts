import type { BoundSensor } from './driver.js';
import type { Quality, Reading } from './types.js';

/**
 * The one place a `Reading` is made. A value outside the sensor's declared physical range is
 * marked `bad` here, so every driver gets the same range check.
 */
export function makeReading(
  sensor: BoundSensor,
  value: number,
  eventTime: number,
  ingestTime: number,
  quality: Quality = 'good',
): Reading {
  let q = quality;
  if (
    q === 'good' &&
    (Number.isNaN(value) || (sensor.min !== undefined && value < sensor.min) || (sensor.max !== undefined && value > sensor.max))
  ) {
    q = 'bad';
  }
  // Immutable by type (`Readonly`); not Object.freeze: freezing costs as much as making the object.
  return {
    asset: sensor.asset,
    sensor: sensor.id,
    metric: sensor.metric,
    value,
    unit: sensor.unit,
    eventTime,
    ingestTime,
    quality: q,
  };
}

/**
 * Every sensor's slot: its index when the assets' sensors are listed in config order. The pipeline,
 * the twin and the agent's bound sensors use the same numbering.
 */
export function sensorSlots(
  assets: ReadonlyArray<{ readonly id: string; readonly sensors: ReadonlyArray<{ readonly id: string }> }>,
): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  let slot = 0;
  for (const a of assets) {
    const byId = new Map<string, number>();
    out.set(a.id, byId);
    for (const s of a.sensors) byId.set(s.id, slot++);
  }
  return out;
}

export const sensorKey = (asset: string, sensor: string): string => `${asset}/${sensor}`;
