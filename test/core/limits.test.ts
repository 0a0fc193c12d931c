import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkShadowName,
  checkTarget,
  checkThingName,
  DEFAULT_LIMITS,
  nestingDepth,
  resolveLimits,
  stateBytes,
  utf8ByteLength,
} from '../../src/core/limits.js';
import { isShadowError, ShadowOptionsError } from '../../src/errors.js';

describe('resolveLimits', () => {
  it('returns the frozen defaults when nothing is overridden', () => {
    expect(resolveLimits()).toBe(DEFAULT_LIMITS);
    expect(resolveLimits({})).toBe(DEFAULT_LIMITS);
    expect(resolveLimits({ maxDepth: undefined } as never)).toBe(DEFAULT_LIMITS);
    expect(Object.isFrozen(DEFAULT_LIMITS)).toBe(true);
  });

  it('fills missing limits from the defaults and freezes the result', () => {
    const limits = resolveLimits({ maxStateBytes: 30_720, maxDepth: 8 });
    expect(limits).toEqual({ ...DEFAULT_LIMITS, maxStateBytes: 30_720, maxDepth: 8 });
    expect(Object.isFrozen(limits)).toBe(true);
  });

  it('allows a retention of 0 (forget deleted versions at once) but no other zero', () => {
    expect(resolveLimits({ deletedVersionRetentionMs: 0 }).deletedVersionRetentionMs).toBe(0);
    expect(() => resolveLimits({ maxDepth: 0 })).toThrow(
      "Shadow limit 'maxDepth' must be an integer >= 1, got 0",
    );
  });

  it('rejects unknown keys naming the key and the known ones', () => {
    expect(() => resolveLimits({ maxSize: 1 } as never)).toThrow(
      "Unknown shadow limit 'maxSize'; known limits: maxStateBytes, maxDepth, maxClientTokenBytes",
    );
  });

  it('rejects values that are not positive safe integers with ShadowOptionsError', () => {
    for (const value of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '10', null, 2 ** 53]) {
      let caught: unknown;
      try {
        resolveLimits({ maxStateBytes: value as number });
      } catch (error) {
        caught = error;
      }
      expect(caught, String(value)).toBeInstanceOf(ShadowOptionsError);
      expect(isShadowError(caught) && caught.code).toBe('OPTIONS');
      expect((caught as Error).message).toContain("'maxStateBytes'");
    }
  });

  it('rejects a limits value that is not an object', () => {
    expect(() => resolveLimits(5 as never)).toThrow('Shadow limits must be an object, got 5');
    expect(() => resolveLimits(null as never)).toThrow('got null');
    expect(() => resolveLimits([] as never)).toThrow('got an array');
    expect(() => resolveLimits('x' as never)).toThrow('got "x"');
  });
});

describe('name checks', () => {
  it('accepts valid thing and shadow names up to their lengths', () => {
    expect(checkThingName('My_IoT-Thing:01')).toBeUndefined();
    expect(checkThingName('t'.repeat(128))).toBeUndefined();
    expect(checkShadowName('$config')).toBeUndefined();
    expect(checkShadowName('s'.repeat(64))).toBeUndefined();
    expect(checkTarget({ thingName: 'lamp', shadowName: 'cfg' })).toBeUndefined();
  });

  it('lists every failed constraint in AWS validation style', () => {
    expect(checkThingName(`${'a'.repeat(128)}/`)).toEqual({
      code: 400,
      errorType: 'InvalidRequestException',
      message: `2 validation errors detected: Value '${'a'.repeat(128)}/' at 'thingName' failed to satisfy constraint: Member must have length less than or equal to 128; Value '${'a'.repeat(128)}/' at 'thingName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9:_-]+`,
    });
    expect(checkThingName('')?.message).toBe(
      "1 validation error detected: Value '' at 'thingName' failed to satisfy constraint: Member must have length greater than or equal to 1",
    );
  });

  it('rejects $ in thing names but allows it in shadow names; uses configured lengths', () => {
    expect(checkThingName('$lamp')?.message).toMatch(/regular expression pattern: \[a-zA-Z0-9:_-\]\+$/);
    expect(checkShadowName('$lamp')).toBeUndefined();
    expect(checkShadowName('é')?.message).toMatch(/pattern: \[\$a-zA-Z0-9:_-\]\+$/);
    expect(checkThingName('abc', { maxThingNameLength: 2 })?.message).toMatch(/less than or equal to 2/);
    expect(checkShadowName('abc', { maxShadowNameLength: 3 })).toBeUndefined();
  });

  it('checkTarget checks the thing name first, then the shadow name', () => {
    expect(checkTarget({ thingName: 'a b', shadowName: 'c d' })?.message).toMatch(/'thingName'/);
    expect(checkTarget({ thingName: 'ab', shadowName: 'c d' })?.message).toMatch(/'shadowName'/);
  });

  it('rejects a name that is not a string (JavaScript callers)', () => {
    expect(checkThingName(undefined as never)?.message).toBe(
      "1 validation error detected: Value at 'thingName' failed to satisfy constraint: Member must not be null",
    );
  });
});

describe('utf8ByteLength', () => {
  it('matches TextEncoder for every string, lone surrogates included', () => {
    const encoder = new TextEncoder();
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        expect(utf8ByteLength(text)).toBe(encoder.encode(text).length);
      }),
    );
    for (const text of ['\uD800', '\uDC00', 'a\uD800b', '\uD83D\uDE00', '\uD83D']) {
      expect(utf8ByteLength(text), escape(text)).toBe(encoder.encode(text).length);
    }
  });
});

describe('stateBytes', () => {
  it('sums the compact UTF-8 JSON of desired and reported; absent sections count 0', () => {
    expect(stateBytes({})).toBe(0);
    expect(stateBytes({ desired: { a: 1 } })).toBe(7);
    expect(stateBytes({ desired: { a: 1 }, reported: { t: '°' } })).toBe(7 + 10);
  });
});

describe('nestingDepth', () => {
  it('counts the section as level 1, every object or array as one more, scalar leaves as none', () => {
    expect(nestingDepth({})).toBe(1);
    expect(nestingDepth({ a: 1 })).toBe(1);
    expect(nestingDepth({ a: { b: 1 } })).toBe(2);
    expect(nestingDepth({ a: [1, 2] })).toBe(2);
    expect(nestingDepth({ a: [{ b: [1] }], c: 1 })).toBe(4);
    expect(nestingDepth(5)).toBe(0);
    expect(nestingDepth(null)).toBe(0);
    expect(nestingDepth([])).toBe(1);
  });
});

describe('resolveLimits reuse', () => {
  it('returns an already resolved set of limits as is', () => {
    const resolved = resolveLimits({ maxDepth: 8 });
    expect(resolveLimits(resolved)).toBe(resolved);
    expect(resolveLimits({ ...resolved })).not.toBe(resolved);
    expect(resolveLimits({ ...resolved })).toEqual(resolved);
  });
});
