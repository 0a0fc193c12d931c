/**
 * The device agent's connection, reading and ordering as an explicit state machine: a PURE step function
 * `(state, event) -> { state, effects }`. No I/O, no timers, no clock: the agent's runtime performs the
 * effects (subscribe, read, start a backoff timer, adopt a document, queue a delta...) with its injected clock
 * and feeds their outcomes back as events. What used to be a loop with a dozen flags (ready, synced, syncing,
 * syncAgain, a wake-up callback, connection epochs) is the transition table below.
 *
 * Rules it encodes (see the agent's module comment for why):
 * - subscribe before reading; read on every (re)connect; a read answered on an older connection is ignored
 *   and, when a newer connection is ready, read again;
 * - a read older than a version already seen (answers on different topics overtake each other) is read again,
 *   at most twice in a row, then adopted; a 404 once a version is known counts as such an older read;
 * - a failed read is retried after a backoff timer (full jitter, computed by the runtime from the retry count);
 *   a disconnect or close cancels the wait;
 * - deltas: before the first read completes, the newest is kept and its version counts as seen; after it, one
 *   older than the newest version is discarded (`<`, not `<=`), one that skips a version triggers a read, any
 *   other is queued;
 * - any `update/accepted` that skips a version triggers a read.
 */
import type { DeltaBody, GetAcceptedBody } from '../core/document.js';

/** The state of the machine (immutable: every step returns a new one). */
export interface SyncState {
  readonly closed: boolean;
  /** `subscribing`: connected, SUBACK awaited; `ready`: connected and subscribed. */
  readonly link: 'down' | 'subscribing' | 'ready';
  /** Bumped on every connect and disconnect: outcomes of an older connection are recognised by it. */
  readonly epoch: number;
  /** `reading`: a read is in flight; `backoff`: a read failed and the retry timer runs. */
  readonly sync: 'idle' | 'reading' | 'backoff';
  /** A read completed since the last connect. */
  readonly synced: boolean;
  /** A read was asked for while one was under way: read once more after it. */
  readonly again: boolean;
  /** Failed reads in a row (the backoff's retry number). */
  readonly failures: number;
  /** Older-than-known answers in a row. */
  readonly stale: number;
  /** The newest shadow version seen. */
  readonly version: number | undefined;
  /** The version at which the device's `reported` was last known (read or acknowledged). */
  readonly confirmedVersion: number | undefined;
}

/** What happens to the machine. */
export type SyncEvent =
  | { type: 'connected' }
  | { type: 'disconnected' }
  | { type: 'subscribed'; epoch: number }
  | { type: 'subscribe-failed'; epoch: number; error: unknown }
  /** A read is wanted: a version gap, a conflict, an unanswered report, the resync interval. */
  | { type: 'sync-wanted' }
  | { type: 'read-answered'; epoch: number; document: GetAcceptedBody | undefined; reportInFlight: boolean }
  | { type: 'read-failed'; epoch: number; error: unknown }
  | { type: 'retry-due' }
  /** An `update/accepted` from anyone. */
  | { type: 'accepted-seen'; version: number }
  /** This device's report was accepted (on connection `epoch`). */
  | { type: 'report-accepted'; epoch: number; version: number }
  | { type: 'delta'; body: DeltaBody }
  | { type: 'close' };

/** What the runtime must do. */
export type SyncEffect =
  | { type: 'subscribe'; epoch: number }
  | { type: 'read'; epoch: number }
  /** Start the backoff timer of the `retry`-th retry; its end is the `retry-due` event. */
  | { type: 'start-retry-timer'; retry: number }
  | { type: 'cancel-retry-timer' }
  /** Take the document as the truth; `current`: it reflects every update the device knows of. */
  | { type: 'adopt'; document: GetAcceptedBody | undefined; current: boolean; keepReported: boolean }
  /** Hand this delta to the handler (replacing a waiting one); `ifNewer`: only if newer than the waiting one. */
  | { type: 'queue-delta'; body: DeltaBody; ifNewer: boolean }
  | { type: 'count'; counter: 'gaps' | 'deltasDiscarded' | 'gets' }
  | { type: 'error'; kind: 'sync' | 'subscribe'; error: unknown }
  /** The connection changed: requests in flight will not be answered. */
  | { type: 'fail-pending' }
  /** Connected: send the telemetry buffered offline now, before newer readings. */
  | { type: 'flush-telemetry' }
  /** Forget the last handler outcome: the next delta is reconciled in full. */
  | { type: 'reset-outcome' }
  /** Something changed that the work loop (deltas, reports, idle announcement) must look at. */
  | { type: 'pump' };

/** The outcome of one step. */
export interface SyncStep {
  state: SyncState;
  effects: SyncEffect[];
}

/** The state before the first connect. */
export const INITIAL_SYNC_STATE: SyncState = Object.freeze({
  closed: false,
  link: 'down',
  epoch: 0,
  sync: 'idle',
  synced: false,
  again: false,
  failures: 0,
  stale: 0,
  version: undefined,
  confirmedVersion: undefined,
});

/** Re-reads of an older-than-known answer before it is adopted anyway (the store only moves forward). */
const MAX_STALE_READS = 2;

function read(state: SyncState, effects: SyncEffect[]): SyncState {
  effects.push({ type: 'count', counter: 'gets' }, { type: 'read', epoch: state.epoch });
  return { ...state, sync: 'reading', again: false };
}

/** A read is wanted: start one, or remember to read again after the one under way. */
function wantSync(state: SyncState, effects: SyncEffect[]): SyncState {
  if (state.closed || state.link !== 'ready') return state;
  if (state.sync !== 'idle') return { ...state, again: true };
  return read({ ...state, failures: 0 }, effects);
}

function seeVersion(state: SyncState, seen: number, effects: SyncEffect[]): SyncState {
  let next = state;
  if (state.version !== undefined && seen > state.version + 1 && state.synced) {
    effects.push({ type: 'count', counter: 'gaps' });
    next = wantSync(next, effects);
  }
  if (next.version === undefined || seen > next.version) next = { ...next, version: seen };
  return next;
}

function answered(
  state: SyncState,
  document: GetAcceptedBody | undefined,
  reportInFlight: boolean,
  effects: SyncEffect[],
): SyncState {
  const known = Math.max(state.confirmedVersion ?? -1, state.version ?? -1);
  const current = document === undefined ? known < 0 : document.version >= known;
  if (!current && state.stale < MAX_STALE_READS) return read({ ...state, stale: state.stale + 1 }, effects);
  // Only this device writes `reported`: a read older than its last accepted report knows less about it.
  const keepReported =
    document !== undefined &&
    state.confirmedVersion !== undefined &&
    document.version < state.confirmedVersion;
  effects.push({ type: 'adopt', document, current: current && !reportInFlight, keepReported });
  let next: SyncState = {
    ...state,
    stale: 0,
    failures: 0,
    synced: true,
    version: document?.version,
    confirmedVersion: keepReported ? state.confirmedVersion : document?.version,
  };
  if (next.again) return read(next, effects);
  next = { ...next, sync: 'idle' };
  effects.push({ type: 'pump' });
  return next;
}

/** After an outcome of an older connection: the read loop is free; read for the new connection if it is ready. */
function outdated(state: SyncState, effects: SyncEffect[]): SyncState {
  if (state.sync !== 'reading') return state;
  const next: SyncState = { ...state, sync: 'idle', again: false, stale: 0 };
  if (!next.closed && next.link === 'ready') return read({ ...next, failures: 0 }, effects);
  effects.push({ type: 'pump' });
  return next;
}

/**
 * One transition. Pure: the same state and event always give the same result, and nothing else happens.
 *
 * @param state - the current state
 * @param event - what happened
 * @returns the next state and the effects the runtime must perform, in order
 */
export function stepSync(state: SyncState, event: SyncEvent): SyncStep {
  const effects: SyncEffect[] = [];
  if (state.closed && event.type !== 'close') return { state, effects };
  let next = state;
  switch (event.type) {
    case 'connected': {
      next = { ...state, link: 'subscribing', epoch: state.epoch + 1, synced: false };
      if (state.sync === 'backoff') {
        effects.push({ type: 'cancel-retry-timer' });
        next = { ...next, sync: 'idle', again: false };
      }
      effects.push(
        { type: 'reset-outcome' },
        { type: 'flush-telemetry' },
        { type: 'subscribe', epoch: next.epoch },
      );
      break;
    }
    case 'disconnected': {
      next = { ...state, link: 'down', epoch: state.epoch + 1, synced: false };
      if (state.sync === 'backoff') {
        // Woken early: the next connection reads at once.
        effects.push({ type: 'cancel-retry-timer' });
        next = { ...next, sync: 'idle', again: false };
      }
      effects.push({ type: 'fail-pending' }, { type: 'pump' });
      break;
    }
    case 'subscribed': {
      if (event.epoch !== state.epoch || state.link !== 'subscribing') break;
      next = wantSync({ ...state, link: 'ready' }, effects);
      break;
    }
    case 'subscribe-failed': {
      if (event.epoch !== state.epoch) break;
      effects.push({ type: 'error', kind: 'subscribe', error: event.error });
      break;
    }
    case 'sync-wanted':
      next = wantSync(state, effects);
      break;
    case 'read-answered': {
      if (event.epoch !== state.epoch) {
        next = outdated(state, effects);
        break;
      }
      // Reads start only on a ready link, and every connect or disconnect starts a new epoch: an outcome of
      // this epoch on a link that is not ready answers no read of ours.
      if (state.sync !== 'reading' || state.link !== 'ready') break;
      next = answered(state, event.document, event.reportInFlight, effects);
      break;
    }
    case 'read-failed': {
      if (event.epoch !== state.epoch) {
        next = outdated(state, effects);
        break;
      }
      if (state.sync !== 'reading' || state.link !== 'ready') break; // as for read-answered
      effects.push({ type: 'error', kind: 'sync', error: event.error });
      next = { ...state, sync: 'backoff', failures: state.failures + 1, again: false };
      effects.push({ type: 'start-retry-timer', retry: next.failures });
      break;
    }
    case 'retry-due': {
      if (state.sync !== 'backoff' || state.link !== 'ready') break;
      next = read(state, effects);
      break;
    }
    case 'accepted-seen':
      next = seeVersion(state, event.version, effects);
      break;
    case 'report-accepted': {
      if (event.epoch === state.epoch) {
        next = { ...state, confirmedVersion: Math.max(state.confirmedVersion ?? 0, event.version) };
      }
      next = seeVersion(next, event.version, effects);
      break;
    }
    case 'delta': {
      const { body } = event;
      if (!state.synced) {
        // A read is under way or will start on connect; keep the newest delta in case it is newer than the read.
        // Its version is seen: a read older than it is read again, and a delta older than it, reordered behind
        // it, is discarded once the read is in (else the handler would apply the older value after the newer).
        effects.push({ type: 'queue-delta', body, ifNewer: true });
        if (state.version === undefined || body.version > state.version)
          next = { ...state, version: body.version };
        break;
      }
      if (state.version !== undefined && body.version < state.version) {
        effects.push({ type: 'count', counter: 'deltasDiscarded' });
        break;
      }
      if (state.version !== undefined && body.version > state.version + 1) {
        // A message was lost: the read tells the truth (the delta itself is not trusted to move the version).
        effects.push({ type: 'count', counter: 'gaps' });
        next = wantSync(state, effects);
        break;
      }
      next = { ...state, version: body.version };
      effects.push({ type: 'queue-delta', body, ifNewer: false }, { type: 'pump' });
      break;
    }
    case 'close': {
      if (state.closed) break;
      if (state.sync === 'backoff') effects.push({ type: 'cancel-retry-timer' });
      next = { ...state, closed: true, link: 'down', sync: 'idle' };
      break;
    }
  }
  return { state: next, effects };
}
