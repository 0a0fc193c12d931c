/**
 * The service's merge of an update request section into a stored section (spec section 2).
 */
import type { JsonObject } from './document.js';
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
  if (patch === null) return undefined;
  const merged = mergeObject(stored ?? {}, patch);
  return Object.keys(merged).length === 0 ? undefined : merged;
}

function mergeObject(base: JsonObject, patch: JsonObject): JsonObject {
  let out: JsonObject | undefined;
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
    const next = isJsonObject(value)
      ? mergeObject(isJsonObject(current) ? current : {}, value)
      : cloneJson(value);
    if (next !== current) {
      out ??= { ...base };
      if (current === undefined) reshaped = true;
      setOwn(out, key, next);
    }
  }
  return out === undefined ? base : reshaped ? fastCopy(out) : out;
}
