/**
 * Evaluates parsed rule statements ({@link parseRuleSql}) on one message, with AWS IoT SQL's value semantics:
 *
 * - a field that is missing (or read from something that is not an object) is *Undefined*, which is not JSON
 *   `null`: `{"foo": null}` has `foo` = null but `bar` = Undefined;
 * - `AND`, `OR` and `NOT` take Booleans or the strings "true"/"false" (any case); any other operand, Undefined
 *   included, makes the result Undefined (the operator tables' "Other value -> Undefined" row);
 * - `<`, `<=`, `>`, `>=` convert both operands to a number (numbers, numeric strings); when either cannot be
 *   converted the result is Undefined;
 * - `=` and `<>` compare values of the same type (numbers numerically, objects and arrays structurally,
 *   null equals null); an Undefined operand or operands of different types give Undefined. The tables are not
 *   explicit about mixed types; we follow their "Other value -> Undefined" row, so `NOT (x = 'a')` does not match
 *   a message whose `x` is a number or missing, exactly like `x = 'a'`;
 * - WHERE holds only when the predicate is true (Undefined counts as not matched);
 * - in SELECT, an item whose value is Undefined is left out of the result (Undefined has no JSON form).
 */
import type { JsonObject, JsonValue } from '../../core/document.js';
import { jsonEqual } from '../../core/json-equal.js';
import type { RuleExpression, RuleSqlAst } from './rule-sql.js';

/**
 * The value of a rule expression: a JSON value, or `undefined` for AWS IoT SQL's Undefined (which has no JSON
 * representation).
 */
export type RuleValue = JsonValue | undefined;

/** A message payload, decoded once for every rule that looks at it. */
export type DecodedPayload =
  | { kind: 'json'; value: JsonValue }
  /** A zero-byte payload: fields are Undefined; `SELECT *, x AS y` gives only the added fields. */
  | { kind: 'empty' }
  /** A payload that is not UTF-8 JSON: fields are Undefined; `SELECT *` passes the bytes through. */
  | { kind: 'binary'; bytes: Uint8Array };

/** What expressions see besides the payload. */
export interface RuleMessageContext {
  topic: string;
  payload: DecodedPayload;
  /**
   * The publisher's MQTT client id; undefined when the message did not come from an MQTT client (HTTP Publish,
   * the service's own messages, a rule's republish), where `clientid()` gives `'n/a'` as AWS documents.
   */
  clientId: string | undefined;
  /** Epoch milliseconds at which the rules engine took the message, for `timestamp()`. */
  timestamp: number;
}

/** The result of a rule's SELECT: a JSON value, or the original bytes for `SELECT *` on a non-JSON payload. */
export type RuleSelectResult = { kind: 'json'; value: JsonValue } | { kind: 'binary'; bytes: Uint8Array };

/** A SELECT that cannot produce a result for this message (fields added to a payload that is not a JSON object). */
export class RuleEvaluationError extends Error {
  override readonly name = 'RuleEvaluationError' as const;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes a payload for evaluation: UTF-8 JSON, empty, or binary.
 *
 * @param payload - the raw message payload
 */
export function decodeRulePayload(payload: Uint8Array): DecodedPayload {
  if (payload.byteLength === 0) return { kind: 'empty' };
  try {
    return { kind: 'json', value: JSON.parse(UTF8.decode(payload)) as JsonValue };
  } catch {
    return { kind: 'binary', bytes: payload };
  }
}

function isObject(value: RuleValue): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readField(payload: DecodedPayload, path: readonly string[]): RuleValue {
  if (payload.kind !== 'json') return undefined;
  let value: RuleValue = payload.value;
  for (const key of path) {
    // Own properties only: `constructor` or `__proto__` of a payload without them is Undefined.
    if (!isObject(value) || !Object.hasOwn(value, key)) return undefined;
    value = value[key];
  }
  return value;
}

/** A Boolean, or the string "true"/"false" in any case; otherwise undefined. */
function asBoolean(value: RuleValue): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const lower = value.toLowerCase();
    if (lower === 'true') return true;
    if (lower === 'false') return false;
  }
  return undefined;
}

const NUMERIC = /^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$/;

/** The Decimal conversion of the ordering operators: numbers and numeric strings; Booleans are not converted. */
function asNumber(value: RuleValue): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && NUMERIC.test(value)) return Number(value);
  return undefined;
}

function typeOf(value: JsonValue): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function equal(left: RuleValue, right: RuleValue): boolean | undefined {
  if (left === undefined || right === undefined) return undefined;
  if (typeOf(left) !== typeOf(right)) return undefined;
  return jsonEqual(left, right);
}

/**
 * Evaluates one expression on a message.
 *
 * @param expression - a parsed expression
 * @param context - the message
 * @returns the value, `undefined` standing for Undefined
 */
export function evaluateRuleExpression(expression: RuleExpression, context: RuleMessageContext): RuleValue {
  switch (expression.kind) {
    case 'literal':
      return expression.value;
    case 'field':
      return readField(context.payload, expression.path);
    case 'topic': {
      if (expression.level === undefined) return context.topic;
      // Past the last level the result is Undefined (and a substitution of it renders as '').
      return context.topic.split('/')[expression.level - 1];
    }
    case 'clientid':
      return context.clientId ?? 'n/a';
    case 'timestamp':
      return context.timestamp;
    case 'not': {
      const operand = asBoolean(evaluateRuleExpression(expression.operand, context));
      return operand === undefined ? undefined : !operand;
    }
    case 'and':
    case 'or': {
      const left = asBoolean(evaluateRuleExpression(expression.left, context));
      const right = asBoolean(evaluateRuleExpression(expression.right, context));
      if (left === undefined || right === undefined) return undefined;
      return expression.kind === 'and' ? left && right : left || right;
    }
    case 'compare': {
      const left = evaluateRuleExpression(expression.left, context);
      const right = evaluateRuleExpression(expression.right, context);
      if (expression.operator === '=' || expression.operator === '<>') {
        const same = equal(left, right);
        if (same === undefined) return undefined;
        return expression.operator === '=' ? same : !same;
      }
      const a = asNumber(left);
      const b = asNumber(right);
      if (a === undefined || b === undefined) return undefined;
      switch (expression.operator) {
        case '<':
          return a < b;
        case '<=':
          return a <= b;
        case '>':
          return a > b;
        default:
          return a >= b;
      }
    }
  }
}

/**
 * Decides whether a statement's WHERE clause holds for a message (always, when it has none).
 *
 * @param ast - the parsed statement
 * @param context - the message
 */
export function ruleMatches(ast: RuleSqlAst, context: RuleMessageContext): boolean {
  if (ast.where === undefined) return true;
  return asBoolean(evaluateRuleExpression(ast.where, context)) === true;
}

/** Sets an own property even for keys like `__proto__`, which plain assignment would treat specially. */
function setOwn(target: JsonObject, key: string, value: JsonValue): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Computes a statement's SELECT result for a message: what a Lambda action receives as its event and what a
 * republish action publishes.
 *
 * @param ast - the parsed statement
 * @param context - the message
 * @throws {@link RuleEvaluationError} when fields are added (`SELECT *, x AS y`) to a payload that is neither a
 *   JSON object nor empty: AWS documents adding data only to empty and JSON payloads
 */
export function selectRuleResult(ast: RuleSqlAst, context: RuleMessageContext): RuleSelectResult {
  const { payload } = context;
  const onlyAll = ast.select.length === 1 && ast.select[0]?.kind === 'all';
  if (onlyAll) {
    if (payload.kind === 'json') return { kind: 'json', value: payload.value };
    return { kind: 'binary', bytes: payload.kind === 'binary' ? payload.bytes : new Uint8Array(0) };
  }
  const result: JsonObject = {};
  for (const item of ast.select) {
    if (item.kind === 'all') {
      if (payload.kind === 'empty') continue;
      if (payload.kind === 'json' && isObject(payload.value)) {
        for (const [key, value] of Object.entries(payload.value)) setOwn(result, key, value);
        continue;
      }
      throw new RuleEvaluationError(
        `SELECT * with other items needs a JSON object payload; the message on ${context.topic} is ${
          payload.kind === 'binary' ? 'not JSON' : `a JSON ${typeOf(payload.value)}`
        }`,
      );
    }
    const value = evaluateRuleExpression(item.expression, context);
    if (value !== undefined) setOwn(result, item.name, value);
  }
  return { kind: 'json', value: result };
}

/**
 * Renders a value for a substitution template `${...}`: strings as they are, other JSON values as JSON, Undefined
 * as the empty string (AWS: "Undefined is converted to an empty string when serialized by itself").
 *
 * @param value - an expression's value
 */
export function renderRuleValue(value: RuleValue): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}
