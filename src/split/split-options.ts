/**
 * Options of a topic-splitting policy: which fields go to the shadow, which to a telemetry topic, and how
 * telemetry fields that are also mirrored into the shadow are rate-limited. Validated once, at the boundary.
 */
import { ShadowOptionsError } from '../errors.js';

/** Where a field's values go. */
export type Route = 'shadow' | 'telemetry';

/**
 * When a telemetry field is also written to the shadow. A value is mirrored when it moved beyond the deadband
 * and the minimum interval since the field's last shadow report has passed, or when it differs (by any amount)
 * from the shadow's value and the maximum staleness has passed.
 */
export interface ShadowGate {
  /**
   * Numeric changes of at most this magnitude (against the last value written to the shadow) are not mirrored.
   * Non-numeric values count every change as beyond the deadband.
   * @defaultValue 0
   */
  deadband?: number;
  /**
   * Minimum milliseconds between two shadow reports of this field.
   * @defaultValue 0
   */
  minIntervalMs?: number;
  /**
   * Milliseconds after the field's last shadow report at which a value that differs from it only within the
   * deadband is reported anyway, so the shadow is never wrong for longer than this. Must be ≥ `minIntervalMs`.
   * @defaultValue undefined (never: values within the deadband are not re-reported)
   */
  maxStalenessMs?: number;
}

/** How one field (a dotted path such as `env.temperature`) is routed. */
export type FieldRule = Route | { route: 'shadow' } | { route: 'telemetry'; alsoShadow?: ShadowGate };

/** Options of {@link splitPolicy}. */
export interface SplitPolicyOptions {
  /**
   * Per-field routes keyed by dotted path (`power`, `env.temperature`). The longest configured path that is a
   * prefix of a value's path decides its route; a configured path takes its value whole (objects and arrays
   * included) unless deeper paths below it are configured too.
   * @defaultValue {}
   */
  fields?: Record<string, FieldRule>;
  /**
   * Route of every value no configured path covers. `'shadow'` keeps the behaviour of a device without a policy.
   * @defaultValue 'shadow'
   */
  otherFields?: Route;
  /**
   * Telemetry topic template; `{thingName}` is replaced by the thing name. Must not contain MQTT wildcards and
   * must not be a reserved `$aws/` topic.
   * @defaultValue 'my/things/{thingName}/state'
   */
  telemetryTopic?: string;
  /**
   * Shadow versions per hour above which {@link SplitPolicy.estimate} flags the policy as over budget.
   * @defaultValue undefined (no budget)
   */
  budgetVersionsPerHour?: number;
}

/** A {@link ShadowGate} with every default filled in. */
export interface ResolvedShadowGate {
  deadband: number;
  minIntervalMs: number;
  /** `Infinity` when values within the deadband are never re-reported. */
  maxStalenessMs: number;
}

/** A {@link FieldRule} in normal form. */
export interface ResolvedFieldRule {
  route: Route;
  /** Present only for telemetry fields mirrored into the shadow. */
  gate: ResolvedShadowGate | undefined;
}

/** {@link SplitPolicyOptions} validated, with every default filled in. */
export interface ResolvedSplitPolicyOptions {
  /** Configured paths in normal form, keyed by the dotted path as given. */
  fields: ReadonlyMap<string, ResolvedFieldRule>;
  otherFields: Route;
  telemetryTopic: string;
  budgetVersionsPerHour: number | undefined;
}

/** Defaults of {@link SplitPolicyOptions}. */
export const DEFAULT_SPLIT_POLICY_OPTIONS = /* @__PURE__ */ Object.freeze({
  otherFields: 'shadow' as Route,
  telemetryTopic: 'my/things/{thingName}/state',
  deadband: 0,
  minIntervalMs: 0,
  maxStalenessMs: Number.POSITIVE_INFINITY,
});

const OPTION_KEYS = new Set(['fields', 'otherFields', 'telemetryTopic', 'budgetVersionsPerHour']);
const GATE_KEYS = new Set(['deadband', 'minIntervalMs', 'maxStalenessMs']);

function fail(message: string): never {
  throw new ShadowOptionsError(`splitPolicy: ${message}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkUnknownKeys(value: Record<string, unknown>, allowed: Set<string>, where: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.has(key)) fail(`unknown option ${where}${key} (allowed: ${[...allowed].join(', ')})`);
  }
}

function nonNegative(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    fail(`${name} must be a finite number ≥ 0, got ${JSON.stringify(value)}`);
  }
  return value;
}

function resolveRoute(value: unknown, name: string): Route {
  if (value !== 'shadow' && value !== 'telemetry') {
    fail(`${name} must be 'shadow' or 'telemetry', got ${JSON.stringify(value)}`);
  }
  return value;
}

function resolveGate(value: unknown, field: string): ResolvedShadowGate {
  const where = `fields['${field}'].alsoShadow`;
  if (!isRecord(value)) fail(`${where} must be an object, got ${JSON.stringify(value)}`);
  checkUnknownKeys(value, GATE_KEYS, `${where}.`);
  const deadband = value.deadband === undefined ? 0 : nonNegative(value.deadband, `${where}.deadband`);
  const minIntervalMs =
    value.minIntervalMs === undefined ? 0 : nonNegative(value.minIntervalMs, `${where}.minIntervalMs`);
  let maxStalenessMs = Number.POSITIVE_INFINITY;
  if (value.maxStalenessMs !== undefined) {
    maxStalenessMs = nonNegative(value.maxStalenessMs, `${where}.maxStalenessMs`);
    // A within-deadband change re-reported sooner than a beyond-deadband one would invert the gate's purpose.
    if (maxStalenessMs < minIntervalMs) {
      fail(`${where}.maxStalenessMs (${maxStalenessMs}) must be ≥ minIntervalMs (${minIntervalMs})`);
    }
  }
  return { deadband, minIntervalMs, maxStalenessMs };
}

function resolveFieldRule(value: unknown, field: string): ResolvedFieldRule {
  const where = `fields['${field}']`;
  if (value === 'shadow' || value === 'telemetry') return { route: value, gate: undefined };
  if (!isRecord(value)) {
    fail(`${where} must be 'shadow', 'telemetry' or { route, alsoShadow? }, got ${JSON.stringify(value)}`);
  }
  checkUnknownKeys(value, new Set(['route', 'alsoShadow']), `${where}.`);
  const route = resolveRoute(value.route, `${where}.route`);
  if (value.alsoShadow === undefined) return { route, gate: undefined };
  if (route !== 'telemetry') fail(`${where}.alsoShadow is only allowed with route 'telemetry'`);
  return { route, gate: resolveGate(value.alsoShadow, field) };
}

function checkPath(path: string): void {
  // Segments are shadow keys; an empty segment (leading, trailing or doubled dot) cannot name one.
  if (path.length === 0 || path.split('.').some((segment) => segment.length === 0)) {
    fail(`field path '${path}' is not a dotted path of non-empty keys (for example 'env.temperature')`);
  }
}

function resolveTelemetryTopic(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    fail(`telemetryTopic must be a non-empty string, got ${JSON.stringify(value)}`);
  }
  if (value.includes('+') || value.includes('#')) fail(`telemetryTopic '${value}' must not contain + or #`);
  if (value.startsWith('$')) fail(`telemetryTopic '${value}' must not be a reserved $ topic`);
  return value;
}

/**
 * Validates {@link SplitPolicyOptions} and fills in the defaults.
 *
 * @param options - the options as the caller gave them
 * @returns the options in normal form
 * @throws ShadowOptionsError naming the offending field for an unknown key, a bad route, a bad path, a negative
 *   or non-finite number, `alsoShadow` on a shadow route, or `maxStalenessMs` below `minIntervalMs`
 */
export function resolveSplitPolicyOptions(options: SplitPolicyOptions = {}): ResolvedSplitPolicyOptions {
  if (!isRecord(options)) fail(`options must be an object, got ${JSON.stringify(options)}`);
  checkUnknownKeys(options, OPTION_KEYS, '');
  const fields = new Map<string, ResolvedFieldRule>();
  if (options.fields !== undefined) {
    if (!isRecord(options.fields)) fail(`fields must be an object, got ${JSON.stringify(options.fields)}`);
    for (const [path, rule] of Object.entries(options.fields)) {
      checkPath(path);
      fields.set(path, resolveFieldRule(rule, path));
    }
  }
  const otherFields =
    options.otherFields === undefined
      ? DEFAULT_SPLIT_POLICY_OPTIONS.otherFields
      : resolveRoute(options.otherFields, 'otherFields');
  const telemetryTopic =
    options.telemetryTopic === undefined
      ? DEFAULT_SPLIT_POLICY_OPTIONS.telemetryTopic
      : resolveTelemetryTopic(options.telemetryTopic);
  let budgetVersionsPerHour: number | undefined;
  if (options.budgetVersionsPerHour !== undefined) {
    budgetVersionsPerHour = nonNegative(options.budgetVersionsPerHour, 'budgetVersionsPerHour');
  }
  return { fields, otherFields, telemetryTopic, budgetVersionsPerHour };
}
