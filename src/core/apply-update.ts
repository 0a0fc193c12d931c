/**
 * The service's handling of one update request, as a pure function of the stored record, the request and
 * the clock (spec sections 1 to 6). The local service calls it for every update; clients use it to predict.
 */
import { ShadowOptionsError } from '../errors.js';
import { computeDelta } from './delta.js';
import type {
  DeltaBody,
  DocumentSnapshot,
  DocumentsBody,
  LeafMetadata,
  MetadataObject,
  Rejection,
  ShadowMetadata,
  ShadowRecord,
  ShadowState,
  ShadowTarget,
  ShadowTombstone,
  StoredShadow,
  UpdateAcceptedBody,
  UpdateState,
} from './document.js';
import { rejectionOf } from './error-types.js';
import { checkTarget, resolveLimits, type ShadowLimits, stateBytes } from './limits.js';
import { mergeSection } from './merge.js';
import { mergeSectionMetadata, metadataFor } from './metadata.js';
import { readClientToken, validateUpdateRequest } from './validate-request.js';

/** What {@link applyUpdate} needs besides the stored record and the request. */
export interface ApplyOptions {
  /** The shadow addressed (names are checked first, spec 5.3). */
  target: ShadowTarget;
  /** The time the service received the request, epoch milliseconds (bodies carry epoch seconds). */
  now: number;
  /**
   * Limits to enforce; missing ones take {@link DEFAULT_LIMITS}.
   * @defaultValue DEFAULT_LIMITS
   */
  limits?: Partial<ShadowLimits>;
}

/** The outcome of {@link applyUpdate}. */
export type ApplyUpdateResult =
  | {
      ok: true;
      /** The document to store. */
      shadow: StoredShadow;
      /** Body of `update/accepted` and of the HTTP 200 response. */
      accepted: UpdateAcceptedBody;
      /** Body of `update/delta`, present whenever the resulting delta is non-empty. */
      delta: DeltaBody | undefined;
      /** Body of `update/documents`. */
      documents: DocumentsBody;
    }
  | { ok: false; rejection: Rejection };

/** 409 for a `version` that is not the current one. */
export const VERSION_CONFLICT_MESSAGE = 'Version conflict';
/** 413 when the resulting state is larger than `maxStateBytes`. */
export const STATE_TOO_LARGE_MESSAGE = 'The payload exceeds the maximum size allowed';

/**
 * True when `record` is a tombstone still inside the retention window, i.e. a shadow re-created now
 * continues its version numbering. The window is half-open: alive while `now < deletedAt + retention`.
 *
 * @param record - the stored record
 * @param now - epoch milliseconds
 * @param retentionMs - `deletedVersionRetentionMs` in force
 */
export function isLiveTombstone(
  record: ShadowRecord | undefined,
  now: number,
  retentionMs: number,
): record is ShadowTombstone {
  return record !== undefined && 'deleted' in record && now < record.deletedAt + retentionMs;
}

/**
 * The version a request must name to update the shadow now: the stored version of a live shadow; for an
 * absent shadow, the "current version of the absent shadow": the tombstone's version (deleted version + 1)
 * while the tombstone is retained, else 0.
 *
 * AWS does not document `version` on an update that creates the shadow (spec 4). We accept it iff it
 * equals this value and answer 409 `Version conflict` otherwise: a versioned create-if-absent is then safe
 * (two writers racing to create with version 0 cannot both win), which the update engine relies on.
 *
 * @param record - the stored record, if any
 * @param now - epoch milliseconds
 * @param retentionMs - `deletedVersionRetentionMs` in force
 */
export function currentVersion(record: ShadowRecord | undefined, now: number, retentionMs: number): number {
  if (record === undefined) return 0;
  if ('deleted' in record) return isLiveTombstone(record, now, retentionMs) ? record.version : 0;
  return record.version;
}

/**
 * Applies an update request to a shadow the way the Device Shadow service does:
 * names are checked, then the request's shape (spec 5.3), then `version` (409), then the merge (spec 2)
 * and the size of the resulting state (413). A shadow that does not exist is created at version 1, or at
 * tombstone version + 1 when it was deleted within `deletedVersionRetentionMs`; every accepted update,
 * including one that changes nothing, adds 1 to the version.
 *
 * Inputs are never mutated, so callers may keep `prior` (it becomes `documents.previous`). The stored
 * document shares untouched subtrees with `prior` but never aliases the request; the accepted body's
 * `state` holds the request's own section objects (in the request's key order). Treat all results as
 * immutable.
 *
 * @param prior - what is stored for the target: a shadow, a tombstone, or `undefined`
 * @param request - the parsed request JSON (see {@link decodeRequestPayload}); validated here
 * @param options - target, clock and limits
 * @returns the new document and the bodies of `update/accepted`, `update/delta` (if any) and
 *   `update/documents`; or the rejection, with the request's clientToken when it could be read
 * @throws {@link ShadowOptionsError} when `options.limits` is invalid or `options.now` is not a finite number
 * @example
 * const result = applyUpdate(undefined, { state: { desired: { on: true } } }, { target: { thingName: 'lamp' }, now: Date.now() });
 * if (result.ok) store(result.shadow); // version 1, delta { on: true }
 */
export function applyUpdate(
  prior: ShadowRecord | undefined,
  request: unknown,
  options: ApplyOptions,
): ApplyUpdateResult {
  const merged = mergeUpdate(prior, request, options);
  if (!merged.ok) return merged;
  const { shadow, patch, clientToken, timestamp, previous } = merged;
  const { state, metadata, version } = shadow;
  const accepted: UpdateAcceptedBody = {
    state: patch,
    metadata: acceptedMetadata(patch, timestamp),
    version,
    timestamp,
  };
  if (clientToken !== undefined) accepted.clientToken = clientToken;

  const computed = computeDelta(state.desired, state.reported, metadata.desired);
  let delta: DeltaBody | undefined;
  if (computed !== undefined) {
    delta = { version, timestamp, state: computed.state, metadata: computed.metadata };
    if (clientToken !== undefined) delta.clientToken = clientToken;
  }

  const snapshot: DocumentSnapshot | null =
    previous === undefined
      ? null
      : { state: previous.state, metadata: previous.metadata, version: previous.version };
  const documents: DocumentsBody = { previous: snapshot, current: { state, metadata, version }, timestamp };
  if (clientToken !== undefined) documents.clientToken = clientToken;

  return { ok: true, shadow, accepted, delta, documents };
}

/** The outcome of {@link mergeUpdate}. */
export type MergeUpdateResult =
  | {
      ok: true;
      /** The document to store. */
      shadow: StoredShadow;
      /** The request's validated `state` (`null` deletes the document's state). */
      patch: UpdateState | null;
      /** The request's clientToken, when it has a valid one. */
      clientToken: string | undefined;
      /** The update's time, epoch seconds. */
      timestamp: number;
      /** The live shadow the update applied to, if any. */
      previous: StoredShadow | undefined;
    }
  | { ok: false; rejection: Rejection };

/**
 * {@link applyUpdate} without the answer bodies: the same checks in the same order, the same rejections and
 * the same resulting document. The update engine predicts documents with it, so that an app's bundle does
 * not carry the service's body builders (issue #11); `applyUpdate` builds its bodies on top of it.
 *
 * @param prior - what is stored for the target: a shadow, a tombstone, or `undefined`
 * @param request - the parsed request JSON; validated here
 * @param options - target, clock and limits
 * @throws {@link ShadowOptionsError} when `options.limits` is invalid or `options.now` is not a finite number
 */
export function mergeUpdate(
  prior: ShadowRecord | undefined,
  request: unknown,
  options: ApplyOptions,
): MergeUpdateResult {
  const { target, now } = options;
  if (typeof now !== 'number' || !Number.isFinite(now)) {
    throw new ShadowOptionsError(`applyUpdate: 'now' must be epoch milliseconds, got ${String(now)}`, target);
  }
  const limits = resolveLimits(options.limits);
  const clientToken = readClientToken(request, limits.maxClientTokenBytes);

  const badName = checkTarget(target, limits);
  if (badName !== undefined) {
    return { ok: false, rejection: rejectionOf(badName.errorType, badName.message, clientToken) };
  }

  const validated = validateUpdateRequest(request, limits);
  if (!validated.ok) return validated;
  const { state: patch, version: expected } = validated.request;

  const base = currentVersion(prior, now, limits.deletedVersionRetentionMs);
  if (expected !== undefined && expected !== base) {
    return { ok: false, rejection: rejectionOf('ConflictException', VERSION_CONFLICT_MESSAGE, clientToken) };
  }

  const live = prior !== undefined && !('deleted' in prior) ? prior : undefined;
  const timestamp = Math.floor(now / 1000);
  const state: ShadowState = {};
  const metadata: ShadowMetadata = {};
  for (const section of ['desired', 'reported'] as const) {
    let nextState = live?.state[section];
    let nextMetadata = live?.metadata[section];
    // A `null` state removes both sections, like a `null` section removes itself.
    const sectionPatch = patch === null ? null : patch[section];
    if (sectionPatch !== undefined) {
      nextState = mergeSection(nextState, sectionPatch);
      nextMetadata = mergeSectionMetadata(nextMetadata, sectionPatch, timestamp);
    }
    if (nextState !== undefined && nextMetadata !== undefined) {
      state[section] = nextState;
      metadata[section] = nextMetadata;
    }
  }

  // Size is measured on the resulting document, not the request (spec 2.10).
  if (stateBytes(state) > limits.maxStateBytes) {
    return {
      ok: false,
      rejection: rejectionOf('RequestEntityTooLargeException', STATE_TOO_LARGE_MESSAGE, clientToken),
    };
  }

  const shadow: StoredShadow = { state, metadata, version: base + 1 };
  return { ok: true, shadow, patch, clientToken, timestamp, previous: live };
}

/** The `update/accepted` metadata: every leaf of the request stamped, `null`s included (spec 1.3). */
function acceptedMetadata(patch: UpdateState | null, timestamp: number): UpdateAcceptedBody['metadata'] {
  if (patch === null) return { timestamp };
  const out: { desired?: MetadataObject | LeafMetadata; reported?: MetadataObject | LeafMetadata } = {};
  // metadataFor gives a leaf for a null section and an object for an object section.
  if (patch.desired !== undefined)
    out.desired = metadataFor(patch.desired, timestamp) as MetadataObject | LeafMetadata;
  if (patch.reported !== undefined) {
    out.reported = metadataFor(patch.reported, timestamp) as MetadataObject | LeafMetadata;
  }
  return out;
}
