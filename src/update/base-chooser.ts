/**
 * Which document a versioned round writes on: one already known (remembered from this client's own last
 * answer, or heard by the transport, e.g. from `update/documents`), or a fresh read.
 *
 * A known document that is current saves the read (1 request instead of 2); a stale one costs a 409 and a
 * read (3 instead of 2). So without other writers a remembered document is worth writing on while the chance
 * that it is stale stays below one half. With other writers, a write on a fresh read may lose too (with
 * chance q), so an attempt from a read costs 2 / (1 - q) requests on average and a remembered document is
 * worth trying while its chance of being stale stays below (1 + q) / 2: under heavy contention a read buys
 * little. Two things make a remembered document stale:
 * - the last write left a delta: a device will answer it by reporting, which bumps the version (the seed's
 *   scenario: the app's next change met a 409 nearly every time);
 * - other writers: over HTTP this client never hears of their commits.
 * Both are learned per shadow from what the engine sees anyway: a write on a known document that meets a
 * 409 (stale) or commits (fresh), and a read made instead of using a remembered document, whose version shows
 * whether the remembered one would have been current, and whether a delta left by this client was answered.
 * A document the transport heard is as fresh as a read could be (the transport hears every commit it is
 * subscribed to), so it is always used.
 *
 * Pure: the engine keeps one {@link BaseHistory} per shadow and reports each choice as an `onEvent` event.
 */
import type { KnownState } from '../transports/transport.js';
import { versionOf } from './update-round.js';

/** Where a round's base document came from. */
export type BaseSource = 'remembered' | 'heard' | 'read';

/**
 * Why the base was chosen:
 * - `option`: `useKnownDocuments` is `true` (known document used) or `false` (read);
 * - `unknown`: nothing known about the shadow, or nothing newer than the version that just conflicted;
 * - `heard`: the transport knows a document at least as new as the remembered one;
 * - `after-conflict`: a document newer than the one that just conflicted is known;
 * - `remembered-fresh`: remembered documents have mostly been current;
 * - `delta-pending`: the last write left a delta that devices have been answering;
 * - `stale-history`: remembered documents have mostly turned out stale.
 */
export type BaseReason =
  | 'option'
  | 'unknown'
  | 'heard'
  | 'after-conflict'
  | 'remembered-fresh'
  | 'delta-pending'
  | 'stale-history';

/** What the engine learned about one shadow's remembered documents. */
export interface BaseHistory {
  /** Running share (0-1) of remembered documents that turned out stale. */
  stale: number;
  /** Running share (0-1) of deltas left by this client that were answered (the version moved) before its next write. */
  answered: number;
  /** The last write of this client left a delta. */
  deltaPending: boolean;
  /** Running share (0-1) of writes on a freshly read document that still lost to another writer (409). */
  readConflicts: number;
}

/** Weight of the newest observation in the running shares: a few observations change the decision. */
const WEIGHT = 0.25;

/**
 * The chance of staleness from which reading first pays: one half without contention (a stale base costs 3
 * requests, a read 2, a current base 1), more when writes on fresh reads lose too (see the module comment).
 */
const readThreshold = (history: BaseHistory): number => (1 + history.readConflicts) / 2;

/** The history of a shadow the engine knows nothing about: remembered documents presumed current, deltas presumed answered. */
export function newBaseHistory(): BaseHistory {
  return { stale: 0, answered: 1, deltaPending: false, readConflicts: 0 };
}

/** What a round decided. */
export interface BaseChoice {
  /** The known document to write on, or `undefined` to read first. */
  use: KnownState | undefined;
  source: BaseSource;
  reason: BaseReason;
}

/** The inputs of one decision. */
export interface BaseCandidates {
  mode: boolean | 'auto';
  /** What the engine itself remembers (its own last answer or prediction). */
  own: KnownState | undefined;
  /** What the transport heard, if it hears anything. */
  heard: KnownState | undefined;
  /** The version the previous attempt of this round wrote on and lost with (409), if any. */
  failedVersion: number | undefined;
  history: BaseHistory;
}

/**
 * Decides the base of one attempt.
 *
 * @param candidates - what is known, the mode and the shadow's history
 */
export function chooseBase(candidates: BaseCandidates): BaseChoice {
  const { mode, own, heard, failedVersion, history } = candidates;
  const read = (reason: BaseReason): BaseChoice => ({ use: undefined, source: 'read', reason });
  if (mode === false) return read('option');
  const heardIsNewest = heard !== undefined && (own === undefined || versionOf(heard) >= versionOf(own));
  const known = heardIsNewest ? heard : own;
  const source: BaseSource = heardIsNewest ? 'heard' : 'remembered';
  if (known === undefined) return read('unknown');
  if (failedVersion !== undefined) {
    // The round just lost on `failedVersion`: only a newer document can win.
    return versionOf(known) > failedVersion
      ? { use: known, source, reason: 'after-conflict' }
      : read('unknown');
  }
  if (mode === true) return { use: known, source, reason: 'option' };
  if (heardIsNewest) return { use: known, source, reason: 'heard' };
  const threshold = readThreshold(history);
  if (history.deltaPending && history.answered >= threshold) return read('delta-pending');
  if (history.stale >= threshold) return read('stale-history');
  return { use: known, source, reason: 'remembered-fresh' };
}

const blend = (share: number, observed: boolean): number => share * (1 - WEIGHT) + (observed ? WEIGHT : 0);

/**
 * Learns from a write: on a known document, a 409 says it was stale and a commit that it was current; on a
 * freshly read document, a 409 says how contended the shadow is.
 *
 * @param history - the shadow's history (updated in place)
 * @param conflicted - the write met a 409
 * @param baseWasRead - the write's base was read just before
 */
export function learnFromWrite(history: BaseHistory, conflicted: boolean, baseWasRead = false): void {
  if (baseWasRead) history.readConflicts = blend(history.readConflicts, conflicted);
  else history.stale = blend(history.stale, conflicted);
}

/**
 * Learns from a read made instead of writing on a remembered document: had the version moved?
 *
 * @param history - the shadow's history (updated in place)
 * @param remembered - the document the round chose not to use
 * @param read - what the read found
 */
export function learnFromRead(history: BaseHistory, remembered: KnownState, read: KnownState): void {
  const moved = versionOf(read) !== versionOf(remembered);
  history.stale = blend(history.stale, moved);
  if (history.deltaPending) history.answered = blend(history.answered, moved);
}

/**
 * Records whether this client's own write left a delta (desired values the device has not reported yet).
 *
 * @param history - the shadow's history (updated in place)
 * @param leftDelta - the predicted document after the write has a delta
 */
export function learnFromOwnWrite(history: BaseHistory, leftDelta: boolean): void {
  history.deltaPending = leftDelta;
}
