export interface WaitOptions {
  /** What is awaited, for the timeout message: "mosquitto on :1883 to accept connections". */
  what: string;
  timeoutMs?: number;
  intervalMs?: number;
}

/**
 * Polls `predicate` until it returns a truthy value and resolves with that value. A throwing or rejecting
 * predicate counts as "not yet"; its last error is attached as the cause of the timeout error.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  { what, timeoutMs = 10_000, intervalMs = 25 }: WaitOptions,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`, { cause: lastError });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
