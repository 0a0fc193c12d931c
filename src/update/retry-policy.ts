/**
 * How the engine retries: p-retry drives the attempts, with FULL jitter. p-retry 7's own `randomize`
 * multiplies the exponential delay by a factor in [1, 2), which keeps competing writers bunched together
 * (with 100 writers on one version that costs about 1,850 writes instead of about 800, see DESIGN.md).
 * So p-retry's own delay is switched off (`minTimeout: 0`) and the wait happens in `shouldRetry`, which
 * p-retry calls only when a retry will actually happen (attempts and time left): a random time between 0
 * and `min(maxDelayMs, baseDelayMs * 2^(n-1))` before the n-th retry.
 */
import pRetry from 'p-retry';
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
  return pRetry(attempt, {
    retries: policy.maxAttempts - 1,
    minTimeout: 0,
    maxTimeout: 0,
    randomize: false,
    shouldRetry: async ({ error, attemptNumber }) => {
      const reason = retryReason(error);
      if (reason === undefined) return false;
      const delayMs = fullJitterDelay(attemptNumber, policy);
      if (policy.clock.now() - startedAt + delayMs > policy.maxElapsedMs) return false;
      observer.onRetry?.({ attempt: attemptNumber, delayMs, reason, error: error as ShadowError });
      if (delayMs > 0) await policy.clock.sleep(delayMs);
      return true;
    },
  });
}
