/**
 * Structural validation of an update request (spec 5.1, 5.3 steps 2 to 10), with AWS's exact texts.
 */
import type { JsonObject, Rejection, UpdateRequest, UpdateState } from './document.js';
import { rejectionOf } from './error-types.js';
import { isJsonObject } from './json-value.js';
import { DEFAULT_LIMITS, type ShadowLimits, utf8ByteLength } from './limits.js';

/** The result of {@link validateUpdateRequest}: the typed request, or the rejection to send. */
export type ValidateResult = { ok: true; request: UpdateRequest } | { ok: false; rejection: Rejection };

// The texts of the 400 rejections an update request can get, as constants (a bundler shortens their names,
// not an object's keys); REQUEST_REJECTION_MESSAGES lists them.
const INVALID_JSON = 'Invalid JSON';
const MISSING_STATE = 'Missing required node: state';
const STATE_NOT_OBJECT = 'State node must be an object';
const invalidStateNode = (key: string) => `State contains an invalid node: '${key}'`;
const DESIRED_NOT_OBJECT = 'Desired node must be an object';
const REPORTED_NOT_OBJECT = 'Reported node must be an object';
const ARRAY_WITH_NULL_MESSAGE = 'Arrays in the state must not contain null';
const tooDeep = (maxDepth: number) => `JSON contains too many levels of nesting; maximum is ${maxDepth}`;
const INVALID_CLIENT_TOKEN = 'Invalid clientToken';
const INVALID_VERSION = 'Invalid version';

/**
 * The texts of the 400 rejections an update request can get. All are AWS's documented texts (spec 5.1)
 * except `arrayWithNull`: AWS documents that arrays must not contain `null` but not the message, so we
 * chose a descriptive one.
 */
export const REQUEST_REJECTION_MESSAGES = /* @__PURE__ */ Object.freeze({
  invalidJson: INVALID_JSON,
  missingState: MISSING_STATE,
  stateNotObject: STATE_NOT_OBJECT,
  invalidStateNode,
  desiredNotObject: DESIRED_NOT_OBJECT,
  reportedNotObject: REPORTED_NOT_OBJECT,
  arrayWithNull: ARRAY_WITH_NULL_MESSAGE,
  tooDeep,
  invalidClientToken: INVALID_CLIENT_TOKEN,
  invalidVersion: INVALID_VERSION,
});

/**
 * The request's `clientToken` if it can be echoed: a string of at most `maxClientTokenBytes` UTF-8 bytes
 * in a JSON object. Read before anything else is checked, so every rejection of a request carrying a valid
 * token echoes it (spec 5.3). Also reads the optional token of `/get` and `/delete` payloads.
 *
 * @param request - the parsed request (any JSON value)
 * @param maxClientTokenBytes - the limit in force
 * @returns the token, or `undefined` when absent or not valid
 */
export function readClientToken(
  request: unknown,
  maxClientTokenBytes: number = DEFAULT_LIMITS.maxClientTokenBytes,
): string | undefined {
  if (!isJsonObject(request)) return undefined;
  const token = request.clientToken;
  return isValidClientToken(token, maxClientTokenBytes) ? token : undefined;
}

function isValidClientToken(token: unknown, maxBytes: number): token is string {
  // Only the length is documented (64 bytes); an empty string is accepted like any short token.
  return typeof token === 'string' && utf8ByteLength(token) <= maxBytes;
}

/**
 * Checks the shape of an update request in the spec 5.3 order and returns it typed:
 * 1. not a JSON object (array, string, number, boolean, null) → `Invalid JSON` (spec 5.3 step 2 says the
 *    payload must parse "as a JSON object"; AWS does not document this case);
 * 2. no `state` key → `Missing required node: state`;
 * 3. `state` neither object nor `null` → `State node must be an object`;
 * 4. a key in `state` other than `desired` / `reported` → `State contains an invalid node: '<key>'`
 *    (the first one in key order);
 * 5. `desired`, then `reported`, neither object nor `null` → `Desired node must be an object` /
 *    `Reported node must be an object`;
 * 6. an array holding `null` → {@link REQUEST_REJECTION_MESSAGES}.arrayWithNull; a value JSON cannot carry
 *    (only from JavaScript callers: `undefined` in an array, `NaN`, a function, a class instance) →
 *    `Invalid JSON`;
 * 7. nesting deeper than `maxDepth` (see {@link nestingDepth}) → `JSON contains too many levels of nesting;
 *    maximum is <maxDepth>`;
 * 8. `clientToken` present but not a string of at most `maxClientTokenBytes` bytes → `Invalid clientToken`;
 * 9. `version` present but not an integer in [0, 2^53) → `Invalid version` (`null` included).
 *
 * Unknown top-level keys are ignored (spec 1.1). All rejections are 400 InvalidRequestException and echo
 * the clientToken when {@link readClientToken} could read it. Values are not copied: the returned request
 * shares its objects with the input.
 *
 * @param request - the parsed request
 * @param limits - the limits in force (`maxDepth`, `maxClientTokenBytes`); defaults to {@link DEFAULT_LIMITS}
 * @example validateUpdateRequest({ state: { delta: {} } }) // { ok: false, rejection: { code: 400, message: "State contains an invalid node: 'delta'", ... } }
 */
export function validateUpdateRequest(
  request: unknown,
  limits: Pick<ShadowLimits, 'maxDepth' | 'maxClientTokenBytes'> = DEFAULT_LIMITS,
): ValidateResult {
  const clientToken = readClientToken(request, limits.maxClientTokenBytes);
  const reject = (message: string): ValidateResult => ({
    ok: false,
    rejection: rejectionOf('InvalidRequestException', message, clientToken),
  });
  if (!isPlainObject(request)) return reject(INVALID_JSON);
  if (!Object.hasOwn(request, 'state') || request.state === undefined) return reject(MISSING_STATE);

  const rawState = request.state;
  let state: UpdateState | null = null;
  if (rawState !== null) {
    if (!isPlainObject(rawState)) return reject(STATE_NOT_OBJECT);
    for (const key of Object.keys(rawState)) {
      if (key !== 'desired' && key !== 'reported' && rawState[key] !== undefined) {
        return reject(invalidStateNode(key));
      }
    }
    const { desired, reported } = rawState;
    if (desired !== undefined && desired !== null && !isPlainObject(desired)) {
      return reject(DESIRED_NOT_OBJECT);
    }
    if (reported !== undefined && reported !== null && !isPlainObject(reported)) {
      return reject(REPORTED_NOT_OBJECT);
    }
    const sections = [desired, reported].filter(isPlainObject);
    let problem: Problem = NO_PROBLEM;
    for (const section of sections) problem = worst(problem, inspect(section, 1, limits.maxDepth));
    if (problem === NOT_JSON) return reject(INVALID_JSON);
    if (problem === ARRAY_WITH_NULL) return reject(ARRAY_WITH_NULL_MESSAGE);
    if (problem === TOO_DEEP) return reject(tooDeep(limits.maxDepth));
    // Built in the request's key order, so the accepted echo serializes exactly like the request's state.
    state = {};
    for (const key of Object.keys(rawState)) {
      if (key === 'desired' && desired !== undefined) state.desired = desired as JsonObject | null;
      if (key === 'reported' && reported !== undefined) state.reported = reported as JsonObject | null;
    }
  }

  const token = request.clientToken;
  if (token !== undefined && !isValidClientToken(token, limits.maxClientTokenBytes)) {
    return reject(INVALID_CLIENT_TOKEN);
  }
  const version = request.version;
  if (
    version !== undefined &&
    !(typeof version === 'number' && Number.isSafeInteger(version) && version >= 0)
  ) {
    return reject(INVALID_VERSION);
  }

  const typed: UpdateRequest = { state };
  if (version !== undefined) typed.version = version;
  if (clientToken !== undefined) typed.clientToken = clientToken;
  return { ok: true, request: typed };
}

// What inspect() can find in a section, in rising severity: the most severe problem decides the message.
const NO_PROBLEM = 0;
const TOO_DEEP = 1;
const ARRAY_WITH_NULL = 2;
const NOT_JSON = 3;
type Problem = typeof NO_PROBLEM | typeof TOO_DEEP | typeof ARRAY_WITH_NULL | typeof NOT_JSON;

function worst(a: Problem, b: Problem): Problem {
  return a >= b ? a : b;
}

/** True for an object created by JSON.parse or an object literal (not an array, not a class instance). */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Walks a container at nesting level `level`, reporting the most severe problem. Stops descending below
 * `maxDepth + 1`, so a hostile, very deep payload cannot overflow the stack (a null inside an array that
 * deep is then reported as too deep).
 */
function inspect(container: Record<string, unknown> | unknown[], level: number, maxDepth: number): Problem {
  if (level > maxDepth) return TOO_DEEP;
  let problem: Problem = NO_PROBLEM;
  const isArray = Array.isArray(container);
  const values: unknown[] = isArray ? container : Object.values(container);
  for (const value of values) {
    let found: Problem = NO_PROBLEM;
    if (value === null) {
      if (isArray) found = ARRAY_WITH_NULL;
    } else if (value === undefined) {
      // A missing property is fine (JSON.stringify drops it); a hole or undefined element is not JSON.
      if (isArray) found = NOT_JSON;
    } else if (Array.isArray(value) || isPlainObject(value)) {
      found = inspect(value, level + 1, maxDepth);
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) found = NOT_JSON;
    } else if (typeof value !== 'string' && typeof value !== 'boolean') {
      found = NOT_JSON;
    }
    problem = worst(problem, found);
    if (problem === NOT_JSON) return problem;
  }
  return problem;
}
