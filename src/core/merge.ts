/**
 * The service's merge of an update request section into a stored section (spec section 2).
 */
import type { JsonObject, JsonValue } from './document.js';

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

/**
 * A shallow copy built by object spread. V8 turns objects that gain many keys by computed-name stores, or
 * lose one by `delete`, into slow dictionary objects (copying a 40-key one then costs 100 times more);
 * spreading it gives a fast object again. Spread keeps an own `__proto__` key as an own key.
 */
export function fastCopy<T extends object>(value: T): T {
  return { ...value };
}

/**
 * True for a JSON object (not `null`, not an array).
 *
 * @param value - any value
 */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Sets an own data property, also for the key `__proto__`, which a plain assignment would turn into a
 * prototype change (`JSON.parse('{"__proto__":1}')` yields an own key that must survive a merge).
 *
 * @param target - the object to write
 * @param key - the property name
 * @param value - the value
 */
export function setOwn<T>(target: { [key: string]: T }, key: string, value: T): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

/**
 * A deep copy of a JSON value (object properties holding `undefined` are dropped).
 *
 * @param value - the value to copy
 */
export function cloneJson<T extends JsonValue>(value: T): T {
  if (Array.isArray(value)) return value.map((element) => cloneJson(element)) as T;
  if (isJsonObject(value)) {
    // Spread first and overwrite existing keys in place: no key is added, so the copy stays a fast object.
    let out: JsonObject = { ...value };
    let reshaped = false;
    for (const key of Object.keys(out)) {
      const child = out[key];
      if (child === undefined) {
        delete out[key];
        reshaped = true;
      } else if (typeof child === 'object' && child !== null) {
        setOwn(out, key, cloneJson(child));
      }
    }
    if (reshaped) out = fastCopy(out);
    return out as T;
  }
  return value;
}
