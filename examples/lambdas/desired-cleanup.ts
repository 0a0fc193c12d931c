/**
 * On `update/documents`, removes the `desired` values the triggering update's report has just delivered, so
 * the service stops publishing a delta for them and the desired section does not grow with every change.
 *
 * The rule: `SELECT *, topic(3) AS thing_name FROM '$aws/things/+/shadow/update/documents'`.
 *
 * Why "equal to reported" is not enough: a desired value equal to the reported one may be a NEW wish that the
 * device has not seen yet. The app turns a unit on and, while the unit is still applying `on`, off again:
 * `reported.power` still holds the old `off`, so the new desired `off` equals it. Removing it loses it: the
 * unit then reports `on`, and no delta is left to turn it off (the demo's lost-update check finds this within
 * seconds under load).
 *
 * The rule here: a desired value is settled only by the update that CHANGED the reported value to it
 * (`previous.state.reported` differs from `current.state.reported` at that key; for nested objects, at that
 * leaf), so the device's report came after the wish and delivered it. The removal is a versioned write pinned
 * to `current.version`: the intent returns nothing on any other version, so when the app (or anyone) wrote
 * since, the attempt ends (`superseded`) instead of re-deciding on a document the report no longer describes;
 * that newer write produces its own documents message, which this rule judges in turn.
 *
 * What is left: a desired value equal to a reported value that no report changed (the app asked for what the
 * unit already had, or the report that delivered it lost the race to another write). It causes no delta, so
 * the device is not disturbed; it stays until a later report changes that reported value to it, or the app
 * writes the key again. If the unit later changes the value by itself, the delta brings it back to that
 * desired value, exactly as for any wish it has not applied yet.
 *
 * No loop: the cleanup's own write changes only `desired`, so its documents message shows no reported value
 * changed, settles nothing, and sends nothing.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { z } from 'zod';
import { type JsonObject, type JsonValue, jsonEqual, type ShadowClient } from '../../src/index.js';
import { lazily } from './environment.js';
import { flushMetrics } from './flush-metrics.js';
import { shadowsFromEnvironment } from './shadows-from-environment.js';

/** The rule the deploy template and the local system run. */
export const DESIRED_CLEANUP_RULE_SQL =
  "SELECT *, topic(3) AS thing_name FROM '$aws/things/+/shadow/update/documents'";

const jsonObject = z.record(z.string(), z.unknown());

const documentSnapshot = z.looseObject({
  state: z.looseObject({ desired: jsonObject.optional(), reported: jsonObject.optional() }),
  version: z.number().int().nonnegative(),
});

/**
 * The rule event: an `update/documents` body plus `thing_name` (and `shadow_name` for a named-shadow rule).
 * `previous` is required (`null` when the update created the shadow): `SELECT *` always carries it, and without
 * it the handler could not tell which reported values the update changed.
 */
export const documentsCleanupEventSchema = z.looseObject({
  thing_name: z.string().min(1),
  shadow_name: z.string().min(1).optional(),
  previous: documentSnapshot.nullable(),
  current: documentSnapshot,
});

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The update section that removes every desired value the triggering update delivered: equal to its reported
 * value, which that update changed (it differs from, or was absent in, `before`). `null` for a key whose whole
 * desired value is settled (for an object: each of its desired leaves is, the device may report more), a
 * nested patch for an object only partly settled. Arrays are whole values (as in the service's delta).
 *
 * A desired value equal to an unchanged reported value is not settled: it may be a wish the device has not
 * seen yet (see the module comment).
 *
 * @param desired - the desired section after the update
 * @param reported - the reported section after the update
 * @param before - the reported section before the update (`undefined` when there was none: every reported
 *   value is then new)
 * @returns the patch, or `undefined` when no desired value is settled
 */
export function settledDesiredPatch(
  desired: JsonObject | undefined,
  reported: JsonObject | undefined,
  before: JsonObject | undefined,
): JsonObject | undefined {
  if (desired === undefined || reported === undefined) return undefined;
  let patch: JsonObject | undefined;
  for (const [key, wanted] of Object.entries(desired)) {
    if (!Object.hasOwn(reported, key)) continue;
    const prior = before !== undefined && Object.hasOwn(before, key) ? (before[key] as JsonValue) : undefined;
    const change = settledValue(wanted, reported[key] as JsonValue, prior);
    if (change !== undefined) {
      patch ??= {};
      patch[key] = change;
    }
  }
  return patch;
}

/** The patch of one desired value: `null` (settled whole), a nested patch, or `undefined` (keep it). */
function settledValue(
  wanted: JsonValue,
  actual: JsonValue,
  prior: JsonValue | undefined,
): JsonValue | undefined {
  if (isObject(wanted) && isObject(actual) && Object.keys(wanted).length > 0) {
    // Leaf by leaf: a previous value that was not an object means every leaf below is new.
    const change = settledDesiredPatch(wanted, actual, isObject(prior) ? prior : undefined);
    // Every desired leaf below is settled: remove the whole key rather than leave an empty `{}` behind.
    if (
      change !== undefined &&
      Object.values(change).every((v) => v === null) &&
      Object.keys(change).length === Object.keys(wanted).length
    )
      return null;
    return change;
  }
  if (!jsonEqual(wanted, actual)) return undefined;
  return prior !== undefined && jsonEqual(prior, actual) ? undefined : null;
}

/** What {@link createDesiredCleanupHandler} needs. */
export interface DesiredCleanupDependencies {
  /** Writes the shadows. */
  shadows: ShadowClient;
  /** @defaultValue a Powertools logger for service `desired-cleanup` */
  logger?: Logger;
  /** @defaultValue none */
  metrics?: Metrics;
}

/** What one invocation did. */
export interface DesiredCleanupResult {
  /**
   * `cleared`: a write removed settled values; `nothing-settled`: the update delivered no desired value, no
   * write needed; `superseded`: the shadow moved past the event's version before the write, nothing written
   * (the newer version's own documents message is judged in turn); `gone`: the shadow no longer exists.
   */
  outcome: 'cleared' | 'nothing-settled' | 'superseded' | 'gone';
  thingName: string;
  /** The shadow's version after the call, when it exists. */
  version?: number;
  /** The top-level desired keys the write touched. */
  keys: string[];
}

/** The rule action's handler. */
export type DesiredCleanupHandler = (event: unknown) => Promise<DesiredCleanupResult>;

/**
 * Creates the handler on its dependencies.
 *
 * @param dependencies - see {@link DesiredCleanupDependencies}
 * @throws from the handler: Error naming what is wrong with a malformed event; the update engine's errors
 *   (AWS then retries the invocation)
 * @example
 * ```ts
 * const handler = createDesiredCleanupHandler({ shadows });
 * await handler(documentsEvent); // { outcome: 'cleared', thingName: 'aircon-1', version: 9, keys: ['power'] }
 * ```
 */
export function createDesiredCleanupHandler(dependencies: DesiredCleanupDependencies): DesiredCleanupHandler {
  const { shadows, metrics } = dependencies;
  const logger = dependencies.logger ?? new Logger({ serviceName: 'desired-cleanup' });
  return async (event) => {
    try {
      const parsed = documentsCleanupEventSchema.safeParse(event);
      if (!parsed.success) {
        const issues = parsed.error.issues.map(
          (issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`,
        );
        throw new Error(`desired-cleanup: not an update/documents rule event (${issues.join('; ')})`);
      }
      const { thing_name: thingName, shadow_name: shadowName, previous, current } = parsed.data;
      const before = previous?.state.reported as JsonObject | undefined;
      const seen = current.state as { desired?: JsonObject; reported?: JsonObject };
      if (settledDesiredPatch(seen.desired, seen.reported, before) === undefined) {
        return { outcome: 'nothing-settled', thingName, version: current.version, keys: [] };
      }
      let keys: string[] = [];
      let superseded = false;
      const handle = shadows.shadow(thingName, shadowName);
      const result = await handle.update((document) => {
        keys = [];
        superseded = false;
        if (document === undefined) return undefined;
        // Pinned to the event's version: on any other document the report no longer tells what was delivered.
        if (document.version !== current.version) {
          superseded = true;
          return undefined;
        }
        const patch = settledDesiredPatch(document.state.desired, document.state.reported, before);
        if (patch === undefined) return undefined;
        keys = Object.keys(patch);
        return { desired: patch };
      });
      if (result.version === undefined) return { outcome: 'gone', thingName, keys: [] };
      if (result.skipped) {
        if (superseded) logger.debug('shadow moved past the event', { thingName, event: current.version });
        return {
          outcome: superseded ? 'superseded' : 'nothing-settled',
          thingName,
          version: result.version,
          keys: [],
        };
      }
      metrics?.addMetric('DesiredKeysCleared', MetricUnit.Count, keys.length);
      logger.info('settled desired values removed', { thingName, keys, version: result.version });
      return { outcome: 'cleared', thingName, version: result.version, keys };
    } finally {
      flushMetrics(metrics);
    }
  };
}

const lazyHandler = lazily(() =>
  createDesiredCleanupHandler({
    shadows: shadowsFromEnvironment(),
    logger: new Logger({ serviceName: 'desired-cleanup' }),
    metrics: new Metrics({ namespace: 'ShadowSync', serviceName: 'desired-cleanup' }),
  }),
);

/** The Lambda entry point (reads `IOT_DATA_ENDPOINT` on first use). */
export const handler: DesiredCleanupHandler = async (event) => lazyHandler()(event);
