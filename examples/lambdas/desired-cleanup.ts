/**
 * On `update/documents`, removes the `desired` values the device has already reported (equal values), so
 * the service stops publishing a delta for them and the desired section does not grow forever.
 *
 * The rule: `SELECT *, topic(3) AS thing_name FROM '$aws/things/+/shadow/update/documents'`.
 *
 * Safety: the removal is a versioned `update` whose intent recomputes the settled keys on the document it
 * writes against, so if an app wrote a newer desired value in the meantime the write conflicts, the intent
 * re-runs on the new document, and the newer value (no longer equal to reported) is kept. The event's
 * document is only used to skip the call when nothing is settled: the cleanup's own write produces another
 * documents message, which finds nothing settled and sends nothing, so there is no loop.
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

/** The rule event: an `update/documents` body plus `thing_name` (and `shadow_name` for a named-shadow rule). */
export const documentsCleanupEventSchema = z.looseObject({
  thing_name: z.string().min(1),
  shadow_name: z.string().min(1).optional(),
  current: z.looseObject({
    state: z.looseObject({ desired: jsonObject.optional(), reported: jsonObject.optional() }),
    version: z.number().int().nonnegative(),
  }),
});

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The update section that removes every desired value equal to its reported value: `null` for a key whose
 * whole value is reported (for an object: each of its desired values is, the device may report more), a
 * nested patch for an object only partly reported. Arrays are whole values (as in the service's delta).
 *
 * @param desired - the desired section
 * @param reported - the reported section
 * @returns the patch, or `undefined` when no desired value is settled
 */
export function settledDesiredPatch(
  desired: JsonObject | undefined,
  reported: JsonObject | undefined,
): JsonObject | undefined {
  if (desired === undefined || reported === undefined) return undefined;
  let patch: JsonObject | undefined;
  for (const [key, wanted] of Object.entries(desired)) {
    if (!Object.hasOwn(reported, key)) continue;
    const actual = reported[key] as JsonValue;
    let change: JsonValue | undefined;
    if (jsonEqual(wanted, actual)) change = null;
    else if (isObject(wanted) && isObject(actual)) {
      change = settledDesiredPatch(wanted, actual);
      // Every desired leaf below is reported: remove the whole key rather than leave an empty `{}` behind.
      if (
        change !== undefined &&
        Object.values(change).every((v) => v === null) &&
        Object.keys(change).length === Object.keys(wanted).length
      )
        change = null;
    }
    if (change !== undefined) {
      patch ??= {};
      patch[key] = change;
    }
  }
  return patch;
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
  /** `cleared`: a write removed settled values; `nothing-settled`: no write needed; `gone`: the shadow no longer exists. */
  outcome: 'cleared' | 'nothing-settled' | 'gone';
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
      const { thing_name: thingName, shadow_name: shadowName, current } = parsed.data;
      const seen = current.state as { desired?: JsonObject; reported?: JsonObject };
      if (settledDesiredPatch(seen.desired, seen.reported) === undefined) {
        return { outcome: 'nothing-settled', thingName, version: current.version, keys: [] };
      }
      let keys: string[] = [];
      const handle = shadows.shadow(thingName, shadowName);
      const result = await handle.update((document) => {
        keys = [];
        if (document === undefined) return undefined;
        const patch = settledDesiredPatch(document.state.desired, document.state.reported);
        if (patch === undefined) return undefined;
        keys = Object.keys(patch);
        return { desired: patch };
      });
      if (result.version === undefined) return { outcome: 'gone', thingName, keys: [] };
      if (result.skipped) return { outcome: 'nothing-settled', thingName, version: result.version, keys: [] };
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
