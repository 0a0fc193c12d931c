import type { JsonObject, JsonValue, ShadowState, UpdateState } from './document.js';
import { jsonEqual } from './json-equal.js';

const hasOwn = Object.hasOwn;

/**
 * Computes the minimal update section that turns the stored section `from` into `to` under the service's
 * merge rules (spec section 2): `null` for every removed key, whole arrays, only the differing leaves of
 * nested objects, nothing for equal subtrees.
 *
 * `undefined` and `{}` are the same section (the service never stores an empty section). When `to` is
 * empty and `from` is not, the answer is `null`, which makes the service remove the whole section.
 *
 * The result shares subtrees with `to` (a key missing from `from` maps to `to`'s own value, not a copy):
 * treat it as read-only or clone it before changing it.
 *
 * @param from - the section as stored now, if any
 * @param to - the section wanted, if any; a stored section, so without `null` values
 * @returns the update section, `null` to remove the section, or `undefined` when both are equal
 *
 * @example
 * ```ts
 * diffSection({ mode: 'auto', fan: { speed: 2, swing: true } }, { mode: 'auto', fan: { speed: 3 } });
 * // → { fan: { speed: 3, swing: null } }
 * ```
 */
export function diffSection(
  from: JsonObject | undefined,
  to: JsonObject | undefined,
): JsonObject | null | undefined {
  if (to === undefined) return from === undefined || isEmpty(from) ? undefined : null;
  if (from === undefined) return isEmpty(to) ? undefined : to;
  const update = diffObjects(from, to);
  // Emptiness is checked only when something differs: an equal pair costs a single walk.
  if (update === undefined) return undefined;
  if (isEmpty(to)) return null;
  return isEmpty(from) ? to : update;
}

/**
 * Computes the minimal update `state` that turns the stored state `from` into `to`: {@link diffSection} of
 * `desired` and of `reported`, keeping only the sections that change.
 *
 * @param from - the stored state (a GET's `state` without `delta`), or `undefined` for no shadow
 * @param to - the state wanted
 * @returns the `state` of an update request, or `undefined` when nothing needs to be sent
 *
 * @example
 * ```ts
 * diffState({ desired: { power: 'off' }, reported: { power: 'off', rssi: -60 } }, { reported: { power: 'on' } });
 * // → { desired: null, reported: { power: 'on', rssi: null } }
 * ```
 */
export function diffState(
  from: ShadowState | undefined,
  to: ShadowState | undefined,
): UpdateState | undefined {
  const desired = diffSection(from?.desired, to?.desired);
  const reported = diffSection(from?.reported, to?.reported);
  if (desired === undefined) return reported === undefined ? undefined : { reported };
  return reported === undefined ? { desired } : { desired, reported };
}

/**
 * The update that merges `from` into `to`, allocating only when a difference is found. Both are non-null
 * objects. Keys of `to` are walked once; removed keys are looked for only when `from` has more keys than
 * `to` shares with it, so an unchanged subtree costs one walk of each object and no allocation.
 *
 * A plain object answers inherited names that are not keys of the state: `from.toString` is a function
 * (never equal to a JSON value, so only the shared-key count must skip it) and `from.__proto__` is the
 * prototype (an object, so it needs an own-key check before being diffed against).
 */
function diffObjects(from: JsonObject, to: JsonObject): JsonObject | undefined {
  let out: JsonObject | undefined;
  let shared = 0;
  for (const key in to) {
    const t = to[key] as JsonValue;
    const f = from[key];
    if (f === t) {
      shared++;
      continue;
    }
    let change: JsonValue | undefined;
    if (f === undefined) change = t;
    else if (typeof t !== 'object' || t === null || typeof f !== 'object' || f === null) {
      if (typeof f !== 'function' && (key !== '__proto__' || hasOwn(from, key))) shared++;
      change = t;
    } else if (key === '__proto__' && !hasOwn(from, key)) change = t;
    else {
      shared++;
      // Arrays are atomic; an object replaces an array; object into object merges recursively (and `{}`
      // into a non-empty object changes nothing, so diffObjects answers that with a `null` per stored key).
      if (Array.isArray(t)) change = jsonEqual(f, t) ? undefined : t;
      else change = Array.isArray(f) ? t : diffObjects(f, t);
    }
    if (change !== undefined) {
      out ??= {};
      if (key === '__proto__') setOwn(out, key, change);
      else out[key] = change;
    }
  }
  return shared === countKeys(from) ? out : withRemovedKeys(from, to, out);
}

/** Adds a `null` for every key of `from` that `to` lacks. */
function withRemovedKeys(from: JsonObject, to: JsonObject, update: JsonObject | undefined): JsonObject {
  const out = update ?? {};
  for (const key in from) {
    if (hasKey(to, key)) continue;
    if (key === '__proto__') setOwn(out, key, null);
    else out[key] = null;
  }
  return out;
}

function isEmpty(object: JsonObject): boolean {
  for (const _ in object) return false;
  return true;
}

function countKeys(object: JsonObject): number {
  let count = 0;
  for (const _ in object) count++;
  return count;
}

/** True when `key` is one of the object's own keys (not an inherited name such as `constructor`). */
function hasKey(object: JsonObject, key: string): boolean {
  const value = object[key];
  if (value === undefined) return false;
  return (typeof value !== 'function' && key !== '__proto__') || hasOwn(object, key);
}

/** Sets an own key named `__proto__`, which plain assignment would treat as the prototype. */
function setOwn(object: JsonObject, key: string, value: JsonValue): void {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}
