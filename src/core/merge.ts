/**
 * The service's merge of an update request section into a stored section (spec section 2).
 */
import type { JsonObject, JsonValue } from './document.js';
import { cloneJson, fastCopy, isJsonObject, setOwn } from './json-value.js';

/**
 * Merges one section of an update request (`state.desired` or `state.reported`) into the stored section:
 * - a key set to `null` is removed (no-op when absent);
 * - an object over a stored object merges recursively; `{}` over a non-empty object changes nothing;
 * - an object over anything else (absent, scalar, array) replaces it, built by merging into an empty object:
 *   nulls inside it are dropped and emptied objects stay, so `{"n":{"m":null}}` with no stored `n` stores
 *   `n: {}` (moto's behaviour; AWS undocumented; consistent with "empty objects are real values");
 * - scalars and arrays replace the stored value whole (arrays are atomic);
 * - nested objects emptied by deleting their last key stay as `{}`; only the section itself disappears
 *   when it ends up empty (the result is then `undefined`).
 *
 * Inputs are never mutated. Untouched subtrees of `stored` are shared with the result (treat both as
 * immutable); values taken from `patch` are deep-copied, so the result never aliases the request.
 * Object properties holding `undefined` (possible only from JavaScript callers) are ignored.
 *
 * @param stored - the section as stored, or `undefined` when absent
 * @param patch - the request's section; `null` removes the whole section
 * @returns the new section, or `undefined` when it is empty (an empty section is never stored)
 * @example mergeSection({ a: 1, b: { c: 2 } }, { a: null, b: { d: 3 } }) // { b: { c: 2, d: 3 } }
 */
export function mergeSection(
  stored: JsonObject | undefined,
  patch: JsonObject | null,
): JsonObject | undefined {
  return mergeSectionWith(stored, patch, STATE_TREE);
}

/**
 * How {@link mergeSectionWith} builds one kind of tree from an update section: the state itself, or the
 * metadata that mirrors it (one merge walk for both, so that they cannot drift apart).
 */
export interface MergedTree<N> {
  /** Whether a stored node is an object that an object in the patch merges into (anything else is replaced). */
  isObject(node: N | undefined): node is N & { [key: string]: N };
  /** The node written for a scalar or an array of the patch. */
  leaf(value: JsonValue): N;
}

const STATE_TREE: MergedTree<JsonValue> = { isObject: isJsonObject, leaf: cloneJson };

/**
 * The merge rules of {@link mergeSection} applied to a tree of `tree`'s kind: keys set to `null` are removed,
 * objects merge into stored objects (anything else stored is replaced by a merge into `{}`), scalars and arrays
 * become `tree.leaf(value)`. Inputs are never mutated; unchanged subtrees of `stored` are shared.
 *
 * @returns the new section, or `undefined` when it is empty (an empty section is never stored)
 */
export function mergeSectionWith<N>(
  stored: { [key: string]: N } | undefined,
  patch: JsonObject | null,
  tree: MergedTree<N>,
): { [key: string]: N } | undefined {
  if (patch === null) return undefined;
  const merged = mergeObject(stored ?? {}, patch, tree);
  return Object.keys(merged).length === 0 ? undefined : merged;
}

function mergeObject<N>(
  base: { [key: string]: N },
  patch: JsonObject,
  tree: MergedTree<N>,
): { [key: string]: N } {
  let out: { [key: string]: N } | undefined;
  let reshaped = false;
  for (const key of Object.keys(patch)) {
    const value = patch[key];
    if (value === undefined) continue;
    const current = Object.hasOwn(base, key) ? base[key] : undefined;
    if (value === null) {
      if (current !== undefined) {
        out ??= { ...base };
        delete out[key];
        reshaped = true;
      }
      continue;
    }
    // An object patched over anything but an object starts from an empty object, so nulls inside it are
    // dropped and empty objects stay (`{"n":{"m":null}}` stores `n: {}`).
    const next = isJsonObject(value)
      ? (mergeObject(tree.isObject(current) ? current : {}, value, tree) as N)
      : tree.leaf(value);
    if (next !== current) {
      out ??= { ...base };
      if (current === undefined) reshaped = true;
      setOwn(out, key, next);
    }
  }
  return out === undefined ? base : reshaped ? fastCopy(out) : out;
}
