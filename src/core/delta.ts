import type { JsonObject, JsonValue, MetadataNode, MetadataObject } from './document.js';
import { jsonEqual } from './json-equal.js';
// Sets an own key, including `__proto__`, which plain assignment would treat as the prototype.
import { setOwn as setKey } from './json-value.js';

/** The delta between desired and reported, and the desired-side metadata of its leaves. */
export interface Delta {
  state: JsonObject;
  metadata: MetadataObject;
}

const hasOwn = Object.hasOwn;

/**
 * Computes the delta the service reports: walking `desired` keys only, every desired value that differs
 * from reported (arrays compared whole, objects recursively, keys missing from reported included).
 * Returns `undefined` when there is no difference (the service then emits no delta).
 *
 * The delta shares subtrees with `desired` (a value taken whole is `desired`'s own value, not a copy).
 *
 * @param desired - the desired section, if any
 * @param reported - the reported section, if any
 * @param desiredMetadata - metadata of the desired section, copied onto the delta's leaves
 */
export function computeDelta(
  desired: JsonObject | undefined,
  reported: JsonObject | undefined,
  desiredMetadata?: MetadataObject,
): Delta | undefined {
  if (desired === undefined) return undefined;
  const state = reported === undefined ? deltaOfMissing(desired) : deltaOf(desired, reported);
  if (state === undefined) return undefined;
  return { state, metadata: desiredMetadata === undefined ? {} : metadataFor(state, desiredMetadata) };
}

/** Without reported, the delta is all of desired (or nothing when desired is empty). */
function deltaOfMissing(desired: JsonObject): JsonObject | undefined {
  for (const _ in desired) return { ...desired };
  return undefined;
}

/**
 * The delta of one object pair, allocating only when a difference is found. Equal scalars are settled by
 * one `===`; only arrays and objects reach a deeper comparison. A plain object answers inherited names:
 * `reported.toString` is a function, which differs from any JSON value and so counts as absent, as it
 * should; `reported.__proto__` is the prototype, an object, so that one key needs an own-key check.
 */
function deltaOf(desired: JsonObject, reported: JsonObject): JsonObject | undefined {
  let out: JsonObject | undefined;
  for (const key in desired) {
    const d = desired[key] as JsonValue;
    const r = reported[key];
    if (d === r) continue;
    let value: JsonValue | undefined;
    if (typeof d !== 'object' || d === null || typeof r !== 'object' || r === null) value = d;
    else if (key === '__proto__' && !hasOwn(reported, key)) value = d;
    else if (Array.isArray(d)) value = Array.isArray(r) && jsonEqual(d, r) ? undefined : d;
    else value = Array.isArray(r) ? d : deltaOf(d, r);
    if (value !== undefined) {
      out ??= {};
      setKey(out, key, value);
    }
  }
  return out;
}

/** Picks the metadata entries matching the delta's keys, taking whole subtrees where the delta took whole values. */
function metadataFor(delta: JsonObject, metadata: MetadataObject): MetadataObject {
  const out: MetadataObject = {};
  for (const key in delta) {
    if (!hasOwn(metadata, key)) continue;
    const node = metadata[key] as MetadataNode;
    const value = delta[key] as JsonValue;
    // A leaf's metadata is {timestamp: number}; an object's metadata is an object of nodes.
    const isObjectMetadata =
      typeof node === 'object' && !Array.isArray(node) && typeof node.timestamp !== 'number';
    const isObjectValue = typeof value === 'object' && value !== null && !Array.isArray(value);
    setKey(out, key, isObjectValue && isObjectMetadata ? metadataFor(value, node as MetadataObject) : node);
  }
  return out;
}
