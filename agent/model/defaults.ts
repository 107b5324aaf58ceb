/** The feature layout of the shipped default model (models/default.card.json). */
import { FEATURE_STATS } from './features.js';

export const DEFAULT_WINDOW_MS = 10_000;
export const DEFAULT_SENSORS = ['temperature', 'pressure', 'vibration'] as const;
export const DEFAULT_FEATURE_NAMES: readonly string[] = DEFAULT_SENSORS.flatMap((s) => FEATURE_STATS.map((st) => `${s}.${st}`));
