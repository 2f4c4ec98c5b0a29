/**
 * Reconnect delays: exponential backoff with jitter, starting from the server's `retry:` hint
 * when it gave one. Jitter spreads a crowd of clients that lost the same server at once.
 */

export interface BackoffOptions {
  /** First delay, in ms; a server's `retry:` replaces it. */
  initialDelay: number;
  /** The ceiling, in ms. */
  maxDelay: number;
  /** Returns a number in [0, 1); injectable for tests. */
  random: () => number;
}

/** The delay before reconnect attempt `attempt` (0 = the first retry): base·2^attempt, capped,
 * then a random point in its upper half ("equal jitter"). */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const base = Math.max(0, options.initialDelay);
  const exponential = Math.min(options.maxDelay, base * 2 ** Math.min(attempt, 30));
  const half = exponential / 2;
  return Math.round(half + options.random() * half);
}

/** Resolves after `ms`, or at once (without rejecting) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, Math.max(0, ms));
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
