import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JsonObject, JsonValue, MetadataNode, MetadataObject } from '../../src/core/document.js';
import { cloneJson } from '../../src/core/json-value.js';
import { mergeSection } from '../../src/core/merge.js';
import {
  completeMetadata,
  isLeafMetadata,
  mergeSectionMetadata,
  metadataFor,
} from '../../src/core/metadata.js';

/** True when `metadata` has exactly the shape of `state` with every scalar replaced by `{timestamp}`. */
function mirrors(state: JsonValue, metadata: MetadataNode): boolean {
  if (Array.isArray(state)) {
    return (
      Array.isArray(metadata) &&
      metadata.length === state.length &&
      state.every((v, i) => mirrors(v, metadata[i] as MetadataNode))
    );
  }
  if (typeof state === 'object' && state !== null) {
    if (Array.isArray(metadata) || isLeafMetadata(metadata)) return false;
    const keys = Object.keys(state);
    return (
      keys.length === Object.keys(metadata).length &&
      keys.every(
        (key) =>
          Object.hasOwn(metadata, key) &&
          mirrors(state[key] as JsonValue, (metadata as MetadataObject)[key] as MetadataNode),
      )
    );
  }
  return isLeafMetadata(metadata);
}

describe('metadataFor', () => {
  it('turns leaves into {timestamp}, arrays into one node per element and objects into objects', () => {
    expect(metadataFor({ on: true, rgb: [1, { x: 'y' }, [2]], empty: {}, n: null }, 7)).toEqual({
      on: { timestamp: 7 },
      rgb: [{ timestamp: 7 }, { x: { timestamp: 7 } }, [{ timestamp: 7 }]],
      empty: {},
      n: { timestamp: 7 },
    });
    expect(metadataFor('x', 3)).toEqual({ timestamp: 3 });
    expect(metadataFor([], 3)).toEqual([]);
  });

  it('skips object properties holding undefined, as JSON.stringify would', () => {
    const value = { a: undefined, b: [1], c: { d: undefined } } as unknown as JsonObject;
    expect(metadataFor(value, 4)).toEqual({ b: [{ timestamp: 4 }], c: {} });
    expect(Object.keys(metadataFor(value, 4))).toEqual(['b', 'c']);
  });

  it('keeps a state key named timestamp apart from a leaf', () => {
    const metadata = metadataFor({ timestamp: 5 }, 9);
    expect(metadata).toEqual({ timestamp: { timestamp: 9 } });
    expect(isLeafMetadata(metadata)).toBe(false);
    expect(isLeafMetadata({ timestamp: 9 })).toBe(true);
    expect(isLeafMetadata([{ timestamp: 9 }])).toBe(false);
    expect(isLeafMetadata(undefined)).toBe(false);
  });

  it('keeps __proto__ keys as own keys', () => {
    const value = JSON.parse('{"__proto__":{"a":1}}') as JsonObject;
    const metadata = metadataFor(value, 1) as MetadataObject;
    expect(Object.hasOwn(metadata, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(metadata)).toBe(Object.prototype);
  });
});

describe('mergeSectionMetadata', () => {
  const stored: MetadataObject = Object.freeze({
    keep: { timestamp: 1 },
    obj: Object.freeze({ x: { timestamp: 1 }, y: { timestamp: 1 } }),
    arr: [{ timestamp: 1 }],
    ts: Object.freeze({ timestamp: Object.freeze({ timestamp: 1 }) }),
  }) as MetadataObject;

  it('stamps written leaves, keeps untouched ones, removes nulls and replaces changed types', () => {
    expect(
      mergeSectionMetadata(
        stored,
        { obj: { x: 2, z: null }, arr: { a: 1 }, keep: null, ts: { timestamp: 3 } },
        5,
      ),
    ).toEqual({
      obj: { x: { timestamp: 5 }, y: { timestamp: 1 } },
      arr: { a: { timestamp: 5 } },
      ts: { timestamp: { timestamp: 5 } },
    });
  });

  it('replaces an object by a leaf and a leaf by an object, starting from {} for nulls inside new objects', () => {
    expect(mergeSectionMetadata(stored, { obj: 3, keep: { n: { m: null }, o: 1 } }, 5)).toEqual({
      keep: { n: {}, o: { timestamp: 5 } },
      obj: { timestamp: 5 },
      arr: [{ timestamp: 1 }],
      ts: { timestamp: { timestamp: 1 } },
    });
  });

  it('returns the stored tree itself when the patch changes nothing, and undefined for an empty or removed section', () => {
    expect(mergeSectionMetadata(stored, { obj: {}, gone: null }, 5)).toBe(stored);
    expect(mergeSectionMetadata(stored, null, 5)).toBeUndefined();
    expect(mergeSectionMetadata(undefined, { a: null }, 5)).toBeUndefined();
    expect(mergeSectionMetadata({ a: { timestamp: 1 } }, { a: null }, 5)).toBeUndefined();
  });

  it('always mirrors the state produced by mergeSection, and never mutates its inputs', () => {
    const section = fc.dictionary(fc.string({ maxLength: 3 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 });
    const patchValue = fc.oneof(fc.constant(null), fc.jsonValue({ maxDepth: 3 }));
    const patch = fc.dictionary(fc.string({ maxLength: 3 }), patchValue, {
      maxKeys: 5,
    }) as fc.Arbitrary<JsonObject>;
    fc.assert(
      fc.property(section, patch, (initial, update) => {
        const state = mergeSection(undefined, initial as JsonObject);
        const metadata = mergeSectionMetadata(undefined, initial as JsonObject, 1);
        const stateBefore = cloneJson(state ?? {});
        const metadataBefore = structuredClone(metadata);
        const nextState = mergeSection(state, update);
        const nextMetadata = mergeSectionMetadata(metadata, update, 2);
        expect(nextState === undefined).toBe(nextMetadata === undefined);
        if (nextState !== undefined && nextMetadata !== undefined)
          expect(mirrors(nextState, nextMetadata)).toBe(true);
        expect(state ?? {}).toEqual(stateBefore);
        expect(metadata).toEqual(metadataBefore);
      }),
    );
  });
});

describe('mergeSection', () => {
  it('keeps __proto__ as an own key through merges without touching prototypes', () => {
    const stored = JSON.parse('{"__proto__":{"a":1},"b":2}') as JsonObject;
    const merged = mergeSection(stored, JSON.parse('{"__proto__":{"c":3}}') as JsonObject);
    expect(JSON.stringify(merged)).toBe('{"__proto__":{"a":1,"c":3},"b":2}');
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    const removed = mergeSection(stored, JSON.parse('{"__proto__":null}') as JsonObject);
    expect(JSON.stringify(removed)).toBe('{"b":2}');
    expect(({} as Record<string, unknown>).c).toBeUndefined();
  });

  it('copies values from the patch so the stored state never aliases the request', () => {
    const patch = { list: [1, { a: 2 }], obj: { b: [3] } } as JsonObject;
    const merged = mergeSection(undefined, patch);
    ((patch.list as JsonValue[])[1] as JsonObject).a = 99;
    ((patch.obj as JsonObject).b as JsonValue[]).push(4);
    expect(merged).toEqual({ list: [1, { a: 2 }], obj: { b: [3] } });
  });

  it('skips properties holding undefined', () => {
    expect(mergeSection({ a: 1 }, { a: undefined, b: 2 } as unknown as JsonObject)).toEqual({ a: 1, b: 2 });
    expect(cloneJson({ a: undefined, b: [1] } as unknown as JsonObject)).toEqual({ b: [1] });
  });
});

describe('completeMetadata', () => {
  it('keeps the metadata that matches the value and stamps every leaf it misses', () => {
    const value = { a: 1, b: { c: 'x', d: [1, 2] }, e: true };
    const partial = { a: { timestamp: 5 }, b: { d: [{ timestamp: 6 }] } };
    expect(completeMetadata(value, partial, 0)).toEqual({
      a: { timestamp: 5 },
      b: { c: { timestamp: 0 }, d: [{ timestamp: 6 }, { timestamp: 0 }] },
      e: { timestamp: 0 },
    });
  });

  it('replaces metadata of the wrong shape and drops entries the value does not have', () => {
    const value = { a: { b: 1 }, c: [true] };
    const wrong = { a: { timestamp: 3 }, c: { timestamp: 4 }, gone: { timestamp: 9 } };
    expect(completeMetadata(value, wrong, 2)).toEqual({ a: { b: { timestamp: 2 } }, c: [{ timestamp: 2 }] });
  });
});
