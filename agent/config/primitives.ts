/** The value types every part of the configuration is written in: durations, sizes, ids, severities. */
import { z } from 'zod';

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration written as `250ms`, `10s`, `5m`, `1h`, or a number of milliseconds. Parses to ms. */
export const duration = z
  .union([
    z.number().nonnegative(),
    z.string().regex(DURATION_RE, { message: 'expected a duration such as 500ms, 10s, 5m or 1h' }),
  ])
  .transform((v) => {
    if (typeof v === 'number') return v;
    const m = DURATION_RE.exec(v) as RegExpExecArray;
    return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  })
  .meta({ description: 'Duration: 500ms, 10s, 5m, 1h, or milliseconds as a number' });

export const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, {
  message: 'ids are 1-64 characters: letters, digits, "_", "-", "." (start with a letter or digit)',
});

export const severity = z.enum(['info', 'warning', 'critical']);

const BYTES_RE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)$/;
const UNIT_BYTES: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** A size written as `512MB`, `1GiB`, `64KB`, or a number of bytes. Parses to bytes. */
export const byteSize = z
  .union([z.int().nonnegative(), z.string().regex(BYTES_RE, { message: 'expected a size such as 64KB, 512MB, 1GB or 1GiB' })])
  .transform((v) => {
    if (typeof v === 'number') return v;
    const m = BYTES_RE.exec(v) as RegExpExecArray;
    return Math.round(Number(m[1]) * (UNIT_BYTES[m[2] as string] as number));
  })
  .meta({ description: 'Size: 64KB, 512MB, 1GB, 1GiB, or bytes as a number' });

/** A problem found by a check that needs more than one key (references, duplicates). */
export interface SemanticProblem {
  readonly path: (string | number)[];
  readonly message: string;
  readonly hint?: string;
}
