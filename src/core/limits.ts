/**
 * The service's limits and quotas (spec section 6), with AWS's defaults. Every value is configurable
 * because AWS raises some on request (state size up to 30 KB) and sources disagree on others (depth).
 */
import { ShadowOptionsError } from '../errors.js';
import type { JsonValue, Rejection, ShadowState, ShadowTarget } from './document.js';
import { rejectionOf } from './error-types.js';

/** Limits the Device Shadow service enforces. */
export interface ShadowLimits {
  /**
   * Maximum bytes of the resulting `desired` + `reported` state, each section measured as compact UTF-8 JSON.
   * @defaultValue 8192
   */
  maxStateBytes: number;
  /**
   * Maximum nesting depth of `desired` / `reported`, counting the section object as level 1
   * (AWS's error text says "maximum is 6"; see spec 6 for the conflict between sources).
   * @defaultValue 6
   */
  maxDepth: number;
  /**
   * Maximum bytes of a `clientToken`.
   * @defaultValue 64
   */
  maxClientTokenBytes: number;
  /**
   * Maximum length of a thing name (pattern `[a-zA-Z0-9:_-]+`).
   * @defaultValue 128
   */
  maxThingNameLength: number;
  /**
   * Maximum length of a shadow name (pattern `[$a-zA-Z0-9:_-]+`).
   * @defaultValue 64
   */
  maxShadowNameLength: number;
  /**
   * How long a deleted shadow's version is remembered, in milliseconds; a shadow re-created within
   * this window continues the numbering (spec section 4).
   * @defaultValue 172800000 (48 hours)
   */
  deletedVersionRetentionMs: number;
  /**
   * Requests per second accepted per thing.
   * @defaultValue 20
   */
  requestsPerSecondPerThing: number;
  /**
   * Requests in flight (received, not yet answered) per thing.
   * @defaultValue 10
   */
  maxInFlightPerThing: number;
}

/** AWS's default limits. */
export const DEFAULT_LIMITS: Readonly<ShadowLimits> = Object.freeze({
  maxStateBytes: 8192,
  maxDepth: 6,
  maxClientTokenBytes: 64,
  maxThingNameLength: 128,
  maxShadowNameLength: 64,
  deletedVersionRetentionMs: 48 * 60 * 60 * 1000,
  requestsPerSecondPerThing: 20,
  maxInFlightPerThing: 10,
});

const LIMIT_KEYS = Object.keys(DEFAULT_LIMITS) as (keyof ShadowLimits)[];
const RESOLVED = new WeakSet<object>([DEFAULT_LIMITS]);

/**
 * Validates a partial set of limits and fills the rest from {@link DEFAULT_LIMITS}.
 * Every limit must be a positive safe integer; `deletedVersionRetentionMs` may also be 0 (forget deleted
 * versions at once, so a re-created shadow starts again at version 1).
 *
 * @param partial - the limits to override; `undefined` values fall back to the default
 * @returns a frozen, complete set of limits ({@link DEFAULT_LIMITS} itself when nothing is overridden; a
 *   result of this function passed back in is returned as is, so callers can resolve once and pass it on)
 * @throws {@link ShadowOptionsError} when `partial` is not an object, names an unknown limit or holds an invalid value
 * @example resolveLimits({ maxStateBytes: 30 * 1024 }).maxStateBytes // 30720
 */
export function resolveLimits(partial?: Partial<ShadowLimits>): Readonly<ShadowLimits> {
  if (partial === undefined) return DEFAULT_LIMITS;
  // A result of this function is frozen and complete: passing it back costs nothing.
  if (RESOLVED.has(partial)) return partial as Readonly<ShadowLimits>;
  if (typeof partial !== 'object' || partial === null || Array.isArray(partial)) {
    throw new ShadowOptionsError(`Shadow limits must be an object, got ${describeValue(partial)}`);
  }
  const resolved: ShadowLimits = { ...DEFAULT_LIMITS };
  let changed = false;
  for (const key of Object.keys(partial)) {
    if (!(LIMIT_KEYS as string[]).includes(key)) {
      throw new ShadowOptionsError(`Unknown shadow limit '${key}'; known limits: ${LIMIT_KEYS.join(', ')}`);
    }
    const value = (partial as Record<string, unknown>)[key];
    if (value === undefined) continue;
    const minimum = key === 'deletedVersionRetentionMs' ? 0 : 1;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < minimum) {
      throw new ShadowOptionsError(
        `Shadow limit '${key}' must be an integer >= ${minimum}, got ${describeValue(value)}`,
      );
    }
    resolved[key as keyof ShadowLimits] = value;
    changed = true;
  }
  if (!changed) return DEFAULT_LIMITS;
  Object.freeze(resolved);
  RESOLVED.add(resolved);
  return resolved;
}

function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'an array';
  return String(value);
}

const THING_NAME_PATTERN = /^[a-zA-Z0-9:_-]+$/;
const SHADOW_NAME_PATTERN = /^[$a-zA-Z0-9:_-]+$/;

/**
 * Checks a thing name against the API's constraints (1 to `maxThingNameLength` characters of `[a-zA-Z0-9:_-]`).
 *
 * AWS does not document the message for a bad name (spec 6). We answer like AWS's other request
 * validation failures: 400 InvalidRequestException with the "N validation error(s) detected: Value '<v>' at
 * 'thingName' failed to satisfy constraint: ..." text, listing every failed constraint.
 *
 * @param thingName - the name to check
 * @param limits - the limits in force; defaults to {@link DEFAULT_LIMITS}
 * @returns `undefined` when the name is valid, otherwise the 400 rejection to send
 */
export function checkThingName(
  thingName: string,
  limits: Pick<ShadowLimits, 'maxThingNameLength'> = DEFAULT_LIMITS,
): Rejection | undefined {
  return checkName('thingName', thingName, limits.maxThingNameLength, THING_NAME_PATTERN);
}

/**
 * Checks a shadow name against the API's constraints (1 to `maxShadowNameLength` characters of
 * `[$a-zA-Z0-9:_-]`; the API reference allows `$`). Messages follow {@link checkThingName}.
 *
 * @param shadowName - the name to check
 * @param limits - the limits in force; defaults to {@link DEFAULT_LIMITS}
 * @returns `undefined` when the name is valid, otherwise the 400 rejection to send
 */
export function checkShadowName(
  shadowName: string,
  limits: Pick<ShadowLimits, 'maxShadowNameLength'> = DEFAULT_LIMITS,
): Rejection | undefined {
  return checkName('shadowName', shadowName, limits.maxShadowNameLength, SHADOW_NAME_PATTERN);
}

/**
 * Checks both names of a shadow target: the thing name first, then the shadow name if there is one.
 *
 * @param target - the shadow addressed by a request
 * @param limits - the limits in force; defaults to {@link DEFAULT_LIMITS}
 * @returns `undefined` when both names are valid, otherwise the 400 rejection for the first bad one
 */
export function checkTarget(
  target: ShadowTarget,
  limits: Pick<ShadowLimits, 'maxThingNameLength' | 'maxShadowNameLength'> = DEFAULT_LIMITS,
): Rejection | undefined {
  // checkName directly, not through checkThingName / checkShadowName: an app's bundle then carries neither.
  const { thingName, shadowName } = target;
  return (
    checkName('thingName', thingName, limits.maxThingNameLength, THING_NAME_PATTERN) ??
    (shadowName === undefined
      ? undefined
      : checkName('shadowName', shadowName, limits.maxShadowNameLength, SHADOW_NAME_PATTERN))
  );
}

function checkName(field: string, value: string, maxLength: number, pattern: RegExp): Rejection | undefined {
  const failures: string[] = [];
  if (typeof value !== 'string') failures.push('Member must not be null');
  else {
    if (value.length < 1) failures.push('Member must have length greater than or equal to 1');
    if (value.length > maxLength) failures.push(`Member must have length less than or equal to ${maxLength}`);
    if (value.length > 0 && !pattern.test(value)) {
      failures.push(`Member must satisfy regular expression pattern: ${pattern.source.slice(1, -1)}`);
    }
  }
  if (failures.length === 0) return undefined;
  // AWS quotes the value, except a missing one.
  const subject = typeof value === 'string' ? `Value '${value}' at` : 'Value at';
  const count = `${failures.length} validation error${failures.length === 1 ? '' : 's'} detected`;
  return invalidRequest(
    `${count}: ${failures.map((failure) => `${subject} '${field}' failed to satisfy constraint: ${failure}`).join('; ')}`,
  );
}

function invalidRequest(message: string): Rejection {
  return rejectionOf('InvalidRequestException', message);
}

/**
 * Number of bytes `value` takes when encoded as UTF-8, without allocating the encoding.
 *
 * @param value - any string (a lone surrogate counts as the 3 bytes of U+FFFD, like `TextEncoder`)
 */
export function utf8ByteLength(value: string): number {
  let bytes = 0;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < value.length) {
      const next = value.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * Size of a shadow's state as the service counts it against `maxStateBytes`: the compact UTF-8 JSON of
 * `desired` plus that of `reported` (metadata, version and the `state` wrapper do not count; AWS does not
 * document its byte counting, this is Greengrass ShadowManager's).
 *
 * @param state - the stored state; absent sections count 0
 */
export function stateBytes(state: ShadowState): number {
  let bytes = 0;
  if (state.desired !== undefined) bytes += utf8ByteLength(JSON.stringify(state.desired));
  if (state.reported !== undefined) bytes += utf8ByteLength(JSON.stringify(state.reported));
  return bytes;
}

/**
 * Nesting depth of a section as checked against `maxDepth`: the section object itself is level 1, every
 * object or array inside adds a level, scalar leaves add none. Arrays count as a level because an array
 * nests its elements exactly like an object does (Greengrass ShadowManager counts every container).
 *
 * @param section - a `desired` / `reported` object, or any JSON value (a scalar has depth 0)
 * @example nestingDepth({ a: { b: 1 } }) // 2
 * @example nestingDepth({ a: [[1]] }) // 3
 */
export function nestingDepth(section: JsonValue): number {
  if (typeof section !== 'object' || section === null) return 0;
  let deepest = 0;
  if (Array.isArray(section)) {
    for (const element of section) deepest = Math.max(deepest, nestingDepth(element));
  } else {
    for (const key of Object.keys(section)) {
      const child = section[key];
      if (child !== undefined) deepest = Math.max(deepest, nestingDepth(child));
    }
  }
  return deepest + 1;
}
