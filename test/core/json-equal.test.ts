import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JsonValue } from '../../src/core/document.js';
import { jsonEqual } from '../../src/core/json-equal.js';

/** Order-independent text of a JSON value: object keys sorted, array order kept. */
function canonical(value: JsonValue): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonical(value[key] as JsonValue)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const parse = (text: string) => JSON.parse(text) as JsonValue;

describe('jsonEqual', () => {
  it('compares scalars by value and type', () => {
    expect(jsonEqual(1, 1)).toBe(true);
    expect(jsonEqual(1, 1.0)).toBe(true);
    expect(jsonEqual(1, '1')).toBe(false);
    expect(jsonEqual(true, 1)).toBe(false);
    expect(jsonEqual(null, null)).toBe(true);
    expect(jsonEqual(null, {})).toBe(false);
    expect(jsonEqual({}, null)).toBe(false);
  });

  it('compares arrays element by element, in order', () => {
    expect(jsonEqual([1, [2, { a: 3 }]], [1, [2, { a: 3 }]])).toBe(true);
    expect(jsonEqual([1, 2], [2, 1])).toBe(false);
    expect(jsonEqual([1, 2], [1, 2, 3])).toBe(false);
    expect(jsonEqual([], {})).toBe(false);
    expect(jsonEqual({}, [])).toBe(false);
  });

  it('compares objects by key set and values, ignoring key order', () => {
    expect(jsonEqual({ a: 1, b: { c: [1] } }, { b: { c: [1] }, a: 1 })).toBe(true);
    expect(jsonEqual({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(jsonEqual({ a: 1, b: 2 }, { a: 1 })).toBe(false);
    expect(jsonEqual({ a: 1, b: 2 }, { a: 1, c: 2 })).toBe(false);
    expect(jsonEqual({ a: {} }, { a: [] })).toBe(false);
  });

  it('never takes inherited names for keys', () => {
    expect(jsonEqual({ constructor: 1 }, { toString: 1 })).toBe(false);
    expect(jsonEqual({ toString: {} }, { valueOf: {} })).toBe(false);
    expect(jsonEqual(parse('{"__proto__":{}}'), { other: 1 })).toBe(false);
    expect(jsonEqual({ other: 1 }, parse('{"__proto__":{}}'))).toBe(false);
    expect(jsonEqual(parse('{"__proto__":{"a":1}}'), parse('{"__proto__":{"a":1}}'))).toBe(true);
  });

  it('agrees with comparing canonical JSON text', () => {
    const value = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.parse(JSON.stringify(v)) as JsonValue);
    const small = fc
      .letrec((tie) => ({
        value: fc.oneof(
          { depthSize: 'small' },
          fc.constantFrom(0, 1, 'a', true, null),
          fc.array(tie('value'), { maxLength: 2 }),
          fc.dictionary(fc.constantFrom('a', 'b', '__proto__', 'constructor'), tie('value'), {
            maxKeys: 2,
            noNullPrototype: true,
          }),
        ),
      }))
      .value.map((v) => JSON.parse(JSON.stringify(v)) as JsonValue);
    fc.assert(
      fc.property(fc.oneof(fc.tuple(value, value), fc.tuple(small, small)), ([a, b]) => {
        expect(jsonEqual(a, b)).toBe(canonical(a) === canonical(b));
        expect(jsonEqual(a, JSON.parse(JSON.stringify(a)) as JsonValue)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});
