/**
 * Consumes the split telemetry topic (`my/things/<thing>/state`, where the device agent publishes the values
 * its split policy keeps out of the shadow) through an IoT rule and writes them as NDJSON, partitioned for
 * Athena / Glue: `thing=<thing>/date=YYYY-MM-DD/hour=HH/<id>.ndjson`.
 *
 * The rule: `SELECT *, topic(3) AS thing_name, timestamp() AS received_at FROM 'my/things/+/state'`.
 * The partition is the service's receive time (UTC), not the device's clock, which may be wrong. `<id>` is the
 * Lambda request id: AWS retries an asynchronous invocation with the same id, so a retry replaces its object
 * instead of duplicating the record. One object per message keeps the example simple; at high rates put
 * Kinesis Data Firehose between the rule and S3 instead.
 */
import { randomUUID } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { S3Client } from '@aws-sdk/client-s3';
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { lazily, requireEnvironment } from './environment.js';
import { flushMetrics } from './flush-metrics.js';
import { type RecordSink, s3RecordSink } from './record-sink.js';

/** The rule the deploy template and the local system run on the split telemetry topic. */
export const TELEMETRY_RULE_SQL =
  "SELECT *, topic(3) AS thing_name, timestamp() AS received_at FROM 'my/things/+/state'";

/** The rule event: the device agent's telemetry message plus the rule's `thing_name` and `received_at`. */
export const telemetryRuleEventSchema = z.looseObject({
  thing_name: z
    .string()
    .min(1)
    .regex(/^[a-zA-Z0-9:_-]+$/, 'a thing name (letters, digits, : _ -)'),
  received_at: z.number().int().nonnegative(),
  state: z.record(z.string(), z.unknown()),
  timestamp: z.number().optional(),
});

/** One line of the NDJSON output. */
export interface TelemetryRecord {
  thingName: string;
  /** Service receive time, epoch milliseconds. */
  receivedAt: number;
  /** The device's own timestamp, when it sent one. */
  deviceTimestamp?: number;
  /** The telemetry values. */
  state: Record<string, unknown>;
}

/** What {@link createTelemetrySinkHandler} needs. */
export interface TelemetrySinkDependencies {
  /** Where records go. */
  sink: RecordSink;
  /** Object ids when the invocation has no Lambda context. @defaultValue `crypto.randomUUID` */
  newId?: () => string;
  /** @defaultValue a Powertools logger for service `telemetry-sink` */
  logger?: Logger;
  /** @defaultValue none */
  metrics?: Metrics;
}

/** The rule action's handler; resolves to the key written (undefined for a dropped malformed event). */
export type TelemetrySinkHandler = (
  event: unknown,
  context?: Pick<Context, 'awsRequestId'>,
) => Promise<string | undefined>;

const two = (n: number) => String(n).padStart(2, '0');

/**
 * The object key of a record: `thing=<thing>/date=YYYY-MM-DD/hour=HH/<id>.ndjson` (UTC).
 *
 * @param thingName - the thing
 * @param receivedAt - epoch milliseconds
 * @param id - unique per message
 */
export function telemetryObjectKey(thingName: string, receivedAt: number, id: string): string {
  const at = new Date(receivedAt);
  const date = `${at.getUTCFullYear()}-${two(at.getUTCMonth() + 1)}-${two(at.getUTCDate())}`;
  return `thing=${thingName}/date=${date}/hour=${two(at.getUTCHours())}/${id}.ndjson`;
}

/**
 * Creates the handler on its dependencies.
 *
 * @param dependencies - see {@link TelemetrySinkDependencies}
 * @example
 * ```ts
 * const handler = createTelemetrySinkHandler({ sink: directoryRecordSink('./telemetry') });
 * await handler({ thing_name: 'aircon-1', received_at: Date.now(), state: { temperature: 23.5 } });
 * ```
 */
export function createTelemetrySinkHandler(dependencies: TelemetrySinkDependencies): TelemetrySinkHandler {
  const { sink, metrics } = dependencies;
  const logger = dependencies.logger ?? new Logger({ serviceName: 'telemetry-sink' });
  const newId = dependencies.newId ?? randomUUID;
  return async (event, context) => {
    try {
      const parsed = telemetryRuleEventSchema.safeParse(event);
      if (!parsed.success) {
        const issues = parsed.error.issues.map(
          (issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`,
        );
        // Throwing makes AWS retry, which cannot fix a malformed message: log it and drop it instead.
        logger.error('dropping a malformed telemetry event', { issues });
        metrics?.addMetric('TelemetryDropped', MetricUnit.Count, 1);
        return undefined;
      }
      const { thing_name: thingName, received_at: receivedAt, state, timestamp } = parsed.data;
      const record: TelemetryRecord = {
        thingName,
        receivedAt,
        ...(timestamp === undefined ? {} : { deviceTimestamp: timestamp }),
        state,
      };
      const key = telemetryObjectKey(thingName, receivedAt, context?.awsRequestId ?? newId());
      await sink.put(key, `${JSON.stringify(record)}\n`);
      metrics?.addMetric('TelemetryRecords', MetricUnit.Count, 1);
      logger.debug('telemetry written', { thingName, key });
      return key;
    } finally {
      flushMetrics(metrics);
    }
  };
}

const lazyHandler = lazily(() =>
  createTelemetrySinkHandler({
    sink: s3RecordSink(new S3Client({}), requireEnvironment('BUCKET_NAME')),
    logger: new Logger({ serviceName: 'telemetry-sink' }),
    metrics: new Metrics({ namespace: 'ShadowSync', serviceName: 'telemetry-sink' }),
  }),
);

/** The Lambda entry point (reads `BUCKET_NAME` on first use). */
export const handler: TelemetrySinkHandler = async (event, context) => lazyHandler()(event, context);
