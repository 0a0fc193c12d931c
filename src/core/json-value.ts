/**
 * Small operations on JSON values shared by the core and the adapters: type test, own-key writes that are
 * safe for `__proto__`, copies that keep V8's fast object shapes.
 */
import type { JsonObject, JsonPrimitive, JsonValue } from './document.js';

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

/** A tree shaped like a JSON value whose scalar leaves became `L`s. */
export type JsonTree<L> = L | JsonTree<L>[] | { [key: string]: JsonTree<L> };

/**
 * A deep copy of a JSON value in which every scalar leaf (`null` included) becomes `leaf(value)`: arrays stay
 * arrays, objects stay objects (properties holding `undefined` are dropped).
 *
 * @param value - the value to copy
 * @param leaf - the node for a scalar leaf
 */
export function mapLeaves<L>(value: JsonValue, leaf: (value: JsonPrimitive) => L): JsonTree<L> {
  if (Array.isArray(value)) return value.map((element) => mapLeaves(element, leaf));
  if (isJsonObject(value)) {
    // Spread first and overwrite existing keys in place: no key is added, so the copy stays a fast object.
    let out = { ...value } as unknown as { [key: string]: JsonTree<L> };
    let reshaped = false;
    for (const key of Object.keys(out)) {
      const child = value[key];
      if (child === undefined) {
        delete out[key];
        reshaped = true;
      } else {
        setOwn(out, key, mapLeaves(child, leaf));
      }
    }
    if (reshaped) out = fastCopy(out);
    return out;
  }
  return leaf(value);
}

const itself = <T>(value: T): T => value;

/**
 * A deep copy of a JSON value (object properties holding `undefined` are dropped).
 *
 * @param value - the value to copy
 */
export function cloneJson<T extends JsonValue>(value: T): T {
  return mapLeaves(value, itself) as T;
}
