import type { JsonValue } from './document.js';

/** Deep equality of two JSON values: arrays element by element in order, objects by key set and values. */
export function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i] as JsonValue, b[i] as JsonValue)) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  let count = 0;
  for (const key in a) {
    const other = b[key];
    if (other === undefined || !jsonEqual(a[key] as JsonValue, other)) return false;
    count++;
  }
  for (const _ in b) count--;
  return count === 0;
}
