import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeRequestPayload } from '../../src/core/decode-payload.js';
import {
  REQUEST_REJECTION_MESSAGES,
  readClientToken,
  validateUpdateRequest,
} from '../../src/core/validate-request.js';

function message(request: unknown, limits?: { maxDepth: number; maxClientTokenBytes: number }) {
  const result = validateUpdateRequest(request, limits);
  return result.ok ? 'ok' : result.rejection.message;
}

describe('validateUpdateRequest', () => {
  it('returns the typed request with only the fields that were present', () => {
    expect(validateUpdateRequest({ state: { desired: { a: 1 } } })).toEqual({
      ok: true,
      request: { state: { desired: { a: 1 } } },
    });
    expect(
      validateUpdateRequest({ state: { reported: null }, version: 0, clientToken: '', extra: 1 }),
    ).toEqual({
      ok: true,
      request: { state: { reported: null }, version: 0, clientToken: '' },
    });
    expect(validateUpdateRequest({ state: null, version: 12 })).toEqual({
      ok: true,
      request: { state: null, version: 12 },
    });
  });

  it('[choice] answers Invalid JSON for JSON that is not an object (array, number, string, boolean, null)', () => {
    for (const request of [[], [{ state: {} }], 3, 'state', true, null]) {
      expect(validateUpdateRequest(request)).toEqual({
        ok: false,
        rejection: { code: 400, message: 'Invalid JSON', errorType: 'InvalidRequestException' },
      });
    }
  });

  it('treats properties holding undefined as absent (JavaScript callers)', () => {
    expect(message({ state: undefined })).toBe('Missing required node: state');
    expect(
      validateUpdateRequest({ state: { desired: undefined, delta: undefined }, version: undefined }),
    ).toEqual({
      ok: true,
      request: { state: {} },
    });
  });

  it('rejects values JSON cannot carry with Invalid JSON', () => {
    const bad: unknown[] = [
      [1, undefined],
      new Array<unknown>(3),
      Number.NaN,
      Number.POSITIVE_INFINITY,
      () => 1,
      new Date(0),
      new Map(),
      10n,
    ];
    for (const value of bad) {
      expect(message({ state: { desired: { value } } }), String(value)).toBe('Invalid JSON');
    }
    expect(message({ state: { desired: new Date(0) } })).toBe('Desired node must be an object');
    expect(message({ state: { desired: { a: { b: undefined } } } })).toBe('ok');
  });

  it('accepts objects without a prototype (Object.create(null), JSON.parse with __proto__ keys)', () => {
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, {
      state: { reported: { a: 1 } },
    });
    expect(message(bare)).toBe('ok');
    const parsed: unknown = JSON.parse('{"state":{"reported":{"__proto__":{"x":1}}}}');
    expect(message(parsed)).toBe('ok');
  });

  it('checks depth against the limit passed in, in the spec order (arrays with null before depth)', () => {
    const limits = { maxDepth: 2, maxClientTokenBytes: 64 };
    expect(message({ state: { desired: { a: { b: 1 } } } }, limits)).toBe('ok');
    expect(message({ state: { desired: { a: { b: {} } } } }, limits)).toBe(
      REQUEST_REJECTION_MESSAGES.tooDeep(2),
    );
    expect(message({ state: { desired: { a: [1] }, reported: { a: [[1]] } } }, limits)).toBe(
      'JSON contains too many levels of nesting; maximum is 2',
    );
    expect(message({ state: { desired: { a: { b: [1] } }, reported: { c: [null] } } }, limits)).toBe(
      REQUEST_REJECTION_MESSAGES.arrayWithNull,
    );
  });

  it('survives a hostile, very deeply nested payload without overflowing the stack', () => {
    const text = `{"state":{"desired":{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}}}`;
    const decoded = decodeRequestPayload(text);
    expect(decoded.ok).toBe(true);
    expect(decoded.ok && message(decoded.value)).toBe(
      'JSON contains too many levels of nesting; maximum is 6',
    );
  });

  it('reports the first invalid node of state in key order', () => {
    expect(message({ state: { desired: {}, metadata: {}, delta: {} } })).toBe(
      "State contains an invalid node: 'metadata'",
    );
  });

  it('counts clientToken length in UTF-8 bytes against the configured limit', () => {
    const limits = { maxDepth: 6, maxClientTokenBytes: 4 };
    expect(message({ state: {}, clientToken: 'abcd' }, limits)).toBe('ok');
    expect(message({ state: {}, clientToken: 'abé' }, limits)).toBe('ok');
    expect(message({ state: {}, clientToken: 'abcé' }, limits)).toBe('Invalid clientToken');
    expect(message({ state: {}, clientToken: '😀' }, limits)).toBe('ok');
    expect(message({ state: {}, clientToken: null }, limits)).toBe('Invalid clientToken');
  });

  it('echoes a readable clientToken in every rejection and never an invalid one', () => {
    const result = validateUpdateRequest({ clientToken: 'abc' });
    expect(!result.ok && result.rejection.clientToken).toBe('abc');
    const long = validateUpdateRequest({ clientToken: 'x'.repeat(65) });
    expect(!long.ok && 'clientToken' in long.rejection).toBe(false);
  });

  it('accepts exactly the integers 0 .. 2^53 - 1 as version', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: -10, max: 10 }), fc.double(), fc.maxSafeInteger(), fc.string()),
        (version) => {
          const valid = typeof version === 'number' && Number.isSafeInteger(version) && version >= 0;
          expect(message({ state: {}, version })).toBe(valid ? 'ok' : 'Invalid version');
        },
      ),
    );
  });

  it('accepts every JSON object section without nulls in arrays within the depth limit, and returns it unchanged', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 })), (section) => {
        const hasNullInArray = JSON.stringify(section).includes('null') && containsNullInArray(section);
        const result = validateUpdateRequest({ state: { reported: section } });
        if (hasNullInArray) expect(result.ok).toBe(false);
        else expect(result.ok && result.request.state?.reported).toBe(section);
      }),
    );
  });
});

function containsNullInArray(value: unknown): boolean {
  if (Array.isArray(value)) return value.some((element) => element === null || containsNullInArray(element));
  if (typeof value === 'object' && value !== null) return Object.values(value).some(containsNullInArray);
  return false;
}

describe('readClientToken', () => {
  it('reads a valid token from any object payload, nothing otherwise', () => {
    expect(readClientToken({ clientToken: 'abc' })).toBe('abc');
    expect(readClientToken({ clientToken: 'x'.repeat(65) })).toBeUndefined();
    expect(readClientToken({ clientToken: 'x'.repeat(65) }, 100)).toBe('x'.repeat(65));
    expect(readClientToken({ clientToken: 5 })).toBeUndefined();
    expect(readClientToken([{ clientToken: 'a' }])).toBeUndefined();
    expect(readClientToken(null)).toBeUndefined();
    expect(readClientToken('abc')).toBeUndefined();
  });
});

describe('decodeRequestPayload', () => {
  const encode = (text: string) => new TextEncoder().encode(text);

  it('parses UTF-8 bytes and strings, dropping a byte order mark', () => {
    expect(decodeRequestPayload(encode('{"state":{"reported":{"t":"°C"}}}'))).toEqual({
      ok: true,
      value: { state: { reported: { t: '°C' } } },
    });
    expect(decodeRequestPayload(new Uint8Array([0xef, 0xbb, 0xbf, ...encode('{"state":null}')]))).toEqual({
      ok: true,
      value: { state: null },
    });
    expect(decodeRequestPayload('[1]')).toEqual({ ok: true, value: [1] });
  });

  it('answers 400 Invalid JSON for empty, blank and malformed payloads', () => {
    for (const payload of ['', '   ', '{', "{'a':1}", '{"a":1}x', encode(''), encode('\n')]) {
      const result = decodeRequestPayload(payload);
      expect(!result.ok && result.rejection).toEqual({
        code: 400,
        message: 'Invalid JSON',
        errorType: 'InvalidRequestException',
      });
    }
  });

  it('answers 415 for invalid UTF-8 (overlong, truncated, lone continuation, surrogate) and lone surrogates in strings', () => {
    const bad = [[0xc0, 0xaf], [0xe2, 0x82], [0x80], [0xed, 0xa0, 0x80], [0x22, 0xff, 0x22]];
    for (const bytes of bad) {
      const result = decodeRequestPayload(new Uint8Array(bytes));
      expect(!result.ok && result.rejection.code, bytes.join(',')).toBe(415);
    }
    const lone = decodeRequestPayload('{"a":"\uD800"}');
    expect(!lone.ok && result415(lone.rejection)).toBe(true);
    expect(decodeRequestPayload('{"a":"😀"}').ok).toBe(true);
  });

  it('round-trips any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const result = decodeRequestPayload(encode(JSON.stringify(value)));
        expect(result.ok && JSON.stringify(result.value)).toBe(JSON.stringify(value));
      }),
    );
  });
});

function result415(rejection: { code: number; errorType: string; message: string }): boolean {
  return (
    rejection.code === 415 &&
    rejection.errorType === 'UnsupportedDocumentEncodingException' &&
    rejection.message === 'Unsupported documented encoding; supported encoding is UTF-8'
  );
}
