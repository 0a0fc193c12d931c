/**
 * The device agent's report loop as an explicit state machine: a PURE step function `(state, event) ->
 * { state, effects }`. No I/O, no timers, no clock: the agent's runtime performs the effects (start the
 * coalescing/backoff timer, take the pending update from the reported intent and send it, acknowledge it...)
 * and feeds their outcomes back as events.
 *
 * Rules it encodes:
 * - one update in flight at a time; reports made meanwhile wait in the intent and leave together afterwards;
 * - every update waits for a timer first: `coalesceMs` normally, a fully jittered backoff (computed by the
 *   runtime from the retry number) after failed attempts, so a throttled or failing service is not hammered;
 * - throttling (429), service failures (5xx), timeouts and lost links are retried; a timeout or a lost link
 *   also makes the intent unsure and asks for a read (the update may or may not have been applied);
 * - a 409 asks for a read (the device's view is stale);
 * - any other refusal (413 too large, 400...) of an update of several leaves sends that many leaves one per
 *   update next, so only the refused leaf is given up and the values coalesced with it still reach the shadow;
 *   a refused single leaf is given up (it would be refused forever).
 */
import { isShadowError } from '../errors.js';

/** The state of the machine (immutable: every step returns a new one). */
export interface ReportState {
  readonly closed: boolean;
  /** An update is on its way (from `send-report` until its outcome). */
  readonly inFlight: boolean;
  /** The timer before the next update runs. */
  readonly timer: boolean;
  /** Failed attempts in a row: the next update waits the backoff of that retry number. */
  readonly failures: number;
  /**
   * After the service refused an update of several leaves: updates left to send one leaf each. Bounded, so a
   * device that keeps reporting goes back to one update per round instead of one per leaf.
   */
  readonly isolateLeft: number;
}

/** What happens to the machine. */
export type ReportEvent =
  /** The work loop looks: `ready`: connected, subscribed and read; `dirty`: the intent has unconfirmed leaves. */
  | { type: 'wake'; ready: boolean; dirty: boolean }
  /** The timer ended; `ready` as in `wake`. */
  | { type: 'timer-due'; ready: boolean }
  /** `send-report` found nothing to send (every leaf confirmed meanwhile). */
  | { type: 'nothing-pending' }
  /** The service accepted the update in flight, at shadow version `version`. */
  | { type: 'accepted'; version: number }
  /** The update of `leaves` leaves failed with `error`. */
  | { type: 'failed'; error: unknown; leaves: number }
  | { type: 'close' };

/** What the runtime must do. */
export type ReportEffect =
  /** Start the timer before the next update; `retry` 0: `coalesceMs`, else at least the backoff of that retry. */
  | { type: 'start-report-timer'; retry: number }
  | { type: 'cancel-report-timer' }
  /** Send the intent's pending update (at most `maxLeaves` leaves); its outcome is `accepted` or `failed`. */
  | { type: 'send-report'; maxLeaves: number | undefined }
  /** The update in flight was accepted (at `version`): confirm its leaves. */
  | { type: 'acknowledge'; version: number }
  /** The update in flight got no answer: the intent cannot trust what the service holds until a read. */
  | { type: 'unsure' }
  /** The service refuses the single leaf in flight: give it up. */
  | { type: 'discard-sent'; error: unknown }
  /** The service answered 409. */
  | { type: 'conflict'; error: unknown }
  /** Read the shadow (a conflict or an update without answer). */
  | { type: 'sync-wanted' }
  /** Something changed that the work loop must look at. */
  | { type: 'pump' };

/** The outcome of one step. */
export interface ReportStep {
  state: ReportState;
  effects: ReportEffect[];
}

/** The state before the first report. */
export const INITIAL_REPORT_STATE: ReportState = Object.freeze({
  closed: false,
  inFlight: false,
  timer: false,
  failures: 0,
  isolateLeft: 0,
});

/** How a failed update is answered. */
type FailureKind = 'retry' | 'lost' | 'conflict' | 'refused';

/** Throttling and server-side failures pass; other refusals (400, 413...) would fail the same way again. */
function classify(error: unknown): FailureKind {
  if (!isShadowError(error)) return 'refused';
  if (error.code === 'TIMEOUT' || error.code === 'TRANSPORT') return 'lost';
  if (error.code === 'THROTTLED' || (error.statusCode !== undefined && error.statusCode >= 500))
    return 'retry';
  if (error.code === 'CONFLICT') return 'conflict';
  return 'refused';
}

const decrement = (n: number) => (n > 0 ? n - 1 : 0);

/**
 * One transition. Pure: the same state and event always give the same result, and nothing else happens.
 *
 * @param state - the current state
 * @param event - what happened
 * @returns the next state and the effects the runtime must perform, in order
 */
export function stepReport(state: ReportState, event: ReportEvent): ReportStep {
  const effects: ReportEffect[] = [];
  if (state.closed) return { state, effects };
  let next = state;
  switch (event.type) {
    case 'wake':
      if (event.ready && event.dirty && !state.inFlight && !state.timer) {
        effects.push({ type: 'start-report-timer', retry: state.failures });
        next = { ...state, timer: true };
      }
      break;
    case 'timer-due':
      next = { ...state, timer: false };
      // Not ready: the next connect or read wakes the loop again.
      if (!event.ready || state.inFlight) break;
      next = { ...next, inFlight: true };
      effects.push({ type: 'send-report', maxLeaves: state.isolateLeft > 0 ? 1 : undefined });
      break;
    case 'nothing-pending':
      next = { ...state, inFlight: false, isolateLeft: 0 };
      effects.push({ type: 'pump' });
      break;
    case 'accepted':
      next = { ...state, inFlight: false, failures: 0, isolateLeft: decrement(state.isolateLeft) };
      effects.push({ type: 'acknowledge', version: event.version }, { type: 'pump' });
      break;
    case 'failed': {
      next = { ...state, inFlight: false };
      switch (classify(event.error)) {
        case 'lost':
          // Applied or not? Only a read can tell; meanwhile send again (reported updates without version are
          // safe to repeat).
          next = { ...next, failures: state.failures + 1 };
          effects.push({ type: 'unsure' }, { type: 'sync-wanted' });
          break;
        case 'retry':
          next = { ...next, failures: state.failures + 1 };
          break;
        case 'conflict':
          effects.push({ type: 'conflict', error: event.error }, { type: 'sync-wanted' });
          break;
        case 'refused':
          if (event.leaves > 1) {
            // Maybe because of one leaf: find it.
            next = { ...next, isolateLeft: event.leaves };
          } else {
            next = { ...next, isolateLeft: decrement(state.isolateLeft) };
            effects.push({ type: 'discard-sent', error: event.error });
          }
          break;
      }
      effects.push({ type: 'pump' });
      break;
    }
    case 'close':
      if (state.timer) effects.push({ type: 'cancel-report-timer' });
      next = { ...state, closed: true, timer: false };
      break;
  }
  return { state: next, effects };
}
