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
  return Object.freeze({
    asset: sensor.asset,
    sensor: sensor.id,
    metric: sensor.metric,
    value,
    unit: sensor.unit,
    eventTime,
    ingestTime,
    quality: q,
  });
}

export const sensorKey = (asset: string, sensor: string): string => `${asset}/${sensor}`;
