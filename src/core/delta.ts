import type { JsonObject, JsonValue, MetadataNode, MetadataObject } from './document.js';
import { jsonEqual } from './json-equal.js';

/** The delta between desired and reported, and the desired-side metadata of its leaves. */
export interface Delta {
  state: JsonObject;
  metadata: MetadataObject;
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Computes the delta the service reports: walking `desired` keys only, every desired value that differs
 * from reported (arrays compared whole, objects recursively, keys missing from reported included).
 * Returns `undefined` when there is no difference (the service then emits no delta).
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
  const state = deltaOf(desired, reported);
  if (state === undefined) return undefined;
  return { state, metadata: desiredMetadata === undefined ? {} : metadataFor(state, desiredMetadata) };
}

/** The delta of one object pair, allocating only when a difference is found. */
function deltaOf(desired: JsonObject, reported: JsonObject | undefined): JsonObject | undefined {
  let out: JsonObject | undefined;
  for (const key in desired) {
    const d = desired[key] as JsonValue;
    const r = reported === undefined ? undefined : reported[key];
    let value: JsonValue | undefined;
    if (r === undefined) value = d;
    else if (isObject(d) && isObject(r)) value = deltaOf(d, r);
    else if (!jsonEqual(d, r)) value = d;
    if (value !== undefined) {
      out ??= {};
      out[key] = value;
    }
  }
  return out;
}

/** Picks the metadata entries matching the delta's keys, taking whole subtrees where the delta took whole values. */
function metadataFor(delta: JsonObject, metadata: MetadataObject): MetadataObject {
  const out: MetadataObject = {};
  for (const key in delta) {
    const node: MetadataNode | undefined = metadata[key];
    if (node === undefined) continue;
    const value = delta[key] as JsonValue;
    // A leaf's metadata is {timestamp: number}; an object's metadata is an object of nodes.
    const isObjectMetadata =
      typeof node === 'object' && !Array.isArray(node) && typeof node.timestamp !== 'number';
    out[key] = isObject(value) && isObjectMetadata ? metadataFor(value, node as MetadataObject) : node;
  }
  return out;
}
