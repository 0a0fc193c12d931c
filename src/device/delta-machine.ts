/**
 * The device agent's delta handling as an explicit state machine: a PURE step function `(state, event, rules)
 * -> { state, effects }`. No I/O, no timers: the agent's runtime checks the schema, calls the user's handler,
 * starts the handler-retry timer and changes the reported intent as the effects say, and feeds the outcomes
 * back as events. Which deltas arrive, in which order, is the sync machine's job (see sync-machine.ts): it
 * discards older ones and queues the rest here.
 *
 * Rules it encodes:
 * - one handler call at a time; deltas carry the full current delta, so only the newest waiting one is kept;
 * - the service re-publishes the full delta after every update while desired and reported differ: a delta is
 *   skipped when the device has applied and reports every value it asks for (the report is on its way), when
 *   the handler already answered this same delta and the device still reports that answer, and when it failed
 *   for good (reporting the failure again would re-publish the delta again: a loop);
 * - what the handler returns is applied and reported; when it differs from the delta, that is a conflict;
 * - a handler that throws is retried after a delay, `maxHandlerAttempts` calls for one delta content, then the
 *   failure is reported under the error key (as a delta refused by the schema is at once); a newer delta
 *   supersedes a retry; the next delta that applies clears the error key.
 */
import { computeDelta } from '../core/delta.js';
import type { JsonObject, JsonValue } from '../core/document.js';
import { jsonEqual } from '../core/json-equal.js';
import { mergeSection } from '../core/merge.js';

/** A delta waiting for, or in, the handler. */
export interface QueuedDelta {
  readonly state: JsonObject;
  readonly version: number;
  readonly source: 'delta' | 'get';
}

/** A delta content the handler failed on. */
export interface HandlerFailure {
  readonly state: JsonObject;
  readonly attempts: number;
  /** Given up: reported under the error key, not handled again while desired asks the same. */
  readonly final: boolean;
  /** Tells this failure from a later one on the same content (a retry belongs to one failure). */
  readonly id: number;
}

/** The state of the machine (immutable: every step returns a new one; `applied` is never mutated). */
export interface DeltaState {
  readonly closed: boolean;
  /** The newest delta waiting for the handler. */
  readonly queued: QueuedDelta | undefined;
  /** The delta the handler is working on. */
  readonly handling: QueuedDelta | undefined;
  /** What the device has applied (merge of the handler's results). */
  readonly applied: JsonObject | undefined;
  /** The last delta the handler answered, and its answer. */
  readonly lastOutcome: { readonly state: JsonObject; readonly values: JsonObject } | undefined;
  readonly failure: HandlerFailure | undefined;
  /** The handler-retry timer runs for this delta and failure. */
  readonly retry: { readonly item: QueuedDelta; readonly failureId: number } | undefined;
  /** Failures so far (source of `HandlerFailure.id`). */
  readonly failures: number;
}

/** Settings the machine follows (from the agent's options). */
export interface DeltaRules {
  readonly errorKey: string;
  readonly maxHandlerAttempts: number;
}

/** What happens to the machine. */
export type DeltaEvent =
  /** A delta message to handle; `ifNewer`: only if newer than the one waiting (it arrived before the first read). */
  | { type: 'queue'; item: QueuedDelta; ifNewer: boolean }
  /** A read was adopted: its delta (if any) is the one to handle, unless a newer one waits. */
  | { type: 'read'; version: number; delta: JsonObject | undefined }
  /** Forget the last handler outcome: the next delta is reconciled in full (every connect). */
  | { type: 'reset-outcome' }
  /** The work loop looks: `ready`: connected, subscribed and read; `wanted`: the device's intended `reported`. */
  | { type: 'wake'; ready: boolean; wanted: JsonObject | undefined }
  /** The delta in `handle` fails the schema. */
  | { type: 'schema-refused'; error: unknown; message: string }
  /** The handler returned `values` (`undefined`: applied as asked). */
  | { type: 'handler-returned'; values: JsonObject | undefined }
  | { type: 'handler-threw'; error: unknown }
  | { type: 'retry-due' }
  | { type: 'close' };

/** What the runtime must do. */
export type DeltaEffect =
  /** Check the delta with the schema, then call the handler; the outcome is `schema-refused` or `handler-…`. */
  | { type: 'handle'; item: QueuedDelta }
  /** Change the device's intended `reported` (an update section: `null` deletes). */
  | { type: 'set-wanted'; patch: JsonObject }
  | { type: 'conflict'; version: number; desired: JsonObject; applied: JsonObject }
  | { type: 'error'; kind: 'handler' | 'schema'; error: unknown; version: number }
  | { type: 'count-handled' }
  | { type: 'start-retry-timer' }
  | { type: 'cancel-retry-timer' }
  /** Something changed that the work loop must look at. */
  | { type: 'pump' };

/** The outcome of one step. */
export interface DeltaStep {
  state: DeltaState;
  effects: DeltaEffect[];
}

/** The state before the first delta. */
export const INITIAL_DELTA_STATE: DeltaState = Object.freeze({
  closed: false,
  queued: undefined,
  handling: undefined,
  applied: undefined,
  lastOutcome: undefined,
  failure: undefined,
  retry: undefined,
  failures: 0,
});

/** Whether handing `item` to the handler would do nothing useful (see the module comment). */
function skippable(state: DeltaState, item: QueuedDelta, wanted: JsonObject | undefined): boolean {
  if (computeDelta(item.state, state.applied) === undefined && computeDelta(item.state, wanted) === undefined)
    return true;
  const last = state.lastOutcome;
  if (
    last !== undefined &&
    jsonEqual(last.state, item.state) &&
    computeDelta(last.values, state.applied) === undefined &&
    computeDelta(last.values, wanted) === undefined
  )
    return true;
  return state.failure?.final === true && jsonEqual(state.failure.state, item.state);
}

function returned(
  state: DeltaState,
  item: QueuedDelta,
  result: JsonObject | undefined,
  rules: DeltaRules,
  effects: DeltaEffect[],
): DeltaState {
  const values = result ?? item.state;
  const patch: JsonObject = { ...values };
  if (state.failure !== undefined) patch[rules.errorKey] = null;
  effects.push({ type: 'count-handled' }, { type: 'set-wanted', patch });
  const disagrees = Object.keys(item.state).some((key) => {
    const got = values[key];
    return got === undefined || !jsonEqual(got, item.state[key] as JsonValue);
  });
  if (disagrees)
    effects.push({ type: 'conflict', version: item.version, desired: item.state, applied: values });
  effects.push({ type: 'pump' });
  return {
    ...state,
    handling: undefined,
    applied: mergeSection(state.applied, values),
    lastOutcome: { state: item.state, values },
    failure: undefined,
  };
}

function threw(
  state: DeltaState,
  item: QueuedDelta,
  error: unknown,
  rules: DeltaRules,
  effects: DeltaEffect[],
): DeltaState {
  const attempts =
    state.failure !== undefined && jsonEqual(state.failure.state, item.state)
      ? state.failure.attempts + 1
      : 1;
  const final = attempts >= rules.maxHandlerAttempts;
  const failure: HandlerFailure = { state: item.state, attempts, final, id: state.failures + 1 };
  let next: DeltaState = { ...state, handling: undefined, failure, failures: failure.id };
  effects.push({ type: 'count-handled' }, { type: 'error', kind: 'handler', error, version: item.version });
  if (final) {
    const message = error instanceof Error ? error.message : String(error);
    effects.push({
      type: 'set-wanted',
      patch: { [rules.errorKey]: { kind: 'handler', version: item.version, attempts, message } },
    });
  } else {
    // One retry at a time: a timer left behind would outlive close() and re-queue its delta later.
    if (state.retry !== undefined) effects.push({ type: 'cancel-retry-timer' });
    effects.push({ type: 'start-retry-timer' });
    next = { ...next, retry: { item, failureId: failure.id } };
  }
  effects.push({ type: 'pump' });
  return next;
}

/**
 * One transition. Pure: the same state, event and rules always give the same result, and nothing else happens.
 *
 * @param state - the current state
 * @param event - what happened
 * @param rules - the agent's settings
 * @returns the next state and the effects the runtime must perform, in order
 */
export function stepDelta(state: DeltaState, event: DeltaEvent, rules: DeltaRules): DeltaStep {
  const effects: DeltaEffect[] = [];
  if (state.closed) return { state, effects };
  let next = state;
  switch (event.type) {
    case 'queue': {
      const waiting = state.queued;
      if (!event.ifNewer || waiting === undefined || event.item.version >= waiting.version)
        next = { ...state, queued: event.item };
      break;
    }
    case 'read':
      if (state.queued !== undefined && state.queued.version > event.version) {
        // A delta newer than the read arrived meanwhile: keep it.
      } else if (event.delta !== undefined && Object.keys(event.delta).length > 0) {
        next = { ...state, queued: { state: event.delta, version: event.version, source: 'get' } };
      } else {
        next = { ...state, queued: undefined };
      }
      break;
    case 'reset-outcome':
      next = { ...state, lastOutcome: undefined };
      break;
    case 'wake': {
      const item = state.queued;
      if (!event.ready || item === undefined || state.handling !== undefined) break;
      next = { ...state, queued: undefined };
      if (skippable(state, item, event.wanted)) break;
      next = { ...next, handling: item };
      effects.push({ type: 'handle', item });
      break;
    }
    case 'schema-refused': {
      const item = state.handling;
      if (item === undefined) break;
      const failure: HandlerFailure = {
        state: item.state,
        attempts: rules.maxHandlerAttempts,
        final: true,
        id: state.failures + 1,
      };
      next = { ...state, handling: undefined, failure, failures: failure.id };
      effects.push(
        {
          type: 'set-wanted',
          patch: { [rules.errorKey]: { kind: 'schema', version: item.version, message: event.message } },
        },
        { type: 'error', kind: 'schema', error: event.error, version: item.version },
        { type: 'pump' },
      );
      break;
    }
    case 'handler-returned':
      if (state.handling !== undefined) next = returned(state, state.handling, event.values, rules, effects);
      break;
    case 'handler-threw':
      if (state.handling !== undefined) next = threw(state, state.handling, event.error, rules, effects);
      break;
    case 'retry-due': {
      const retry = state.retry;
      if (retry === undefined) break;
      next = { ...state, retry: undefined };
      // A newer delta that arrived meanwhile supersedes the retry: one waiting, or one handled since (which
      // replaced or cleared `failure`). Retrying the older one would apply a stale value over a newer one.
      if (state.failure?.id === retry.failureId && state.queued === undefined)
        next = { ...next, queued: retry.item };
      effects.push({ type: 'pump' });
      break;
    }
    case 'close':
      if (state.retry !== undefined) effects.push({ type: 'cancel-retry-timer' });
      next = { ...state, closed: true, retry: undefined, queued: undefined };
      break;
  }
  return { state: next, effects };
}
