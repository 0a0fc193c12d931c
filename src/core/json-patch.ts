/**
 * RFC 6902 (JSON Patch) views of shadow states, for change feeds and audit logs. The service itself only
 * speaks merge updates (see `diff.ts`); these views translate to and from the standard format.
 */
import jsonPatch from 'fast-json-patch';
import { ShadowValidationError, type ValidationIssue } from '../errors.js';
import type { JsonObject, JsonValue, ShadowState } from './document.js';

/** One RFC 6902 operation. `path` and `from` are JSON Pointers (RFC 6901), `''` being the whole document. */
export type JsonPatchOperation =
  | { op: 'add'; path: string; value: JsonValue }
  | { op: 'remove'; path: string }
  | { op: 'replace'; path: string; value: JsonValue }
  | { op: 'move'; from: string; path: string }
  | { op: 'copy'; from: string; path: string }
  | { op: 'test'; path: string; value: JsonValue };

const RFC_6902_OPS: ReadonlySet<string> = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

/**
 * The RFC 6902 operations that turn `from` into `to`, computed by `fast-json-patch`'s `compare`: `add` for
 * new keys, `remove` for removed keys, `replace` for changed values (arrays are compared element by element,
 * as JSON Patch addresses array items). Works on whole states or single sections; `undefined` is `{}`.
 *
 * Operation values are copies: changing them later does not change `to`.
 *
 * @param from - the state or section before
 * @param to - the state or section after
 * @returns the operations, empty when both are equal
 *
 * @example
 * ```ts
 * toJsonPatch({ desired: { power: 'off' } }, { desired: { power: 'on' } });
 * // → [{ op: 'replace', path: '/desired/power', value: 'on' }]
 * ```
 */
export function toJsonPatch(
  from: ShadowState | JsonObject | undefined,
  to: ShadowState | JsonObject | undefined,
): JsonPatchOperation[] {
  return jsonPatch.compare(from ?? {}, to ?? {}) as JsonPatchOperation[];
}

/**
 * Applies RFC 6902 operations to a shadow state and returns the new state; the input state and the
 * operations are never changed. Every operation is validated before it runs (shape, `op`, paths that must
 * exist, `test` values), and the state after each operation must still be a shadow state: an object with at
 * most `desired` and `reported`, both objects, no `null` anywhere (in a stored state a key is absent or has
 * a value). Sections left empty are dropped, as the service never stores an empty section.
 *
 * Keys named `__proto__` (and `constructor/prototype` paths) cannot be addressed: `fast-json-patch` bans
 * them to prevent prototype pollution.
 *
 * @param state - the state to start from
 * @param operations - the operations, applied in order
 * @returns the patched state
 * @throws {@link ShadowValidationError} naming the index and path of the first operation that is invalid,
 *   cannot be applied, fails its `test`, or leaves something that is not a shadow state
 *
 * @example
 * ```ts
 * const next = applyJsonPatch(shadow.state, [{ op: 'replace', path: '/desired/power', value: 'on' }]);
 * ```
 */
export function applyJsonPatch(state: ShadowState, operations: readonly JsonPatchOperation[]): ShadowState {
  if (!Array.isArray(operations)) {
    throw new ShadowValidationError('JSON Patch must be an array of operations', {
      issues: [{ path: [], message: 'not an array' }],
    });
  }
  let document: unknown = jsonPatch.deepClone(state);
  for (let index = 0; index < operations.length; index++) {
    const operation: unknown = operations[index];
    try {
      checkOperation(operation);
      // The value goes into the document by reference: copy it so later operations cannot change the caller's.
      const own = jsonPatch.deepClone(operation) as JsonPatchOperation;
      document = jsonPatch.applyOperation(document, own, true, true, true, index).newDocument;
    } catch (error) {
      throw operationError(index, operation, describeFailure(error), error);
    }
    const problem = shadowStateProblem(document);
    if (problem !== undefined) {
      throw operationError(
        index,
        operation,
        `leaves an invalid shadow state (${problem.message})`,
        undefined,
        [problem],
      );
    }
  }
  return dropEmptySections(document as ShadowState);
}

/** Rejects what RFC 6902 does not define before `fast-json-patch` sees it (it also accepts an internal `_get`). */
function checkOperation(operation: unknown): void {
  if (typeof operation !== 'object' || operation === null || Array.isArray(operation)) {
    throw new Error('not an object');
  }
  const op = (operation as { op?: unknown }).op;
  if (typeof op !== 'string' || !RFC_6902_OPS.has(op)) {
    throw new Error(`\`op\` ${JSON.stringify(op) ?? 'undefined'} is not an RFC 6902 operation`);
  }
  // Fails on `undefined` values and the like, before the JSON copy would silently drop them.
  jsonPatch.validator(operation as JsonPatchOperation, 0);
}

function describeFailure(error: unknown): string {
  if (error instanceof jsonPatch.JsonPatchError) {
    // fast-json-patch appends a dump of the operation and tree to `message`; keep the first line and code.
    return `${error.message.split('\n')[0] ?? error.name} (${error.name})`;
  }
  if (error instanceof TypeError && error.message.startsWith('JSON-Patch: modifying `__proto__`')) {
    return '`__proto__` and `constructor/prototype` cannot be addressed (prototype pollution guard)';
  }
  return error instanceof Error ? error.message : String(error);
}

function operationError(
  index: number,
  operation: unknown,
  reason: string,
  cause: unknown,
  issues?: ValidationIssue[],
): ShadowValidationError {
  const path = pointerOf(operation);
  const where = path === undefined ? '' : ` at path '${path}'`;
  return new ShadowValidationError(`JSON Patch operation ${index}${where}: ${reason}`, {
    issues: issues ?? [{ path: path === undefined ? [] : splitPointer(path), message: reason }],
    ...(cause === undefined ? {} : { cause }),
  });
}

function pointerOf(operation: unknown): string | undefined {
  if (typeof operation !== 'object' || operation === null) return undefined;
  const path = (operation as { path?: unknown }).path;
  return typeof path === 'string' ? path : undefined;
}

function splitPointer(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'));
}

/** The first reason `document` is not a shadow state, with the offending value's path, if any. */
function shadowStateProblem(document: unknown): ValidationIssue | undefined {
  if (!isPlainObject(document)) return { path: [], message: 'the state must be an object' };
  for (const key of Object.keys(document)) {
    const section = document[key];
    if (key !== 'desired' && key !== 'reported') {
      return { path: [key], message: `'${key}' is not a section (only 'desired' and 'reported')` };
    }
    if (!isPlainObject(section)) return { path: [key], message: `section '${key}' must be an object` };
    const inner = valueProblem(section, [key]);
    if (inner !== undefined) return inner;
  }
  return undefined;
}

function valueProblem(value: unknown, path: (string | number)[]): ValidationIssue | undefined {
  if (value === null) return { path, message: `null at /${path.join('/')} (a stored state has no nulls)` };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const inner = valueProblem(value[i], [...path, i]);
      if (inner !== undefined) return inner;
    }
  } else if (isPlainObject(value)) {
    for (const key of Object.keys(value)) {
      const inner = valueProblem(value[key], [...path, key]);
      if (inner !== undefined) return inner;
    }
  }
  return undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function dropEmptySections(state: ShadowState): ShadowState {
  const out: ShadowState = {};
  if (state.desired !== undefined && Object.keys(state.desired).length > 0) out.desired = state.desired;
  if (state.reported !== undefined && Object.keys(state.reported).length > 0) out.reported = state.reported;
  return out;
}
