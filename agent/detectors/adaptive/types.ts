import type { DetectorConfig } from '../../config/schema.js';

export type AdaptiveConfig = Extract<DetectorConfig, { type: 'adaptive' }>;

/** Contract E: a detector's learned state, JSON-serialisable. */
export type LearnedState = { v: number; learned_at: number; [k: string]: unknown };
