/**
 * How the engine retries: bounded attempts with FULL jitter, a random time between 0 and
 * `min(maxDelayMs, baseDelayMs * 2^(n-1))` before the n-th retry. (p-retry 7's own `randomize` multiplies the
 * exponential delay by a factor in [1, 2), which keeps competing writers bunched together: with 100 writers on
 * one version that costs about 1,850 writes instead of about 800, see DESIGN.md.) The loop is our own rather
 * than p-retry with its delays switched off: it was all p-retry still did here, and p-retry plus
 * is-network-error were a tenth of an app Lambda's bundle (issue #11, 40 KB budget).
 */
import { isShadowError, type ShadowError } from '../errors.js';
import type { ShadowClock } from './client-options.js';
import type { RetryReason } from './shadow-events.js';

/** The retry settings of one round. */
export interface RetryPolicy {
  maxAttempts: number;
  maxElapsedMs: number;
  baseDelayMs: number;
  maxDelayMs: number;
  clock: ShadowClock;
  random: () => number;
}

/**
 * The wait before the `retry`-th retry (1-based) under full jitter.
 *
 * @param retry - 1 for the first retry
 * @param policy - base, cap and random source
 */
export function fullJitterDelay(
  retry: number,
  policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs' | 'random'>,
): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  return Math.floor(policy.random() * cap);
}

/**
 * Why an error may be retried, or `undefined` when it must not be: 409 only for versioned writes (the
 * caller re-reads), 429 and 5xx always; every other 4xx, timeouts and transport errors never (a write whose
 * outcome is unknown must not be repeated blindly: it could apply an intent twice).
 *
 * @param error - what the attempt threw
 */
export function retryReason(error: unknown): RetryReason | undefined {
  if (!isShadowError(error)) return undefined;
  const e = error as ShadowError;
  if (e.code === 'CONFLICT') return 'conflict';
  if (e.code === 'THROTTLED') return 'throttled';
  if (e.code === 'REJECTED' && e.statusCode !== undefined && e.statusCode >= 500) return 'server-error';
  return undefined;
}

/** Observer of the retry loop. */
export interface RetryObserver {
  /** A retry will happen after `delayMs`. */
  onRetry?(info: { attempt: number; delayMs: number; reason: RetryReason; error: ShadowError }): void;
}

/**
 * Runs `attempt` until it succeeds, a non-retryable error occurs, or attempts or time run out; then the
 * last error is rethrown unchanged (the caller turns an exhausted conflict into `ShadowConflictError`).
 *
 * @param attempt - one attempt; receives its 1-based number
 * @param policy - bounds and backoff
 * @param observer - told about every retry
 */
export async function withRetries<T>(
  attempt: (attemptNumber: number) => Promise<T>,
  policy: RetryPolicy,
  observer: RetryObserver = {},
): Promise<T> {
  const startedAt = policy.clock.now();
  for (let attemptNumber = 1; ; attemptNumber++) {
    try {
      return await attempt(attemptNumber);
    } catch (error) {
      const reason = attemptNumber < policy.maxAttempts ? retryReason(error) : undefined;
      if (reason === undefined) throw error;
      const delayMs = fullJitterDelay(attemptNumber, policy);
      if (policy.clock.now() - startedAt + delayMs > policy.maxElapsedMs) throw error;
      observer.onRetry?.({ attempt: attemptNumber, delayMs, reason, error: error as ShadowError });
      if (delayMs > 0) await policy.clock.sleep(delayMs);
    }
  }
}
