import { describe, expect, it } from 'vitest';
import type { ShadowState } from '../../src/core/document.js';
import { applyJsonPatch, type JsonPatchOperation, toJsonPatch } from '../../src/core/json-patch.js';
import { isShadowValidationError, type ShadowValidationError } from '../../src/errors.js';

function failure(state: ShadowState, operations: unknown): ShadowValidationError {
  try {
    applyJsonPatch(state, operations as JsonPatchOperation[]);
  } catch (error) {
    expect(isShadowValidationError(error)).toBe(true);
    return error as ShadowValidationError;
  }
  throw new Error('applyJsonPatch did not throw');
}

describe('toJsonPatch', () => {
  it('describes changes of whole states as RFC 6902 operations', () => {
    const from: ShadowState = { desired: { power: 'off', fan: { speed: 1 } }, reported: { power: 'off' } };
    const to: ShadowState = { desired: { power: 'on', fan: { speed: 1, swing: true } } };
    const operations = toJsonPatch(from, to);
    expect(operations).toEqual(
      expect.arrayContaining([
        { op: 'remove', path: '/reported' },
        { op: 'replace', path: '/desired/power', value: 'on' },
        { op: 'add', path: '/desired/fan/swing', value: true },
      ]),
    );
    expect(operations).toHaveLength(3);
  });

  it('works on single sections, undefined being {}', () => {
    expect(toJsonPatch({ a: 1 }, { a: 1 })).toEqual([]);
    expect(toJsonPatch(undefined, { a: 1 })).toEqual([{ op: 'add', path: '/a', value: 1 }]);
    expect(toJsonPatch({ a: 1 }, undefined)).toEqual([{ op: 'remove', path: '/a' }]);
  });

  it('escapes keys as JSON Pointer requires', () => {
    expect(toJsonPatch({ 'a/b': 1, 'c~d': 1 }, { 'a/b': 2, 'c~d': 2 })).toEqual([
      { op: 'replace', path: '/c~0d', value: 2 },
      { op: 'replace', path: '/a~1b', value: 2 },
    ]);
  });

  it('copies values, so changing `to` later does not change the operations', () => {
    const to = { a: { b: 1 } };
    const [operation] = toJsonPatch({}, to);
    to.a.b = 2;
    expect(operation).toEqual({ op: 'add', path: '/a', value: { b: 1 } });
  });
});

describe('applyJsonPatch', () => {
  const state: ShadowState = { desired: { power: 'off', rgb: [1, 2, 3] }, reported: { power: 'off' } };

  it('applies every RFC 6902 operation and returns a new state', () => {
    const before = structuredClone(state);
    const next = applyJsonPatch(state, [
      { op: 'test', path: '/desired/power', value: 'off' },
      { op: 'replace', path: '/desired/power', value: 'on' },
      { op: 'add', path: '/desired/rgb/-', value: 4 },
      { op: 'remove', path: '/desired/rgb/0' },
      { op: 'copy', from: '/desired/rgb', path: '/reported/rgb' },
      { op: 'move', from: '/reported/power', path: '/reported/lastPower' },
      { op: 'add', path: '/reported/fan', value: { speed: 1 } },
    ]);
    expect(next).toEqual({
      desired: { power: 'on', rgb: [2, 3, 4] },
      reported: { rgb: [2, 3, 4], lastPower: 'off', fan: { speed: 1 } },
    });
    expect(state).toEqual(before);
  });

  it('never lets the result alias the operations', () => {
    const value = { speed: 1 };
    const next = applyJsonPatch({}, [{ op: 'add', path: '/desired', value: { fan: value } }]);
    value.speed = 2;
    expect(next).toEqual({ desired: { fan: { speed: 1 } } });
  });

  it('drops sections left empty, as the service never stores them', () => {
    expect(applyJsonPatch(state, [{ op: 'remove', path: '/reported/power' }])).toEqual({
      desired: state.desired,
    });
    expect(applyJsonPatch({}, [])).toEqual({});
  });

  it('names the index and path of an operation whose path does not exist', () => {
    const error = failure(state, [
      { op: 'replace', path: '/desired/power', value: 'on' },
      { op: 'remove', path: '/desired/missing' },
    ]);
    expect(error.message).toMatch(/^JSON Patch operation 1 at path '\/desired\/missing': /);
    expect(error.message).toContain('OPERATION_PATH_UNRESOLVABLE');
    expect(error.issues).toEqual([{ path: ['desired', 'missing'], message: expect.any(String) }]);
    expect(error.cause).toBeDefined();
  });

  it('rejects a failed test operation', () => {
    const error = failure(state, [{ op: 'test', path: '/desired/power', value: 'on' }]);
    expect(error.message).toContain('operation 0');
    expect(error.message).toContain('TEST_OPERATION_FAILED');
  });

  it('rejects malformed operations', () => {
    expect(failure(state, [{ op: 'merge', path: '/desired' }]).message).toMatch(
      /operation 0 at path '\/desired': `op` "merge" is not an RFC 6902 operation/,
    );
    expect(failure(state, [{ op: '_get', path: '/desired' }]).message).toContain('not an RFC 6902 operation');
    expect(failure(state, [{ op: 'add', path: 'desired', value: 1 }]).message).toContain(
      'must start with "/"',
    );
    expect(failure(state, [{ op: 'add', path: '/desired/x' }]).message).toContain('OPERATION_VALUE_REQUIRED');
    expect(failure(state, [{ op: 'copy', path: '/desired/x' }]).message).toContain('OPERATION_FROM_REQUIRED');
    expect(failure(state, [{ op: 'move', from: '/nope', path: '/desired/x' }]).message).toContain(
      'OPERATION_FROM_UNRESOLVABLE',
    );
    expect(failure(state, [{ op: 'add', path: '/desired/rgb/9', value: 1 }]).message).toContain(
      'OPERATION_VALUE_OUT_OF_BOUNDS',
    );
    expect(failure(state, [42]).message).toBe('JSON Patch operation 0: not an object');
    expect(failure(state, 'nope').message).toBe('JSON Patch must be an array of operations');
  });

  it('rejects results that are not shadow states, naming the operation and the offending path', () => {
    const nullValue = failure(state, [{ op: 'add', path: '/desired/fan', value: { speed: null } }]);
    expect(nullValue.message).toMatch(
      /^JSON Patch operation 0 at path '\/desired\/fan': leaves an invalid shadow state/,
    );
    expect(nullValue.issues).toEqual([
      { path: ['desired', 'fan', 'speed'], message: expect.stringContaining('null') },
    ]);
    expect(failure(state, [{ op: 'add', path: '/desired/rgb/0', value: null }]).issues[0]?.path).toEqual([
      'desired',
      'rgb',
      0,
    ]);
    expect(failure(state, [{ op: 'add', path: '/delta', value: {} }]).message).toContain(
      "'delta' is not a section",
    );
    expect(failure(state, [{ op: 'replace', path: '/desired', value: [1] }]).message).toContain(
      "section 'desired' must be an object",
    );
    expect(failure(state, [{ op: 'replace', path: '', value: 1 }]).message).toContain(
      'the state must be an object',
    );
  });

  it('refuses to address __proto__', () => {
    const error = failure(state, [{ op: 'add', path: '/desired/__proto__/polluted', value: 1 }]);
    expect(error.message).toContain('prototype pollution guard');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('round-trips toJsonPatch output', () => {
    const to: ShadowState = { desired: { power: 'on', rgb: [3] }, reported: { fan: { speed: 2 } } };
    expect(applyJsonPatch(state, toJsonPatch(state, to))).toEqual(to);
  });
});
