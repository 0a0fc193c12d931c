/**
 * Target of the illegal-state IoT rule: records an alert when a device reports `someIllegalState: true`,
 * idempotently per device and shadow version.
 *
 * Which rule (decided here): the seed's rule selects from `$aws/things/+/shadow/update`, which carries the
 * device's update REQUEST: it has no shadow version unless the device sent one, and it is seen even when the
 * service rejects the update. The deploy template therefore uses the same condition on
 * `$aws/things/+/shadow/update/documents`, which the service publishes only for accepted updates and which
 * carries the committed version:
 *
 * `SELECT *, topic(3) AS device_id FROM '$aws/things/+/shadow/update/documents'
 *  WHERE current.state.reported.someIllegalState = True`
 *
 * An alert is keyed `v<current.version>`, so a redelivered event never records twice. By default it is
 * recorded only when the illegal state is ENTERED (the previous document did not have it), so a device that
 * stays illegal while reporting other fields does not raise one alert per version;
 * `alertOnEveryVersion: true` records every matching version.
 *
 * The seed's request-shaped event is accepted too (for its original rule): its key is the request's
 * `clientToken`, else the version it expected, else a SHA-256 of its `state` (identical illegal reports
 * without a token or version count as one alert).
 */
import { createHash } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { z } from 'zod';
import { type AlertRecord, type AlertStore, dynamoAlertStore } from './alert-store.js';
import { lazily, requireEnvironment } from './environment.js';
import { flushMetrics } from './flush-metrics.js';

/** The rule the deploy template and the local system run: the seed's condition on `update/documents`. */
export const ILLEGAL_STATE_RULE_SQL =
  "SELECT *, topic(3) AS device_id FROM '$aws/things/+/shadow/update/documents' WHERE current.state.reported.someIllegalState = True";

/** The seed's original rule on the device's update request; the handler accepts its events too. */
export const SEED_ILLEGAL_STATE_RULE_SQL =
  "SELECT *, topic(3) as device_id FROM '$aws/things/+/shadow/update' WHERE state.reported.someIllegalState = True";

const reportedSchema = z.looseObject({ someIllegalState: z.unknown().optional() });
const snapshotSchema = z.looseObject({
  state: z.looseObject({ reported: reportedSchema.optional() }),
  version: z.number().int().nonnegative(),
});

/** The rule event from `update/documents` (`SELECT *, topic(3) AS device_id`). */
export const documentsRuleEventSchema = z.looseObject({
  device_id: z.string().min(1),
  previous: snapshotSchema.nullable(),
  current: snapshotSchema,
  timestamp: z.number(),
});

/** The seed's rule event from `update` (the device's request, `SELECT *, topic(3) as device_id`). */
export const updateRequestRuleEventSchema = z.looseObject({
  device_id: z.string().min(1),
  state: z.looseObject({ reported: reportedSchema }),
  version: z.number().int().nonnegative().optional(),
  clientToken: z.string().optional(),
});

/** Either rule event. */
export type IllegalStateRuleEvent =
  | z.infer<typeof documentsRuleEventSchema>
  | z.infer<typeof updateRequestRuleEventSchema>;

/** What {@link createIllegalStateAlertHandler} needs. */
export interface IllegalStateAlertDependencies {
  /** Where alerts go. */
  store: AlertStore;
  /** Record every matching version, not only the one that entered the illegal state. @defaultValue false */
  alertOnEveryVersion?: boolean;
  /** Epoch milliseconds, for request-shaped events (documents events carry their own time). @defaultValue Date.now */
  now?: () => number;
  /** @defaultValue a Powertools logger for service `illegal-state-alert` */
  logger?: Logger;
  /** @defaultValue none */
  metrics?: Metrics;
}

/** What one invocation did. */
export interface IllegalStateAlertResult {
  /** `recorded`: a new alert; `duplicate`: already recorded; `ignored`: not an entry into the illegal state. */
  outcome: 'recorded' | 'duplicate' | 'ignored';
  deviceId: string;
  alertKey?: string;
}

/** The rule action's handler. */
export type IllegalStateAlertHandler = (event: unknown) => Promise<IllegalStateAlertResult>;

const isIllegal = (reported: { someIllegalState?: unknown } | undefined) =>
  reported?.someIllegalState === true;

function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${stableStringify((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Turns a rule event into the alert to record, or `undefined` when it is not one.
 *
 * @param event - the rule's SELECT result
 * @param options - `alertOnEveryVersion` and the clock for request-shaped events
 * @throws Error naming the problems when the event has neither shape
 */
export function alertFromRuleEvent(
  event: unknown,
  options: { alertOnEveryVersion: boolean; now: () => number },
): { deviceId: string; alert: AlertRecord | undefined } {
  const documents = documentsRuleEventSchema.safeParse(event);
  if (documents.success) {
    const { device_id: deviceId, previous, current, timestamp } = documents.data;
    const reported = current.state.reported;
    if (!isIllegal(reported)) return { deviceId, alert: undefined };
    if (!options.alertOnEveryVersion && previous !== null && isIllegal(previous.state.reported)) {
      return { deviceId, alert: undefined };
    }
    return {
      deviceId,
      alert: {
        deviceId,
        alertKey: `v${current.version}`,
        version: current.version,
        reported: { ...reported },
        observedAt: timestamp * 1000,
      },
    };
  }
  const request = updateRequestRuleEventSchema.safeParse(event);
  if (request.success) {
    const { device_id: deviceId, state, version, clientToken } = request.data;
    if (!isIllegal(state.reported)) return { deviceId, alert: undefined };
    const alertKey =
      clientToken !== undefined
        ? `token:${clientToken}`
        : version !== undefined
          ? `expected-v${version}`
          : `sha256:${createHash('sha256').update(stableStringify(state)).digest('hex')}`;
    return {
      deviceId,
      alert: { deviceId, alertKey, reported: { ...state.reported }, observedAt: options.now() },
    };
  }
  const issues = documents.error.issues.map(
    (issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`,
  );
  throw new Error(
    `illegal-state-alert: the event is neither an update/documents nor an update rule event (${issues.join('; ')})`,
  );
}

/**
 * Creates the handler on its dependencies.
 *
 * @param dependencies - see {@link IllegalStateAlertDependencies}
 * @example
 * ```ts
 * const store = memoryAlertStore();
 * const handler = createIllegalStateAlertHandler({ store });
 * await handler(ruleEvent); // { outcome: 'recorded', deviceId: 'aircon-7', alertKey: 'v12' }
 * ```
 */
export function createIllegalStateAlertHandler(
  dependencies: IllegalStateAlertDependencies,
): IllegalStateAlertHandler {
  const { store, metrics } = dependencies;
  const logger = dependencies.logger ?? new Logger({ serviceName: 'illegal-state-alert' });
  const options = {
    alertOnEveryVersion: dependencies.alertOnEveryVersion ?? false,
    now: dependencies.now ?? Date.now,
  };
  return async (event) => {
    try {
      const { deviceId, alert } = alertFromRuleEvent(event, options);
      if (alert === undefined) return { outcome: 'ignored', deviceId };
      const recorded = await store.record(alert);
      if (recorded) {
        metrics?.addMetric('IllegalStateAlerts', MetricUnit.Count, 1);
        logger.warn('illegal state reported', { deviceId, alertKey: alert.alertKey, version: alert.version });
      } else {
        logger.info('alert already recorded', { deviceId, alertKey: alert.alertKey });
      }
      return { outcome: recorded ? 'recorded' : 'duplicate', deviceId, alertKey: alert.alertKey };
    } finally {
      flushMetrics(metrics);
    }
  };
}

const lazyHandler = lazily(() =>
  createIllegalStateAlertHandler({
    store: dynamoAlertStore(new DynamoDBClient({}), requireEnvironment('TABLE_NAME')),
    logger: new Logger({ serviceName: 'illegal-state-alert' }),
    metrics: new Metrics({ namespace: 'ShadowSync', serviceName: 'illegal-state-alert' }),
  }),
);

/** The Lambda entry point (reads `TABLE_NAME` on first use). */
export const handler: IllegalStateAlertHandler = async (event) => lazyHandler()(event);
