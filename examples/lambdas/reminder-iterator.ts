/**
 * The reminder state machine's Task: delivers one reminder to the thing and counts down. It writes the
 * reminder into the shadow's `desired.reminder` with a blind `merge` (it owns that key alone, so it needs no
 * version and cannot conflict with the app's or the device's writes); the device sees it as a delta, shows it
 * and reports it, and `desired-cleanup` then removes it from `desired`.
 *
 * Input and output are the execution state: `{ reminderId, thingName, message, intervalSeconds, remaining,
 * sent, done }`. The Choice state loops back to the Wait state until `done`.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { z } from 'zod';
import type { ShadowClient } from '../../src/index.js';
import { lazily } from './environment.js';
import { flushMetrics } from './flush-metrics.js';
import { shadowsFromEnvironment } from './shadows-from-environment.js';

/** The execution state the Pass state builds and each iteration passes on. */
export const reminderStateSchema = z.looseObject({
  reminderId: z.string().min(1),
  thingName: z.string().min(1),
  message: z.string(),
  intervalSeconds: z.number().int().positive(),
  remaining: z.number().int().nonnegative(),
  sent: z.number().int().nonnegative(),
  done: z.boolean(),
});

/** The execution state. */
export type ReminderState = z.infer<typeof reminderStateSchema>;

/** What {@link createReminderIteratorHandler} needs. */
export interface ReminderIteratorDependencies {
  shadows: ShadowClient;
  /** Epoch milliseconds written with each reminder. @defaultValue Date.now */
  now?: () => number;
  /** @defaultValue a Powertools logger for service `reminder-iterator` */
  logger?: Logger;
  /** @defaultValue none */
  metrics?: Metrics;
}

/** The Task's handler. */
export type ReminderIteratorHandler = (event: unknown) => Promise<ReminderState>;

/**
 * Creates the handler on its dependencies.
 *
 * @param dependencies - see {@link ReminderIteratorDependencies}
 * @throws from the handler: Error naming what is wrong with the state; the update engine's errors (the state
 *   machine's Retry then retries the Task)
 * @example
 * ```ts
 * const iterate = createReminderIteratorHandler({ shadows });
 * const next = await iterate({ reminderId: 'r1', thingName: 'aircon-1', message: 'filter', intervalSeconds: 60,
 *   remaining: 2, sent: 0, done: false }); // { ..., remaining: 1, sent: 1, done: false }
 * ```
 */
export function createReminderIteratorHandler(
  dependencies: ReminderIteratorDependencies,
): ReminderIteratorHandler {
  const { shadows, metrics } = dependencies;
  const now = dependencies.now ?? Date.now;
  const logger = dependencies.logger ?? new Logger({ serviceName: 'reminder-iterator' });
  return async (event) => {
    try {
      const parsed = reminderStateSchema.safeParse(event);
      if (!parsed.success) {
        const issues = parsed.error.issues.map(
          (issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`,
        );
        throw new Error(`reminder-iterator: invalid execution state (${issues.join('; ')})`);
      }
      const state = parsed.data;
      if (state.done || state.remaining === 0) return { ...state, done: true };
      const sequence = state.sent + 1;
      await shadows.shadow(state.thingName).merge({
        desired: { reminder: { id: state.reminderId, message: state.message, sequence, at: now() } },
      });
      metrics?.addMetric('RemindersDelivered', MetricUnit.Count, 1);
      logger.info('reminder delivered', {
        reminderId: state.reminderId,
        thingName: state.thingName,
        sequence,
      });
      const remaining = state.remaining - 1;
      return { ...state, remaining, sent: sequence, done: remaining === 0 };
    } finally {
      flushMetrics(metrics);
    }
  };
}

const lazyHandler = lazily(() =>
  createReminderIteratorHandler({
    shadows: shadowsFromEnvironment(),
    logger: new Logger({ serviceName: 'reminder-iterator' }),
    metrics: new Metrics({ namespace: 'ShadowSync', serviceName: 'reminder-iterator' }),
  }),
);

/** The Lambda entry point (reads `IOT_DATA_ENDPOINT` on first use). */
export const handler: ReminderIteratorHandler = async (event) => lazyHandler()(event);
