/**
 * The reference system's IoT rules for the local shadow service: the same SQL as `examples/template.yaml`, each
 * invoking its Lambda handler in this process with the event AWS would deliver. The demo and the integration
 * tests start the service with them: `startShadowService({ rules: referenceRules({ ... }) })`.
 */

import type { Logger } from '@aws-lambda-powertools/logger';
import type { ShadowRule } from '../../src/emulator/index.js';
import type { ShadowClient } from '../../src/index.js';
import type { AlertStore } from './alert-store.js';
import { createDesiredCleanupHandler, DESIRED_CLEANUP_RULE_SQL } from './desired-cleanup.js';
import { createIllegalStateAlertHandler, ILLEGAL_STATE_RULE_SQL } from './illegal-state-alert.js';
import type { RecordSink } from './record-sink.js';
import { createTelemetrySinkHandler, TELEMETRY_RULE_SQL } from './telemetry-sink.js';

/** What the local rules' handlers need; leave one out to leave its rule out. */
export interface ReferenceRulesDependencies {
  /** Alerts of the illegal-state rule. */
  alertStore?: AlertStore;
  /** Telemetry records of the telemetry rule (a `directoryRecordSink` locally). */
  recordSink?: RecordSink;
  /** The shadow client desired-cleanup writes with (over the local service's HTTP endpoint). */
  cleanupShadows?: ShadowClient;
  /** Logger of every handler. @defaultValue each handler's own Powertools logger */
  logger?: Logger;
  /** Lambda timeout of each rule action, milliseconds. @defaultValue the rules engine's (3000) */
  timeoutMs?: number;
}

/** Names of the rules, as in the template's logical ids. */
export const REFERENCE_RULE_NAMES = Object.freeze({
  illegalState: 'IllegalStateRule',
  telemetry: 'TelemetryRule',
  documents: 'DocumentsRule',
});

/**
 * Builds the local rules.
 *
 * @param dependencies - see {@link ReferenceRulesDependencies}
 * @example
 * ```ts
 * const alerts = memoryAlertStore();
 * const service = await startShadowService({
 *   rules: referenceRules({ alertStore: alerts, recordSink: directoryRecordSink('./telemetry') }),
 * });
 * ```
 */
export function referenceRules(dependencies: ReferenceRulesDependencies): ShadowRule[] {
  const logger = dependencies.logger === undefined ? {} : { logger: dependencies.logger };
  const timeout = dependencies.timeoutMs === undefined ? {} : { timeoutMs: dependencies.timeoutMs };
  const rules: ShadowRule[] = [];
  if (dependencies.alertStore !== undefined) {
    const handler = createIllegalStateAlertHandler({ store: dependencies.alertStore, ...logger });
    rules.push({
      name: REFERENCE_RULE_NAMES.illegalState,
      sql: ILLEGAL_STATE_RULE_SQL,
      actions: [{ type: 'lambda', handler: (event) => handler(event), ...timeout }],
    });
  }
  if (dependencies.recordSink !== undefined) {
    const handler = createTelemetrySinkHandler({ sink: dependencies.recordSink, ...logger });
    rules.push({
      name: REFERENCE_RULE_NAMES.telemetry,
      sql: TELEMETRY_RULE_SQL,
      actions: [{ type: 'lambda', handler: (event, context) => handler(event, context), ...timeout }],
    });
  }
  if (dependencies.cleanupShadows !== undefined) {
    const handler = createDesiredCleanupHandler({ shadows: dependencies.cleanupShadows, ...logger });
    rules.push({
      name: REFERENCE_RULE_NAMES.documents,
      sql: DESIRED_CLEANUP_RULE_SQL,
      actions: [{ type: 'lambda', handler: (event) => handler(event), ...timeout }],
    });
  }
  return rules;
}
