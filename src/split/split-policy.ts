/**
 * Topic-splitting policies: the seed's fix as a library feature. State the app must see goes to the shadow;
 * telemetry nobody syncs goes to a plain topic, so the shadow's version stops churning and the app's versioned
 * updates stop meeting 409s. Pure: no clock, no I/O; the caller passes the time and what it last reported.
 */
import { diffSection } from '../core/diff.js';
import type { JsonObject, JsonValue } from '../core/document.js';
import { jsonEqual } from '../core/json-equal.js';
import { isJsonObject } from '../core/json-value.js';
import { mergeSection } from '../core/merge.js';
import { ShadowOptionsError, ShadowValidationError, type ValidationIssue } from '../errors.js';
import { buildRouteTable, type RouteNode, ruleFor } from './route-table.js';
import {
  type ResolvedFieldRule,
  type ResolvedShadowGate,
  type ResolvedSplitPolicyOptions,
  resolveSplitPolicyOptions,
  type SplitPolicyOptions,
} from './split-options.js';

/**
 * What the caller knows when it splits a report. The device agent keeps this for you; pass it yourself only
 * when you use a policy without the agent.
 */
export interface SplitState {
  /** The `reported` section as the shadow holds it after the caller's earlier reports (absent: nothing yet). */
  lastReported?: JsonObject | undefined;
  /**
   * Epoch milliseconds at which each gated value (a telemetry field with `alsoShadow`) was last written to the
   * shadow, keyed by the value's dotted path as listed in {@link SplitResult.reportedPaths}. Missing entries
   * mean "never": the minimum interval and maximum staleness then do not hold the value back.
   */
  lastReportedAt?: Readonly<Record<string, number>> | undefined;
  /** The current time, epoch milliseconds. */
  now: number;
}

/** How one report splits. */
export interface SplitResult {
  /**
   * The minimal `reported` patch for the shadow: merged into `lastReported` by the service's rules it yields
   * the new reported state, and it holds no value equal to the one already reported. Absent when nothing is due.
   */
  shadow?: JsonObject;
  /** Every telemetry-routed value of the report, nested as in the report. Absent when there is none. */
  telemetry?: JsonObject;
  /**
   * Dotted paths of gated values written into `shadow`: record `lastReportedAt[path] = now` for each once the
   * patch is sent (the agent does).
   */
  reportedPaths: string[];
  /** Dotted paths of gated values that changed but were held back by the deadband, interval or staleness. */
  withheldPaths: string[];
  /**
   * Earliest epoch millisecond at which a held-back value becomes due if it does not change again; split the
   * newest values again then (the agent schedules this), so that no change beyond the deadband waits longer
   * than the minimum interval even when the device stops reporting.
   */
  nextCheckAt?: number;
}

/** Per-field report rates for {@link SplitPolicy.estimate}: reports per hour, keyed by dotted path. */
export type ReportRates = Readonly<Record<string, number>>;

/** What {@link SplitPolicy.estimate} expects a policy to cost. */
export interface ShadowRateEstimate {
  /** Expected shadow versions per hour, summed over {@link ShadowRateEstimate.perField}. */
  versionsPerHour: number;
  /** Expected shadow versions per hour caused by each field of the rates. */
  perField: Record<string, number>;
  /** The budget the estimate was checked against, if any. */
  budgetVersionsPerHour: number | undefined;
  /** True when a budget is set and `versionsPerHour` exceeds it. */
  overBudget: boolean;
}

/** A compiled split policy. */
export interface SplitPolicy {
  /** The validated options. */
  readonly options: ResolvedSplitPolicyOptions;
  /**
   * Splits one report into its shadow patch and telemetry payload.
   *
   * @param values - the device's current values (a JSON object; `undefined` properties are ignored,
   *   `null` deletes a shadow key)
   * @param state - what was last reported, when, and the current time
   * @throws ShadowValidationError when `values` is not a JSON object (listing each non-JSON value's path)
   */
  split(values: JsonObject, state: SplitState): SplitResult;
  /**
   * Expected shadow versions per hour for the given report rates. Worst case, and exact for that case: every
   * report of a field carries a change beyond its deadband, reports of a field are evenly spaced, each field
   * is reported on its own, and held-back values are split again at {@link SplitResult.nextCheckAt} (the device
   * agent does). Reports that bundle several shadow fields cost one version per bundle, so a real device usually
   * costs less. A gated field reported `r` times an hour with minimum interval `m` ms costs
   * `min(r, 3_600_000 / m)` versions an hour: a change held back inside the interval is written when the
   * interval ends, not at the next report, so the shadow sees the field every `max(p, m)` ms for a report period
   * `p`. A caller that never re-checks writes it only at reports (every `p · ⌈m / p⌉` ms), which this bounds.
   *
   * @param rates - reports per hour per dotted path (a path is routed like a value at that path)
   * @param options - `budgetVersionsPerHour` overrides the policy's budget for this call
   * @throws ShadowValidationError when a rate is not a finite number ≥ 0
   */
  estimate(rates: ReportRates, options?: { budgetVersionsPerHour?: number }): ShadowRateEstimate;
  /** The route of a dotted path: the longest configured prefix's route, else `otherFields`. */
  routeOf(path: string): 'shadow' | 'telemetry';
  /** The telemetry topic of one thing: the template with `{thingName}` replaced. */
  telemetryTopicFor(thingName: string): string;
}

const HOUR_MS = 3_600_000;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Collects the paths of values that JSON cannot carry (NaN, Infinity, functions, class instances...). */
function collectNonJson(value: unknown, path: (string | number)[], issues: ValidationIssue[]): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) issues.push({ path, message: `${value} is not a finite number` });
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((element, index) => {
      collectNonJson(element, [...path, index], issues);
    });
    return;
  }
  if (isPlainObject(value)) {
    for (const key of Object.keys(value)) {
      if (value[key] !== undefined) collectNonJson(value[key], [...path, key], issues);
    }
    return;
  }
  issues.push({ path, message: `${typeof value} is not a JSON value` });
}

function getPath(root: JsonObject | undefined, segments: readonly string[]): JsonValue | undefined {
  let node: JsonValue | undefined = root;
  for (const segment of segments) {
    if (!isJsonObject(node) || !Object.hasOwn(node, segment)) return undefined;
    node = node[segment];
  }
  return node;
}

function setPath(root: JsonObject, segments: readonly string[], value: JsonValue): void {
  let node = root;
  for (let i = 0; i < segments.length - 1; i++) {
    const segment = segments[i] as string;
    let next = Object.hasOwn(node, segment) ? node[segment] : undefined;
    if (!isJsonObject(next)) {
      next = {};
      setOwn(node, segment, next);
    }
    node = next;
  }
  setOwn(node, segments[segments.length - 1] as string, value);
}

/** Sets an own key, including `__proto__` (an own key of parsed JSON that plain assignment would not create). */
function setOwn(object: JsonObject, key: string, value: JsonValue): void {
  if (key === '__proto__') {
    Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  } else object[key] = value;
}

/** Mutable accumulator of one split. */
interface SplitWork {
  shadowValues: JsonObject | undefined;
  telemetry: JsonObject | undefined;
  gated: string[][];
  withheldPaths: string[];
  nextCheckAt: number;
}

/**
 * The value without deletions of keys the shadow does not hold. By the service's rules `{"n":{"m":null}}`
 * with no stored `n` stores `n: {}`; a device saying "m is gone" means no such side effect, so a deletion of
 * an absent key is dropped, and so is an object left empty only by such drops (a reported `{}` stays).
 */
function withoutVoidDeletes(value: JsonValue, last: JsonValue | undefined): JsonValue | undefined {
  if (value === null) return last === undefined ? undefined : null;
  if (!isJsonObject(value)) return value;
  const keys = Object.keys(value);
  if (keys.length === 0) return value;
  const lastObject = isJsonObject(last) ? last : undefined;
  let out: JsonObject | undefined;
  for (const key of keys) {
    const child = value[key];
    if (child === undefined) continue;
    const kept = withoutVoidDeletes(
      child,
      lastObject !== undefined && Object.hasOwn(lastObject, key) ? lastObject[key] : undefined,
    );
    if (kept === undefined) continue;
    out ??= {};
    setOwn(out, key, kept);
  }
  return out;
}

/** Adds a value to what the shadow should hold after the report. */
function toShadow(value: JsonValue, segments: string[], state: SplitState, work: SplitWork): void {
  const kept = withoutVoidDeletes(value, getPath(state.lastReported, segments));
  if (kept === undefined) return;
  work.shadowValues ??= {};
  setPath(work.shadowValues, segments, kept);
}

/** Whether a gated value is due for the shadow now; records when it would become due otherwise. */
function gateIsOpen(
  gate: ResolvedShadowGate,
  value: JsonValue,
  last: JsonValue | undefined,
  lastAt: number | undefined,
  now: number,
  path: string,
  work: SplitWork,
): boolean {
  if (last === undefined) return value !== null; // first report (deleting an absent key is no change)
  if (jsonEqual(value, last)) return false;
  const elapsed = lastAt === undefined ? Number.POSITIVE_INFINITY : now - lastAt;
  const beyond =
    typeof value === 'number' && typeof last === 'number' ? Math.abs(value - last) > gate.deadband : true;
  const waitMs = beyond ? gate.minIntervalMs : gate.maxStalenessMs;
  if (elapsed >= waitMs) return true;
  work.withheldPaths.push(path);
  if (lastAt !== undefined && Number.isFinite(waitMs)) {
    work.nextCheckAt = Math.min(work.nextCheckAt, lastAt + waitMs);
  }
  return false;
}

/**
 * Compiles a topic-splitting policy.
 *
 * Routing: each value of a report is routed by the longest configured dotted path that is a prefix of its path,
 * else by `otherFields`. A configured path takes its value whole unless deeper paths are configured below it.
 * `'shadow'` values go to the shadow whenever they change; `'telemetry'` values go to the telemetry topic on
 * every report; `{ route: 'telemetry', alsoShadow }` values also go to the shadow when their gate opens.
 * Keys containing a dot cannot be configured on their own (the dot separates path segments).
 *
 * @param options - per-field routes, `otherFields`, telemetry topic template and version budget
 * @returns the compiled policy
 * @throws ShadowOptionsError naming the offending field when the options are invalid
 * @example
 * const policy = splitPolicy({
 *   telemetryTopic: 'my/things/{thingName}/state',
 *   fields: {
 *     power: 'shadow', mode: 'shadow', targetTemp: 'shadow',
 *     temperature: { route: 'telemetry', alsoShadow: { deadband: 0.5, minIntervalMs: 60_000 } },
 *     humidity: 'telemetry',
 *   },
 *   otherFields: 'telemetry',
 * });
 * const { shadow, telemetry } = policy.split({ power: 'on', temperature: 22.4, humidity: 41 }, { now: Date.now() });
 */
export function splitPolicy(options: SplitPolicyOptions = {}): SplitPolicy {
  const resolved = resolveSplitPolicyOptions(options);
  const root = buildRouteTable(resolved.fields, resolved.otherFields);

  function routeUnit(
    value: JsonValue,
    segments: string[],
    rule: ResolvedFieldRule,
    state: SplitState,
    work: SplitWork,
  ): void {
    if (rule.route === 'shadow') {
      toShadow(value, segments, state, work);
      return;
    }
    work.telemetry ??= {};
    setPath(work.telemetry, segments, value);
    if (rule.gate === undefined) return;
    const path = segments.join('.');
    const last = getPath(state.lastReported, segments);
    if (gateIsOpen(rule.gate, value, last, state.lastReportedAt?.[path], state.now, path, work)) {
      toShadow(value, segments, state, work);
      work.gated.push(segments);
    }
  }

  function walk(
    values: JsonObject,
    node: RouteNode | undefined,
    inherited: ResolvedFieldRule,
    prefix: string[],
    state: SplitState,
    work: SplitWork,
  ): void {
    for (const key of Object.keys(values)) {
      const value = values[key];
      if (value === undefined) continue;
      const child = node?.children.get(key);
      const rule = child?.rule ?? inherited;
      const segments = [...prefix, key];
      // Descend only where deeper paths are configured; elsewhere the value is routed whole.
      if (
        child !== undefined &&
        child.children.size > 0 &&
        isJsonObject(value) &&
        Object.keys(value).length > 0
      ) {
        walk(value, child, rule, segments, state, work);
      } else {
        routeUnit(value, segments, rule, state, work);
      }
    }
  }

  function split(values: JsonObject, state: SplitState): SplitResult {
    const issues: ValidationIssue[] = [];
    if (!isPlainObject(values)) issues.push({ path: [], message: 'a report must be a JSON object' });
    else collectNonJson(values, [], issues);
    if (issues.length > 0) {
      const list = issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
      throw new ShadowValidationError(`splitPolicy.split: the report is not JSON: ${list}`, { issues });
    }
    const work: SplitWork = {
      shadowValues: undefined,
      telemetry: undefined,
      gated: [],
      withheldPaths: [],
      nextCheckAt: Number.POSITIVE_INFINITY,
    };
    walk(values, root, root.rule as ResolvedFieldRule, [], state, work);

    const result: SplitResult = { reportedPaths: [], withheldPaths: work.withheldPaths };
    if (work.telemetry !== undefined) result.telemetry = work.telemetry;
    if (Number.isFinite(work.nextCheckAt)) result.nextCheckAt = work.nextCheckAt;
    if (work.shadowValues === undefined) return result;

    // The minimal patch is the diff between what the shadow holds and what it will hold once the report is
    // merged, by the service's own merge and diff: a value equal to the reported one never reaches the patch.
    const last = state.lastReported;
    const diff = diffSection(last, mergeSection(last, work.shadowValues));
    let patch: JsonObject | undefined;
    if (diff === null) {
      // Every reported key is deleted: spell it out key by key, the agent sends sections as objects.
      patch = {};
      for (const key of Object.keys(last ?? {})) patch[key] = null;
    } else {
      patch = diff;
    }
    if (patch === undefined || Object.keys(patch).length === 0) return result;
    result.shadow = patch;
    for (const segments of work.gated) {
      if (getPath(patch, segments) !== undefined) result.reportedPaths.push(segments.join('.'));
    }
    return result;
  }

  function estimate(rates: ReportRates, call: { budgetVersionsPerHour?: number } = {}): ShadowRateEstimate {
    const issues: ValidationIssue[] = [];
    const perField: Record<string, number> = {};
    let versionsPerHour = 0;
    for (const [path, rate] of Object.entries(rates)) {
      if (typeof rate !== 'number' || !Number.isFinite(rate) || rate < 0) {
        issues.push({ path: [path], message: `rate must be a finite number ≥ 0, got ${String(rate)}` });
        continue;
      }
      const rule = ruleFor(root, path);
      let versions = 0;
      if (rule.route === 'shadow') versions = rate;
      else if (rule.gate !== undefined) {
        // A value held back by the interval is written when the interval ends (the re-check at nextCheckAt),
        // not at the next report: with a change at every report the field reaches the shadow once per interval
        // when reports come faster, else at every report. Counting only reports (rate / ⌈m/p⌉) would undercount
        // by up to half: every 10 s with a 25 s interval is 144 versions/h, not 120.
        const minIntervalMs = rule.gate.minIntervalMs;
        versions = minIntervalMs > 0 ? Math.min(rate, HOUR_MS / minIntervalMs) : rate;
      }
      perField[path] = versions;
      versionsPerHour += versions;
    }
    if (issues.length > 0) {
      const list = issues.map((issue) => `${String(issue.path[0])}: ${issue.message}`).join('; ');
      throw new ShadowValidationError(`splitPolicy.estimate: invalid rates: ${list}`, { issues });
    }
    const budget = call.budgetVersionsPerHour ?? resolved.budgetVersionsPerHour;
    if (budget !== undefined && (typeof budget !== 'number' || !Number.isFinite(budget) || budget < 0)) {
      throw new ShadowOptionsError(
        `splitPolicy.estimate: budgetVersionsPerHour must be a finite number ≥ 0, got ${String(budget)}`,
      );
    }
    return {
      versionsPerHour,
      perField,
      budgetVersionsPerHour: budget,
      overBudget: budget !== undefined && versionsPerHour > budget,
    };
  }

  return {
    options: resolved,
    split,
    estimate,
    routeOf: (path) => ruleFor(root, path).route,
    telemetryTopicFor: (thingName) => resolved.telemetryTopic.replaceAll('{thingName}', thingName),
  };
}
