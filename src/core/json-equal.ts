import type { JsonObject, JsonValue } from './document.js';

const hasOwn = Object.hasOwn;

/**
 * Deep equality of two JSON values: arrays element by element in order, objects by key set and values.
 * Equal scalars are settled by `===` without a call; only nested arrays and objects recurse.
 *
 * @param a - a JSON value
 * @param b - another JSON value
 */
export function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) return Array.isArray(b) && arraysEqual(a, b);
  return !Array.isArray(b) && objectsEqual(a, b);
}

function arraysEqual(a: JsonValue[], b: JsonValue[]): boolean {
  const length = a.length;
  if (length !== b.length) return false;
  for (let i = 0; i < length; i++) {
    const x = a[i] as JsonValue;
    const y = b[i] as JsonValue;
    if (x !== y && (typeof x !== 'object' || typeof y !== 'object' || !jsonEqual(x, y))) return false;
  }
  return true;
}

function objectsEqual(a: JsonObject, b: JsonObject): boolean {
  let count = 0;
  for (const key in a) {
    const x = a[key] as JsonValue;
    const y = b[key];
    if (x !== y) {
      // `y` may be inherited (a function for `toString`, the prototype for `__proto__`): never equal.
      if (y === undefined || typeof x !== 'object' || typeof y !== 'object' || x === null || y === null)
        return false;
      if (key === '__proto__' && !hasOwn(b, key)) return false;
      if (!jsonEqual(x, y)) return false;
    }
    count++;
  }
  for (const _ in b) count--;
  return count === 0;
}
