// How long a destination waits after failed transactions (LM draft "Sending Events": the sender
// retries the same transaction until it gets a 200; DESIGN.md "Outbound federation queues").
// Exponential, capped, with jitter so that servers which went down together are not all retried
// in the same instant when they come back.

export interface BackoffSettings {
  /** Wait after the first failure. */
  initialMs: number;
  /** The longest wait, however many failures. */
  maxMs: number;
}

/** ±20%: wide enough to spread a crowd of destinations, narrow enough to keep the schedule. */
export const BACKOFF_JITTER = 0.2;

/**
 * The wait before the next attempt after `failures` consecutive failures (≥ 1):
 * min(initial · 2^(failures−1), max), scaled by a factor in [0.8, 1.2) drawn from `random`
 * (a number in [0, 1), as Math.random returns).
 */
export function retryDelayMs(failures: number, settings: BackoffSettings, random: () => number): number {
  // 2^(failures−1) overflows to Infinity for huge counts; min() caps it either way.
  const base = Math.min(settings.initialMs * 2 ** Math.max(0, failures - 1), settings.maxMs);
  const factor = 1 - BACKOFF_JITTER + 2 * BACKOFF_JITTER * random();
  return Math.max(0, Math.round(base * factor));
}
