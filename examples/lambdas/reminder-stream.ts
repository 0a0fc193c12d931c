/**
 * The reminder flow's entry: a DynamoDB Streams handler that starts one state machine execution per new
 * reminder item. Items live in the system's single table (`pk`, `sk`); a reminder is an item with
 * `type = 'reminder'`, `reminderId`, `thingName`, `message`, `intervalSeconds` and `repeat` (how many times to
 * remind). Other items (alerts) and other events (MODIFY, REMOVE) are skipped; the template also filters them
 * at the event source, this check keeps the handler correct without that filter.
 *
 * The execution is named after the reminder, so a stream record delivered twice starts it once
 * (`ExecutionAlreadyExists` is treated as done). A failed start is reported per record
 * (`ReportBatchItemFailures`), so it is retried without replaying the batch; a malformed reminder item is
 * logged and skipped (replaying it cannot fix it).
 */

import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { AttributeValue, DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { z } from 'zod';
import { lazily, requireEnvironment } from './environment.js';
import { flushMetrics } from './flush-metrics.js';

/** A reminder as the state machine receives it. */
export const reminderSchema = z.strictObject({
  reminderId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, '1-64 letters, digits, _ or -'),
  thingName: z.string().min(1).max(128),
  message: z.string().min(1).max(256),
  intervalSeconds: z.number().int().min(1).max(31_536_000),
  repeat: z.number().int().min(1).max(1000),
});

/** A validated reminder. */
export type Reminder = z.infer<typeof reminderSchema>;

/** Starts a state machine execution; in AWS `StartExecution`, locally the reminder runner. */
export interface ExecutionStarter {
  /**
   * Starts the execution `name` with `input`.
   *
   * @returns false when an execution with that name already exists
   */
  start(name: string, input: Reminder): Promise<boolean>;
}

/**
 * An {@link ExecutionStarter} on Step Functions.
 *
 * @param client - a Step Functions client
 * @param stateMachineArn - the reminder state machine (`STATE_MACHINE_ARN`)
 */
export function stepFunctionsStarter(client: SFNClient, stateMachineArn: string): ExecutionStarter {
  return {
    async start(name, input) {
      try {
        await client.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }));
        return true;
      } catch (error) {
        if ((error as { name?: unknown }).name === 'ExecutionAlreadyExists') return false;
        throw error;
      }
    },
  };
}

/** Reads the plain attribute values of a stream image (S, N, BOOL); others are left out. */
function plainImage(image: Record<string, AttributeValue> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(image ?? {})) {
    if (value.S !== undefined) out[key] = value.S;
    else if (value.N !== undefined) out[key] = Number(value.N);
    else if (value.BOOL !== undefined) out[key] = value.BOOL;
  }
  return out;
}

/**
 * The reminder a stream record creates, `undefined` when the record is not a new reminder.
 *
 * @param record - one DynamoDB stream record (NEW_IMAGE or NEW_AND_OLD_IMAGES)
 * @throws Error naming the problems when a new reminder item is malformed
 */
export function reminderFromRecord(record: DynamoDBRecord): Reminder | undefined {
  if (record.eventName !== 'INSERT') return undefined;
  const item = plainImage(record.dynamodb?.NewImage);
  if (item.type !== 'reminder') return undefined;
  const parsed = reminderSchema.safeParse({
    reminderId: item.reminderId,
    thingName: item.thingName,
    message: item.message,
    intervalSeconds: item.intervalSeconds,
    repeat: item.repeat,
  });
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`reminder item ${String(item.pk)} is malformed: ${issues.join('; ')}`);
  }
  return parsed.data;
}

/** What {@link createReminderStreamHandler} needs. */
export interface ReminderStreamDependencies {
  starter: ExecutionStarter;
  /** @defaultValue a Powertools logger for service `reminder-stream` */
  logger?: Logger;
  /** @defaultValue none */
  metrics?: Metrics;
}

/** The stream handler. */
export type ReminderStreamHandler = (event: DynamoDBStreamEvent) => Promise<DynamoDBBatchResponse>;

/**
 * Creates the handler on its dependencies.
 *
 * @param dependencies - see {@link ReminderStreamDependencies}
 * @example
 * ```ts
 * const handler = createReminderStreamHandler({ starter: stepFunctionsStarter(new SFNClient({}), arn) });
 * const { batchItemFailures } = await handler(streamEvent);
 * ```
 */
export function createReminderStreamHandler(dependencies: ReminderStreamDependencies): ReminderStreamHandler {
  const { starter, metrics } = dependencies;
  const logger = dependencies.logger ?? new Logger({ serviceName: 'reminder-stream' });
  return async (event) => {
    const batchItemFailures: DynamoDBBatchResponse['batchItemFailures'] = [];
    try {
      for (const record of event.Records) {
        let reminder: Reminder | undefined;
        try {
          reminder = reminderFromRecord(record);
        } catch (error) {
          // Replaying a malformed item cannot fix it: log it and move on.
          logger.error('skipping a malformed reminder', { error: String(error) });
          metrics?.addMetric('RemindersMalformed', MetricUnit.Count, 1);
          continue;
        }
        if (reminder === undefined) continue;
        try {
          const started = await starter.start(`reminder-${reminder.reminderId}`, reminder);
          metrics?.addMetric(started ? 'RemindersStarted' : 'RemindersAlreadyStarted', MetricUnit.Count, 1);
          logger.info(started ? 'reminder started' : 'reminder already started', {
            reminderId: reminder.reminderId,
          });
        } catch (error) {
          logger.error('starting a reminder failed', {
            error: String(error),
            sequence: record.dynamodb?.SequenceNumber,
          });
          const itemIdentifier = record.dynamodb?.SequenceNumber;
          if (itemIdentifier !== undefined) batchItemFailures.push({ itemIdentifier });
        }
      }
      return { batchItemFailures };
    } finally {
      flushMetrics(metrics);
    }
  };
}

const lazyHandler = lazily(() =>
  createReminderStreamHandler({
    starter: stepFunctionsStarter(new SFNClient({}), requireEnvironment('STATE_MACHINE_ARN')),
    logger: new Logger({ serviceName: 'reminder-stream' }),
    metrics: new Metrics({ namespace: 'ShadowSync', serviceName: 'reminder-stream' }),
  }),
);

/** The Lambda entry point (reads `STATE_MACHINE_ARN` on first use). */
export const handler: ReminderStreamHandler = async (event) => lazyHandler()(event);
