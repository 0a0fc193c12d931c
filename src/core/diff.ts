import type { JsonObject, JsonValue, ShadowState, UpdateState } from './document.js';
import { jsonEqual } from './json-equal.js';
// Sets an own key named `__proto__`, which plain assignment would treat as the prototype (shared helper).
import { setOwn } from './json-value.js';

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
 * The update that merges `from` into `to`, allocating only when a difference is found (besides the key and
 * value lists of `from`). Both are non-null objects.
 *
 * Documents from `JSON.parse` usually list their keys in the same order on both sides, so while the keys of
 * `to` match those of `from` position by position, `from`'s value is taken from its value list instead of
 * by a keyed lookup: once V8 has seen many document shapes its keyed lookups turn generic, and the lists
 * keep an unchanged subtree cheap anyway. At the first key out of place, {@link diffByKey} carries on.
 */
function diffObjects(from: JsonObject, to: JsonObject): JsonObject | undefined {
  const fromKeys = Object.keys(from);
  // Listed only once the first key matches: no use for it when the orders differ from the start.
  let fromValues: JsonValue[] | undefined;
  let out: JsonObject | undefined;
  let done = 0;
  for (const key in to) {
    if (key !== fromKeys[done]) return diffByKey(from, to, fromKeys.length, done, out);
    const t = to[key] as JsonValue;
    fromValues ??= Object.values(from);
    const f = fromValues[done] as JsonValue;
    done++;
    if (f === t) continue;
    const change = diffValues(f, t);
    if (change !== undefined) {
      out ??= {};
      setOwn(out, key, change);
    }
  }
  return done === fromKeys.length ? out : withRemovedKeys(from, to, out);
}

/**
 * The update for one key both objects hold with different values. Arrays are atomic; an object replaces an
 * array; object into object merges recursively (and `{}` into a non-empty object changes nothing, so
 * diffObjects answers that with a `null` per stored key).
 */
function diffValues(f: JsonValue, t: JsonValue): JsonValue | undefined {
  if (typeof t !== 'object' || t === null || typeof f !== 'object' || f === null) return t;
  if (Array.isArray(t)) return jsonEqual(f, t) ? undefined : t;
  return Array.isArray(f) ? t : diffObjects(f, t);
}

/**
 * Finishes {@link diffObjects} by looking values up by key: the first `done` keys of `to` were shared with
 * `from` and their changes are in `update` already. Removed keys are looked for only when fewer keys of
 * `from` were found than it has (`fromCount`).
 *
 * A plain object answers inherited names that are not keys of the state: `from.toString` is a function
 * (never a JSON value) and `from.__proto__` is the prototype (so that one needs an own-key check).
 */
function diffByKey(
  from: JsonObject,
  to: JsonObject,
  fromCount: number,
  done: number,
  update: JsonObject | undefined,
): JsonObject | undefined {
  let out = update;
  let shared = done;
  let skip = done;
  for (const key in to) {
    if (skip > 0) {
      skip--;
      continue;
    }
    const t = to[key] as JsonValue;
    const f = from[key];
    if (f === undefined || typeof f === 'function' || (key === '__proto__' && !hasOwn(from, key))) {
      out ??= {};
      setOwn(out, key, t);
      continue;
    }
    shared++;
    if (f === t) continue;
    const change = diffValues(f, t);
    if (change !== undefined) {
      out ??= {};
      setOwn(out, key, change);
    }
  }
  return shared === fromCount ? out : withRemovedKeys(from, to, out);
}

/** Adds a `null` for every key of `from` that `to` lacks. */
function withRemovedKeys(from: JsonObject, to: JsonObject, update: JsonObject | undefined): JsonObject {
  const out = update ?? {};
  for (const key in from) {
    if (hasKey(to, key)) continue;
    setOwn(out, key, null);
  }
  return out;
}

function isEmpty(object: JsonObject): boolean {
  for (const _ in object) return false;
  return true;
}

/** True when `key` is one of the object's own keys (not an inherited name such as `constructor`). */
function hasKey(object: JsonObject, key: string): boolean {
  const value = object[key];
  if (value === undefined) return false;
  return (typeof value !== 'function' && key !== '__proto__') || hasOwn(object, key);
}
