import type { z } from 'zod';
import type { schema } from './schema.js';

export type AdaptiveConfig = z.output<typeof schema>;

export type { LearnedState } from '../common.js';
