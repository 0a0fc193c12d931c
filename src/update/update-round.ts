/**
 * One round of the update engine, as pure functions: run the callers' intents in call order on one base
 * document, using the service's own rules (`mergeUpdate`, the checks and merge of `applyUpdate`) to build the state each intent sees and to
 * refuse a patch that breaks a limit, then `diffState` for the one minimal request of the round.
 */
import { mergeUpdate } from '../core/apply-update.js';
import { computeDelta } from '../core/delta.js';
import { diffState } from '../core/diff.js';
import type {
  JsonObject,
  JsonValue,
  MetadataObject,
  Rejection,
  ShadowMetadata,
  ShadowRecord,
  ShadowTarget,
  StoredShadow,
  UpdateState,
} from '../core/document.js';
import { isJsonObject, setOwn } from '../core/json-value.js';
import type { ShadowLimits } from '../core/limits.js';
import { completeMetadata } from '../core/metadata.js';
import { describeTarget, ShadowLimitError, ShadowValidationError, targetContext } from '../errors.js';
import type { KnownState, ShadowDocument } from '../transports/transport.js';
import type { SectionValidator } from './typed-schema.js';

/** A read-modify-write intent: gets the current document (or `undefined`), returns the change, or nothing. */
// biome-ignore lint/suspicious/noConfusingVoidType: an intent may end without a return statement to mean "no change".
export type Intent = (current: ShadowDocument | undefined) => UpdateState | undefined | void;

/** One caller's contribution to a round. */
export type RoundCall =
  | { kind: 'update'; intent: Intent; validator: SectionValidator | undefined }
  | { kind: 'merge'; patch: UpdateState; validator: SectionValidator | undefined };

/** What happened to one call in a planned round. */
export type CallOutcome = { ok: true; skipped: boolean } | { ok: false; error: unknown };

/** The plan of a round. */
export interface RoundPlan {
  /** One outcome per call, in call order. */
  outcomes: CallOutcome[];
  /** The minimal request state, or `undefined` when the round changes nothing. */
  patch: UpdateState | undefined;
}

/** Where a round runs and under which limits. */
export interface RoundContext {
  target: ShadowTarget;
  now: number;
  limits: Partial<ShadowLimits>;
}

/** The stored record a known state stands for, as `applyUpdate` takes it. */
export function recordOf(known: KnownState, now: number): ShadowRecord | undefined {
  if (known.exists) return storedOf(known.document);
  return known.version === 0 ? undefined : { deleted: true, version: known.version, deletedAt: now };
}

/** A document without its computed parts (`delta`, `timestamp`). */
export function storedOf(document: ShadowDocument): StoredShadow {
  const { delta: _delta, ...state } = document.state;
  const metadata: ShadowMetadata = {};
  for (const section of ['desired', 'reported'] as const) {
    const value = state[section];
    // Metadata is rebuilt to mirror the state: the core's merge keeps a section only with its metadata, so a
    // document with missing metadata would otherwise predict (and diff into) the loss of that section.
    if (value !== undefined) {
      metadata[section] = completeMetadata(value, document.metadata?.[section], 0) as MetadataObject;
    }
  }
  return { state, metadata, version: document.version };
}

/** A stored shadow as a client sees it: with its delta, as a fresh copy the caller may change. */
export function documentOf(shadow: StoredShadow, version: number = shadow.version): ShadowDocument {
  const state = structuredClone(shadow.state) as ShadowDocument['state'];
  const metadata = structuredClone(shadow.metadata) as ShadowDocument['metadata'];
  const delta = computeDelta(state.desired, state.reported, metadata.desired);
  if (delta !== undefined) {
    state.delta = delta.state;
    metadata.delta = delta.metadata;
  }
  return { state, metadata, version };
}

/** The version a write on `known` must name: the document's version, or the absent shadow's. */
export function versionOf(known: KnownState): number {
  return known.exists ? known.document.version : known.version;
}

/**
 * Turns a rejection the core predicted into the error the caller gets before any request:
 * `ShadowLimitError` for size, depth, names and clientToken, `ShadowValidationError` for a malformed patch.
 *
 * @param rejection - what `applyUpdate` answered
 * @param target - the shadow
 */
export function preflightError(
  rejection: Rejection,
  target: ShadowTarget,
): ShadowLimitError | ShadowValidationError {
  const context = {
    ...targetContext(target),
    awsCode: rejection.errorType,
    awsMessage: rejection.message,
    statusCode: rejection.code,
  };
  const where = describeTarget(context);
  let limit: string | undefined;
  if (rejection.code === 413) limit = 'maxStateBytes';
  else if (rejection.message.includes('levels of nesting')) limit = 'maxDepth';
  else if (rejection.message.includes("'thingName'")) limit = 'thingName';
  else if (rejection.message.includes("'shadowName'")) limit = 'shadowName';
  else if (rejection.message === 'Invalid clientToken') limit = 'maxClientTokenBytes';
  if (limit !== undefined) {
    return new ShadowLimitError(
      `${where}: refused before sending, the service would answer ${rejection.code} ${rejection.message}`,
      {
        ...context,
        limit,
      },
    );
  }
  return new ShadowValidationError(`${where}: invalid patch: ${rejection.message}`, {
    ...context,
    issues: [{ path: ['state'], message: rejection.message }],
  });
}

/**
 * A patch must be an object (`{ desired?, reported? }`): `null` would become `{"state": null}`, which the
 * service accepts and which clears the whole shadow, never what a caller of `update` or `merge` meant.
 */
function malformedPatch(patch: unknown, target: ShadowTarget): ShadowValidationError | undefined {
  if (typeof patch === 'object' && patch !== null && !Array.isArray(patch)) return undefined;
  const message = `a patch must be an object with 'desired' and/or 'reported', got ${patch === null ? 'null' : Array.isArray(patch) ? 'an array' : typeof patch}`;
  return new ShadowValidationError(`${describeTarget(target)}: ${message}`, {
    ...targetContext(target),
    issues: [{ path: [], message }],
  });
}

/**
 * Plans a round: runs every call in order on `base`, each seeing the state left by the calls before it.
 * A call whose intent throws, whose patch the service would refuse, or whose result fails its schema gets
 * its own error and contributes nothing; the others go on.
 *
 * The document an intent sees has the version the round's write will name (the base's); its metadata
 * timestamps for keys written earlier in the same round are predicted with `context.now`.
 *
 * @param base - the state the round builds on
 * @param calls - the callers, in call order
 * @param context - target, clock and limits
 */
export function planRound(base: KnownState, calls: readonly RoundCall[], context: RoundContext): RoundPlan {
  const { target, now, limits } = context;
  const baseRecord = recordOf(base, context.now);
  const baseVersion = versionOf(base);
  let working: ShadowRecord | undefined = baseRecord;
  const outcomes: CallOutcome[] = [];
  for (const call of calls) {
    let patch: UpdateState | undefined;
    try {
      if (call.kind === 'merge') {
        patch = call.patch;
      } else {
        const live = working !== undefined && !('deleted' in working) ? working : undefined;
        const result = call.intent(live === undefined ? undefined : documentOf(live, baseVersion));
        patch = result === undefined ? undefined : (result as UpdateState);
      }
    } catch (error) {
      outcomes.push({ ok: false, error });
      continue;
    }
    if (patch === undefined) {
      outcomes.push({ ok: true, skipped: true });
      continue;
    }
    const malformed = malformedPatch(patch, target);
    if (malformed !== undefined) {
      outcomes.push({ ok: false, error: malformed });
      continue;
    }
    const applied = mergeUpdate(working, { state: patch }, { target, now, limits });
    if (!applied.ok) {
      outcomes.push({ ok: false, error: preflightError(applied.rejection, target) });
      continue;
    }
    try {
      call.validator?.state(applied.shadow.state, 'the document this patch would produce');
    } catch (error) {
      outcomes.push({ ok: false, error });
      continue;
    }
    const before = working !== undefined && !('deleted' in working) ? working.state : undefined;
    outcomes.push({ ok: true, skipped: diffState(before, applied.shadow.state) === undefined });
    working = applied.shadow;
  }
  const baseState = baseRecord !== undefined && !('deleted' in baseRecord) ? baseRecord.state : undefined;
  const workingState = working !== undefined && !('deleted' in working) ? working.state : undefined;
  return { outcomes, patch: diffState(baseState, workingState) };
}

/**
 * Checks a blind merge patch before it is queued: shape, depth and the size of what it alone would store
 * (the result of a merge holds every non-null value of the patch, so a patch too large on its own is too
 * large on any document), then the shadow's schema in its deep-partial form.
 *
 * @throws ShadowLimitError or ShadowValidationError
 */
export function preflightMerge(
  patch: UpdateState,
  validator: SectionValidator | undefined,
  context: RoundContext,
): void {
  const malformed = malformedPatch(patch, context.target);
  if (malformed !== undefined) throw malformed;
  const applied = mergeUpdate(
    undefined,
    { state: patch },
    { target: context.target, now: context.now, limits: context.limits },
  );
  if (!applied.ok) throw preflightError(applied.rejection, context.target);
  validator?.patch(patch);
}

/**
 * Composes two update states into one with the same effect as sending them one after the other, or
 * returns `undefined` when no single request can do that. A key set to an object by the second patch
 * after the first set it to a scalar, array or `null` cannot be expressed (an object in a request merges
 * into a stored object instead of replacing it), nor can a section written after being removed.
 *
 * @param first - the earlier patch
 * @param second - the later patch
 */
export function composePatches(first: UpdateState, second: UpdateState): UpdateState | undefined {
  const out: UpdateState = { ...first };
  for (const section of ['desired', 'reported'] as const) {
    const later = second[section];
    if (later === undefined) continue;
    const earlier = first[section];
    if (later === null || earlier === undefined) {
      out[section] = later;
      continue;
    }
    if (earlier === null) return undefined;
    const composed = composeObjects(earlier, later);
    if (composed === undefined) return undefined;
    out[section] = composed;
  }
  return out;
}

function composeObjects(earlier: JsonObject, later: JsonObject): JsonObject | undefined {
  const out: JsonObject = { ...earlier };
  for (const key of Object.keys(later)) {
    const value = later[key] as JsonValue;
    const before = Object.hasOwn(earlier, key) ? earlier[key] : undefined;
    if (!isJsonObject(value) || before === undefined) {
      setOwn(out, key, value);
      continue;
    }
    if (!isJsonObject(before)) return undefined;
    const nested = composeObjects(before, value);
    if (nested === undefined) return undefined;
    setOwn(out, key, nested);
  }
  return out;
}
