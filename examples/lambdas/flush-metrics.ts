/** Publishing a Lambda's Powertools metrics at the end of an invocation. */
import type { Metrics } from '@aws-lambda-powertools/metrics';

/**
 * Publishes the stored metrics, if any (Powertools warns on every publish without metrics, and a handler that
 * ignored an event has nothing to count).
 *
 * @param metrics - the handler's metrics, or none
 */
export function flushMetrics(metrics: Metrics | undefined): void {
  if (metrics?.hasStoredMetrics()) metrics.publishStoredMetrics();
}
