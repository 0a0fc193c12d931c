import { describe, expect, it } from 'vitest';
import { computeDelta } from '../../src/core/delta.js';
import type { JsonObject, MetadataObject } from '../../src/core/document.js';

const t = (timestamp: number) => ({ timestamp });

describe('computeDelta (spec section 3)', () => {
  it('no desired section: no delta', () => {
    expect(computeDelta(undefined, { a: 1 })).toBeUndefined();
    expect(computeDelta(undefined, undefined)).toBeUndefined();
  });

  it('no reported section: the delta is all of desired', () => {
    const desired = { a: 1, b: { c: [1] }, d: {} };
    const delta = computeDelta(desired, undefined);
    expect(delta?.state).toEqual(desired);
    // A copy, not desired itself: a caller changing the delta does not change desired.
    expect(delta?.state).not.toBe(desired);
    expect(computeDelta({}, undefined)).toBeUndefined();
  });

  it('desired equal to reported: no delta (the service emits none)', () => {
    expect(
      computeDelta({ a: 1, b: { c: [1, { d: 2 }] } }, { b: { c: [1, { d: 2 }] }, a: 1 }),
    ).toBeUndefined();
  });

  it('iterates desired keys only: keys only in reported never appear', () => {
    expect(computeDelta({ a: 1 }, { a: 1, extra: 2, nested: { x: 1 } })).toBeUndefined();
    expect(computeDelta({ a: 1 }, { a: 2, extra: 2 })?.state).toEqual({ a: 1 });
  });

  it('desired keys absent from reported appear with their full value, empty objects included', () => {
    expect(computeDelta({ a: 1, b: { c: { d: 1 } }, e: {} }, { a: 1 })?.state).toEqual({
      b: { c: { d: 1 } },
      e: {},
    });
  });

  it('a key deleted from reported but still desired is included', () => {
    expect(computeDelta({ color: 'red', mode: 'auto' }, { mode: 'auto' })?.state).toEqual({ color: 'red' });
  });

  it('nested objects: only the differing leaves, with the full path to the root (lights/color example)', () => {
    const desired = { lights: { color: { r: 255, g: 255, b: 255 } } };
    const reported = { lights: { color: { r: 255, g: 0, b: 255 } } };
    expect(computeDelta(desired, reported)?.state).toEqual({ lights: { color: { g: 255 } } });
  });

  it('equal sub-objects are omitted', () => {
    expect(computeDelta({ a: { x: 1 }, b: { y: 1 } }, { a: { x: 1 }, b: { y: 2 } })?.state).toEqual({
      b: { y: 1 },
    });
  });

  it('a desired sub-object that is a subset of the reported one contributes nothing (subset case)', () => {
    expect(computeDelta({ a: { x: 1 } }, { a: { x: 1, y: 2 } })).toBeUndefined();
    expect(computeDelta({ a: {} }, { a: { y: 2 } })).toBeUndefined();
  });

  it('arrays are compared whole: a difference copies the entire desired array', () => {
    expect(computeDelta({ rgb: [255, 255, 0] }, { rgb: [255, 0, 0] })?.state).toEqual({ rgb: [255, 255, 0] });
    expect(computeDelta({ a: [1, 2] }, { a: [2, 1] })?.state).toEqual({ a: [1, 2] });
    expect(computeDelta({ a: [1, 2] }, { a: [1, 2, 3] })?.state).toEqual({ a: [1, 2] });
    expect(computeDelta({ a: [{ x: 1 }] }, { a: [{ x: 2 }] })?.state).toEqual({ a: [{ x: 1 }] });
  });

  it('equal arrays (ordered deep equality) contribute nothing', () => {
    expect(computeDelta({ a: [1, 'x', { y: [true] }] }, { a: [1, 'x', { y: [true] }] })).toBeUndefined();
  });

  it('a type mismatch includes the desired value', () => {
    expect(
      computeDelta({ a: 1, b: { c: 1 }, d: [1], e: 'x' }, { a: '1', b: 1, d: { 0: 1 }, e: ['x'] })?.state,
    ).toEqual({ a: 1, b: { c: 1 }, d: [1], e: 'x' });
  });

  it('the delta metadata is the desired metadata of the same leaves', () => {
    const desired: JsonObject = {
      lights: { color: { r: 255, g: 255 }, on: true },
      rgb: [1, 2],
      mode: 'auto',
    };
    const reported: JsonObject = { lights: { color: { r: 255, g: 0 }, on: true }, rgb: [1], mode: 'auto' };
    const metadata: MetadataObject = {
      lights: { color: { r: t(1), g: t(2) }, on: t(3) },
      rgb: [t(4), t(4)],
      mode: t(5),
    };
    expect(computeDelta(desired, reported, metadata)).toEqual({
      state: { lights: { color: { g: 255 } }, rgb: [1, 2] },
      metadata: { lights: { color: { g: t(2) } }, rgb: [t(4), t(4)] },
    });
  });

  it('a value taken whole takes its whole metadata subtree', () => {
    const metadata: MetadataObject = { a: { b: t(1), c: { d: t(2) } } };
    expect(computeDelta({ a: { b: 1, c: { d: 2 } } }, {}, metadata)?.metadata).toEqual(metadata);
  });

  it('metadata without the delta key is skipped and no metadata gives {}', () => {
    expect(computeDelta({ a: 1, b: 2 }, {}, { a: t(1) })?.metadata).toEqual({ a: t(1) });
    expect(computeDelta({ a: 1 }, {})?.metadata).toEqual({});
    expect(computeDelta({ constructor: 1 }, {}, {})?.metadata).toEqual({});
  });

  it('keys named like Object.prototype members and an own __proto__ key are ordinary keys', () => {
    expect(computeDelta({ constructor: 1, toString: { a: 1 } }, { a: 1 })?.state).toEqual({
      constructor: 1,
      toString: { a: 1 },
    });
    const desired = JSON.parse('{"__proto__":{"x":1}}') as JsonObject;
    const delta = computeDelta(desired, { a: 1 });
    expect(JSON.stringify(delta?.state)).toBe('{"__proto__":{"x":1}}');
    expect(computeDelta(desired, JSON.parse('{"__proto__":{"x":1}}') as JsonObject)).toBeUndefined();
    expect(
      JSON.stringify(computeDelta(desired, JSON.parse('{"__proto__":{"x":2}}') as JsonObject)?.state),
    ).toBe('{"__proto__":{"x":1}}');
  });

  it('never changes its inputs', () => {
    const desired = { a: { b: 1, c: [1] }, d: 1 };
    const reported = { a: { b: 2 } };
    const before = JSON.stringify([desired, reported]);
    computeDelta(desired, reported, { a: { b: t(1), c: [t(1)] }, d: t(1) });
    expect(JSON.stringify([desired, reported])).toBe(before);
  });
});
