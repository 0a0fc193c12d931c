/**
 * How the engine retries: a small loop of its own, with FULL jitter on the injected clock. (It used p-retry,
 * with p-retry's own delay and attempt counting switched off: `retries: Infinity`, `minTimeout: 0`,
 * `randomize: false`. p-retry 7's `randomize` multiplies the exponential delay by a factor in [1, 2), which
 * keeps competing writers bunched together: with 100 writers on one version that costs about 1,850 writes
 * instead of about 800, see DESIGN.md. With everything but the loop switched off, p-retry and
 * is-network-error were 3.8 KB of the 40 KB app-Lambda budget, issue #11, so the loop lives here now.)
 *
 * Two budgets, because a lost race and a quota are different things: 409s (and 5xx) spend `maxAttempts`;
 * 429s spend nothing but time (`maxElapsedMs`). A 429 says the thing's quota is busy, not that the round's
 * intent lost: counting it as a conflict made rounds give up under load with a message blaming other
 * writers. The pacing after a 429 belongs to the per-thing limiter (whose rate the 429 cut); the jittered
 * wait here only spreads the retries of one client's concurrent rounds.
 */
import { isShadowError, type RetryTally, type ShadowError } from '../errors.js';
import type { ShadowClock } from './client-options.js';
import type { RetryReason } from './shadow-events.js';

/** The retry settings of one round. */
export interface RetryPolicy {
  /** Attempts that lost to another writer (409) or met a 5xx, at most, before giving up. */
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

/** What a round went through so far, filled in by {@link withRetries} as it goes. */
export interface RoundTally extends RetryTally {
  /** Attempts that met a 5xx. */
  serverErrors: number;
  /** The clock's epoch milliseconds when the round started. */
  startedAt: number;
}

/** A fresh {@link RoundTally} starting now. */
export function newRoundTally(clock: ShadowClock): RoundTally {
  return { attempts: 0, conflicts: 0, throttles: 0, serverErrors: 0, elapsedMs: 0, startedAt: clock.now() };
}

/**
 * Runs `attempt` until it succeeds, a non-retryable error occurs, or the budgets run out; then the last
 * error is rethrown unchanged (the caller turns an exhausted round into its give-up error, using `tally`).
 *
 * @param attempt - one attempt; receives its 1-based number
 * @param policy - bounds and backoff
 * @param observer - told about every retry
 * @param tally - counts attempts, conflicts, throttles and elapsed time; pass one to read them afterwards
 */
export async function withRetries<T>(
  attempt: (attemptNumber: number) => Promise<T>,
  policy: RetryPolicy,
  observer: RetryObserver = {},
  tally: RoundTally = newRoundTally(policy.clock),
): Promise<T> {
  try {
    for (let attemptNumber = 1; ; attemptNumber++) {
      tally.attempts = attemptNumber;
      try {
        return await attempt(attemptNumber);
      } catch (error) {
        tally.elapsedMs = policy.clock.now() - tally.startedAt;
        const reason = retryReason(error);
        if (reason === undefined) throw error;
        if (reason === 'conflict') tally.conflicts++;
        else if (reason === 'throttled') tally.throttles++;
        else tally.serverErrors++;
        // 429s are bounded by time only; 409s and 5xx by attempts as well.
        const spent = tally.conflicts + tally.serverErrors;
        if (reason !== 'throttled' && spent >= policy.maxAttempts) throw error;
        const delayMs = fullJitterDelay(reason === 'throttled' ? tally.throttles : spent, policy);
        if (tally.elapsedMs + delayMs > policy.maxElapsedMs) throw error;
        observer.onRetry?.({ attempt: attemptNumber, delayMs, reason, error: error as ShadowError });
        if (delayMs > 0) await policy.clock.sleep(delayMs);
      }
    }
  } finally {
    tally.elapsedMs = policy.clock.now() - tally.startedAt;
  }
}
