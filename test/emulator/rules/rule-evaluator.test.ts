import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JsonValue } from '../../../src/core/document.js';
import {
  decodeRulePayload,
  evaluateRuleExpression,
  RuleEvaluationError,
  type RuleMessageContext,
  renderRuleValue,
  ruleMatches,
  selectRuleResult,
} from '../../../src/emulator/rules/rule-evaluator.js';
import { parseRuleExpression, parseRuleSql } from '../../../src/emulator/rules/rule-sql.js';

function message(
  payload: unknown,
  topic = '$aws/things/ac-7/shadow/update',
  clientId?: string,
): RuleMessageContext {
  const bytes =
    payload instanceof Uint8Array
      ? payload
      : Buffer.from(payload === undefined ? '' : JSON.stringify(payload));
  return { topic, payload: decodeRulePayload(bytes), clientId, timestamp: 1_700_000_000_123 };
}

const value = (expression: string, context: RuleMessageContext) =>
  evaluateRuleExpression(parseRuleExpression(expression), context);

const where = (predicate: string, context: RuleMessageContext) =>
  ruleMatches(parseRuleSql(`SELECT * FROM '#' WHERE ${predicate}`), context);

describe('rule evaluator: values and functions', () => {
  const context = message(
    { state: { reported: { mode: 'cool', t: 21.5, list: [1, 2] } }, foo: null },
    'a/b/c',
    'dev-1',
  );

  it('reads nested fields; a missing field is Undefined, a null field is null', () => {
    expect(value('state.reported.mode', context)).toBe('cool');
    expect(value('state.reported.list', context)).toEqual([1, 2]);
    expect(value('foo', context)).toBeNull();
    expect(value('bar', context)).toBeUndefined();
    expect(value('state.reported.mode.x', context)).toBeUndefined();
    expect(value('state.reported.list.length', context)).toBeUndefined();
  });

  it('never reads inherited properties', () => {
    expect(value('constructor', context)).toBeUndefined();
    expect(value('state.toString', context)).toBeUndefined();
    expect(value('__proto__', context)).toBeUndefined();
  });

  it('evaluates topic(n), topic(), clientid(), timestamp()', () => {
    expect(value('topic(1)', context)).toBe('a');
    expect(value('topic(3)', context)).toBe('c');
    expect(value('topic(4)', context)).toBeUndefined();
    expect(value('topic()', context)).toBe('a/b/c');
    expect(value('clientid()', context)).toBe('dev-1');
    expect(value('clientid()', message({}, 't'))).toBe('n/a');
    expect(value('timestamp()', context)).toBe(1_700_000_000_123);
  });

  it('renders substitution values: strings bare, JSON otherwise, Undefined as empty', () => {
    expect(renderRuleValue('x')).toBe('x');
    expect(renderRuleValue(3)).toBe('3');
    expect(renderRuleValue(true)).toBe('true');
    expect(renderRuleValue({ a: 1 })).toBe('{"a":1}');
    expect(renderRuleValue(null)).toBe('null');
    expect(renderRuleValue(undefined)).toBe('');
  });
});

describe('rule evaluator: WHERE with AWS Undefined semantics', () => {
  it("matches the seed's predicate only when the flag is true", () => {
    const predicate = 'state.reported.someIllegalState = True';
    expect(where(predicate, message({ state: { reported: { someIllegalState: true } } }))).toBe(true);
    expect(where(predicate, message({ state: { reported: { someIllegalState: false } } }))).toBe(false);
    expect(where(predicate, message({ state: { reported: { power: 'on' } } }))).toBe(false);
    expect(where(predicate, message({ state: { reported: { someIllegalState: 'true' } } }))).toBe(false);
    expect(where(predicate, message(Buffer.from('not json')))).toBe(false);
    expect(where(predicate, message(undefined))).toBe(false);
  });

  it('a comparison with an Undefined operand is Undefined, and so is its negation', () => {
    const context = message({ a: 1 });
    for (const predicate of [
      'missing = 1',
      'missing <> 1',
      'missing < 1',
      'NOT missing = 1',
      'NOT missing <> 1',
    ])
      expect(where(predicate, context), predicate).toBe(false);
    expect(value('missing = 1', context)).toBeUndefined();
    expect(value('NOT (missing = 1)', context)).toBeUndefined();
  });

  it('AND / OR accept Booleans and "true"/"false" strings; anything else is Undefined', () => {
    const context = message({ s: 'TRUE', f: 'false', n: 1 });
    expect(value('s AND true', context)).toBe(true);
    expect(value('f OR false', context)).toBe(false);
    expect(value('NOT s', context)).toBe(false);
    expect(value('n AND true', context)).toBeUndefined();
    expect(value('missing OR true', context)).toBeUndefined();
    expect(value('false AND missing', context)).toBeUndefined();
  });

  it('orders numbers and numeric strings; other types are Undefined', () => {
    const context = message({ t: 30, s: '31.5', word: 'hot', b: true });
    expect(value('t < s', context)).toBe(true);
    expect(value('s >= 31.5', context)).toBe(true);
    expect(value('t > word', context)).toBeUndefined();
    expect(value('b > 0', context)).toBeUndefined();
  });

  it('= compares same-typed values structurally; mixed types are Undefined', () => {
    const context = message({ o: { x: [1, { y: 2 }] }, p: { x: [1, { y: 2 }] }, z: null, n: 2 });
    expect(value('o = p', context)).toBe(true);
    expect(value('o <> p', context)).toBe(false);
    expect(value('z = NULL', context)).toBe(true);
    expect(value('n = 2.0', context)).toBe(true);
    expect(value("n = '2'", context)).toBeUndefined();
    expect(value('n = true', context)).toBeUndefined();
  });
});

describe('rule evaluator: SELECT', () => {
  it("adds topic(3) as device_id to the payload, as the seed's rule does", () => {
    const payload = { state: { reported: { someIllegalState: true } }, clientToken: 'c1' };
    const ast = parseRuleSql(
      "SELECT *, topic(3) as device_id FROM '$aws/things/+/shadow/update' WHERE state.reported.someIllegalState = True",
    );
    expect(selectRuleResult(ast, message(payload))).toEqual({
      kind: 'json',
      value: { ...payload, device_id: 'ac-7' },
    });
  });

  it('leaves Undefined items out and keeps null ones', () => {
    const ast = parseRuleSql("SELECT a, missing, nothing AS x, NULL AS n, b.c AS bc FROM 't'");
    expect(selectRuleResult(ast, message({ a: 1, b: { c: 'd' } }))).toEqual({
      kind: 'json',
      value: { a: 1, n: null, bc: 'd' },
    });
  });

  it('passes non-JSON payloads through SELECT * and refuses to add fields to them', () => {
    const bytes = Uint8Array.from([0xff, 0x00, 0x7b]);
    const binary = message(bytes, 'raw/1');
    expect(selectRuleResult(parseRuleSql("SELECT * FROM 'raw/+'"), binary)).toEqual({
      kind: 'binary',
      bytes,
    });
    expect(() => selectRuleResult(parseRuleSql("SELECT *, topic(2) AS id FROM 'raw/+'"), binary)).toThrow(
      RuleEvaluationError,
    );
    expect(() => selectRuleResult(parseRuleSql("SELECT *, 1 AS id FROM 'raw/+'"), message([1, 2]))).toThrow(
      /JSON array/,
    );
  });

  it('adds fields to an empty payload', () => {
    const ast = parseRuleSql("SELECT *, topic(2) AS id FROM 'raw/+'");
    expect(selectRuleResult(ast, message(undefined, 'raw/9'))).toEqual({ kind: 'json', value: { id: '9' } });
  });

  it('keeps a __proto__ key of the payload as a plain field', () => {
    const context = message(Buffer.from('{"__proto__":{"polluted":true},"a":1}'));
    const result = selectRuleResult(parseRuleSql("SELECT *, 2 AS b FROM '#'"), context);
    expect(result.kind).toBe('json');
    const object = (result as { value: Record<string, JsonValue> }).value;
    expect(Object.keys(object)).toEqual(['__proto__', 'a', 'b']);
    expect(Object.getPrototypeOf(object)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('rule evaluator: properties', () => {
  const scalar = fc.oneof(
    fc.integer({ min: -50, max: 50 }),
    fc.double({ noNaN: true, noDefaultInfinity: true, min: -100, max: 100 }),
    fc.constantFrom('a', 'b', '12', 'true', 'FALSE'),
    fc.boolean(),
    fc.constant(null),
  );
  const literal = (v: JsonValue) => (typeof v === 'string' ? `'${v}'` : v === null ? 'NULL' : String(v));
  const operator = fc.constantFrom('=', '<>', '!=', '<', '<=', '>', '>=');
  // A field that may be missing from the payload (Undefined).
  const field = fc.option(scalar, { nil: undefined });

  it('NOT of a comparison negates it when defined, and is Undefined exactly when the comparison is', () => {
    fc.assert(
      fc.property(field, operator, scalar, (x, op, rhs) => {
        const context = message(x === undefined ? {} : { x });
        const comparison = `x ${op} ${literal(rhs)}`;
        const plain = value(comparison, context);
        const negated = value(`NOT (${comparison})`, context);
        if (plain === undefined) expect(negated).toBeUndefined();
        else expect(negated).toBe(!plain);
        // A message never satisfies both a predicate and its negation.
        expect(where(comparison, context) && where(`NOT (${comparison})`, context)).toBe(false);
      }),
    );
  });

  it('<> is the negation of = and ordering agrees with numbers', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer(), (a, b) => {
        const context = message({ a, b });
        expect(value('a = b', context)).toBe(a === b);
        expect(value('a <> b', context)).toBe(a !== b);
        expect(value('a < b', context)).toBe(a < b);
        expect(value('a >= b', context)).toBe(a >= b);
      }),
    );
  });

  it("De Morgan's laws hold in the three-valued logic", () => {
    const operand = fc.constantFrom('p', 'q', 'missing', 'true', 'false', "'TRUE'");
    fc.assert(
      fc.property(operand, operand, field, field, (a, b, p, q) => {
        const context = message({ ...(p === undefined ? {} : { p }), ...(q === undefined ? {} : { q }) });
        expect(value(`NOT (${a} AND ${b})`, context)).toEqual(value(`(NOT ${a}) OR (NOT ${b})`, context));
        expect(value(`NOT (${a} OR ${b})`, context)).toEqual(value(`(NOT ${a}) AND (NOT ${b})`, context));
      }),
    );
  });

  it('SELECT * on a JSON object returns the payload unchanged', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (payload) => {
        const normalized = JSON.parse(JSON.stringify(payload)) as JsonValue;
        const result = selectRuleResult(parseRuleSql("SELECT * FROM '#'"), message(payload));
        expect(result).toEqual({ kind: 'json', value: normalized });
      }),
    );
  });
});
