import type { z } from 'zod';
import type { schema } from './schema.js';

export type AdaptiveConfig = z.output<typeof schema>;

/** Contract E: a detector's learned state, JSON-serialisable. */
export type LearnedState = { v: number; learned_at: number; [k: string]: unknown };
