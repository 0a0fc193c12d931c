import { describe, expect, it } from 'vitest';
import { diffSection, diffState } from '../../src/core/diff.js';
import type { JsonObject, ShadowState } from '../../src/core/document.js';
import { mergeSection } from '../../src/core/merge.js';

/** Asserts the expected update and that the service's merge of it into `from` really gives `to`. */
function expectDiff(from: JsonObject | undefined, to: JsonObject | undefined, expected: unknown): void {
  const update = diffSection(from, to);
  expect(update).toEqual(expected);
  const merged = update === undefined ? from : mergeSection(from, update);
  const empty = (section: JsonObject | undefined) =>
    section === undefined || Object.keys(section).length === 0;
  if (empty(to)) expect(empty(merged)).toBe(true);
  else expect(merged).toEqual(to);
}

describe('diffSection', () => {
  describe('equal sections need no update', () => {
    it('returns undefined for the same object', () => {
      const section = { a: 1, b: { c: [1, 2] } };
      expectDiff(section, section, undefined);
    });
    it('returns undefined for deep-equal copies, arrays of objects included', () => {
      expectDiff(
        { a: 1, b: { c: [1, { d: 'x' }] }, e: {} },
        { e: {}, b: { c: [1, { d: 'x' }] }, a: 1 },
        undefined,
      );
    });
    it('treats undefined and {} as the same section', () => {
      expectDiff(undefined, undefined, undefined);
      expectDiff({}, undefined, undefined);
      expectDiff(undefined, {}, undefined);
    });
  });

  describe('null deletes a key', () => {
    it('sends null for every removed key', () => {
      expectDiff({ a: 1, b: 2, c: 3 }, { b: 2 }, { a: null, c: null });
    });
    it('sends null for a removed key nested in an object', () => {
      expectDiff({ fan: { speed: 2, swing: true } }, { fan: { speed: 2 } }, { fan: { swing: null } });
    });
  });

  describe('a section that must disappear entirely is null', () => {
    it('answers null when the target section is absent', () => {
      expectDiff({ a: 1 }, undefined, null);
    });
    it('answers null when the target section is empty', () => {
      expectDiff({ a: { b: 1 } }, {}, null);
    });
    it('sends the whole target when the stored section is absent or empty', () => {
      const to = { a: 1, b: { c: {} } };
      expectDiff(undefined, to, to);
      expectDiff({}, to, to);
    });
  });

  describe('scalars replace', () => {
    it('sends only the changed keys', () => {
      expectDiff({ a: 1, b: 'x', c: true }, { a: 2, b: 'x', c: false }, { a: 2, c: false });
    });
    it('sends added keys', () => {
      expectDiff({ a: 1 }, { a: 1, b: 'new' }, { b: 'new' });
    });
    it('replaces on a type change between scalars', () => {
      expectDiff({ a: 1, b: true }, { a: '1', b: 0 }, { a: '1', b: 0 });
    });
  });

  describe('object into object merges recursively', () => {
    it('sends only the changed leaves, with their path', () => {
      expectDiff(
        { lights: { color: { r: 255, g: 0, b: 255 }, on: true }, mode: 'auto' },
        { lights: { color: { r: 255, g: 255, b: 255 }, on: true }, mode: 'auto' },
        { lights: { color: { g: 255 } } },
      );
    });
    it('omits equal nested objects', () => {
      expectDiff({ a: { x: 1 }, b: { y: 2 } }, { a: { x: 1 }, b: { y: 3 } }, { b: { y: 3 } });
    });
    it('adds keys to an existing nested object without repeating the others', () => {
      expectDiff({ a: { x: 1 } }, { a: { x: 1, y: 2 } }, { a: { y: 2 } });
    });
  });

  describe('object onto a non-object or absent key replaces', () => {
    it('sends the whole object over a scalar', () => {
      expectDiff({ c: 3 }, { c: { d: 3 } }, { c: { d: 3 } });
    });
    it('sends the whole object over an array', () => {
      expectDiff({ c: [1, 2] }, { c: { d: [1, 2] } }, { c: { d: [1, 2] } });
    });
    it('sends the whole object for a new key', () => {
      expectDiff({ a: 1 }, { a: 1, c: { d: { e: 1 } } }, { c: { d: { e: 1 } } });
    });
    it('sends a scalar over an object', () => {
      expectDiff({ c: { d: 3 } }, { c: 3 }, { c: 3 });
    });
  });

  describe('empty objects are values', () => {
    it('sends {} for a new empty object', () => {
      expectDiff({ a: 1 }, { a: 1, d: {} }, { d: {} });
    });
    it('sends {} over a scalar', () => {
      expectDiff({ c: 3 }, { c: {} }, { c: {} });
    });
    it('empties a non-empty object with a null per key, since {} merged into it changes nothing', () => {
      expectDiff({ c: { x: 1, y: { z: 2 } } }, { c: {} }, { c: { x: null, y: null } });
      expect(mergeSection({ c: { x: 1 } }, { c: {} })).toEqual({ c: { x: 1 } });
    });
    it('keeps a nested object that loses its last key as {}', () => {
      expectDiff({ a: 1, c: { x: { y: 1 } } }, { a: 1, c: { x: {} } }, { c: { x: { y: null } } });
    });
    it('fills an empty nested object with its new keys', () => {
      expectDiff({ c: {} }, { c: { x: 1 } }, { c: { x: 1 } });
    });
  });

  describe('arrays are atomic values', () => {
    it('sends the whole array when an element changes', () => {
      expectDiff({ colors: ['RED', 'GREEN', 'BLUE'] }, { colors: ['RED'] }, { colors: ['RED'] });
      expectDiff({ rgb: [255, 0, 255] }, { rgb: [255, 255, 255] }, { rgb: [255, 255, 255] });
    });
    it('sends the whole array when only the order changes', () => {
      expectDiff({ a: [1, 2] }, { a: [2, 1] }, { a: [2, 1] });
    });
    it('sends the whole array when an object inside it changes', () => {
      expectDiff(
        { slots: [{ at: 1, on: true }] },
        { slots: [{ at: 1, on: false }] },
        { slots: [{ at: 1, on: false }] },
      );
    });
    it('sends an array over an object and an empty array over a full one', () => {
      expectDiff({ a: { x: 1 }, b: [1] }, { a: [1], b: [] }, { a: [1], b: [] });
    });
  });

  describe('keys that plain objects inherit', () => {
    it('handles keys named like Object.prototype members', () => {
      expectDiff({ a: 1 }, { a: 1, constructor: 1, toString: 'x' }, { constructor: 1, toString: 'x' });
      expectDiff(
        { a: 1, constructor: { x: 1 } },
        { constructor: { x: 2 } },
        { a: null, constructor: { x: 2 } },
      );
      expectDiff({ a: 1, valueOf: 1 }, { a: 1 }, { valueOf: null });
    });
    it('handles an own __proto__ key as any other key', () => {
      const from = JSON.parse('{"a":1,"__proto__":{"x":1}}') as JsonObject;
      const to = JSON.parse('{"a":1,"__proto__":{"x":2}}') as JsonObject;
      const update = diffSection(from, to) as JsonObject;
      expect(Object.keys(update)).toEqual(['__proto__']);
      expect(JSON.stringify(update)).toBe('{"__proto__":{"x":2}}');
      expect(Object.getPrototypeOf(update)).toBe(Object.prototype);
      expect(JSON.stringify(diffSection({ a: 1 }, to))).toBe('{"__proto__":{"x":2}}');
      expect(JSON.stringify(diffSection(to, { a: 1 }))).toBe('{"__proto__":null}');
      expect(diffSection(to, JSON.parse('{"a":1,"__proto__":{"x":2}}') as JsonObject)).toBeUndefined();
    });
  });

  it('never changes its inputs', () => {
    const from = { a: 1, b: { c: [1, 2], d: { e: 1 } } };
    const to = { b: { c: [1], d: {} }, f: 'x' };
    const before = JSON.stringify([from, to]);
    diffSection(from, to);
    expect(JSON.stringify([from, to])).toBe(before);
  });
});

describe('diffState', () => {
  it('returns undefined when both states are equal or both are empty', () => {
    const state: ShadowState = { desired: { a: 1 }, reported: { a: 1, b: [1] } };
    expect(diffState(state, structuredClone(state))).toBeUndefined();
    expect(diffState(undefined, undefined)).toBeUndefined();
    expect(diffState({}, { desired: {} })).toBeUndefined();
  });
  it('keeps only the sections that change', () => {
    expect(
      diffState({ desired: { a: 1 }, reported: { a: 1 } }, { desired: { a: 2 }, reported: { a: 1 } }),
    ).toEqual({
      desired: { a: 2 },
    });
    expect(
      diffState({ desired: { a: 1 }, reported: { a: 1 } }, { desired: { a: 1 }, reported: { a: 2 } }),
    ).toEqual({
      reported: { a: 2 },
    });
  });
  it('diffs both sections in one update', () => {
    expect(diffState({ desired: { a: 1 } }, { desired: { b: 1 }, reported: { c: [1] } })).toEqual({
      desired: { a: null, b: 1 },
      reported: { c: [1] },
    });
  });
  it('removes a section with null and creates one whole', () => {
    expect(diffState({ desired: { a: 1 }, reported: { b: 1 } }, { reported: { b: 1 } })).toEqual({
      desired: null,
    });
    expect(diffState(undefined, { desired: { a: { b: 1 } } })).toEqual({ desired: { a: { b: 1 } } });
    expect(diffState({ desired: { a: 1 }, reported: { b: 1 } }, undefined)).toEqual({
      desired: null,
      reported: null,
    });
  });
});
