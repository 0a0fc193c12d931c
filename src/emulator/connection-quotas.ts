/**
 * AWS IoT Core's per-connection message-broker quotas, enforced by the embedded broker.
 *
 * Source: "AWS IoT Core endpoints and quotas", message broker limits
 * (https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits): subscriptions per
 * connection 50 (adjustable on request), subscriptions per SUBSCRIBE 8, inbound publish requests per second per
 * connection 100 (not adjustable). The 128 KB message size is enforced elsewhere (packet size limit).
 *
 * AWS's answers, as far as they can be sourced (the quota page names the limits, not the reactions; the
 * choices below are written down because they are not AWS-documented text). The embedded broker speaks MQTT
 * 3.1.1, whose only failure code is SUBACK 0x80. Over MQTT 5 (a managed mosquitto, which cannot enforce these
 * three, see mosquitto-config.ts) AWS's reason-code table (developer guide, "MQTT reason codes") gives 0x87 Not
 * authorized for a SUBACK refused by policy; which code a quota refusal gets could not be sourced (MQTT 5's own
 * code for it is 0x97 Quota exceeded).
 * - a SUBSCRIBE with more than 8 topic filters: AWS IoT closes the connection (reported by users of several
 *   MQTT clients, e.g. MQTTnet issue #1427 and aws-iot-device-sdk-embedded-C issue #1903; the AWS IoT Device
 *   SDK v2 refuses such a SUBSCRIBE client-side under `AwsIotCoreDefaults`). Here: disconnect, none of the
 *   packet's filters granted.
 * - the 51st subscription: the subscription fails (reported as failed SUBACKs, e.g. shamblett/mqtt_client issue
 *   #368). Here: SUBACK return code 0x80 for each filter over the quota; the earlier filters of the same SUBSCRIBE
 *   are granted. Subscribing again to a filter the connection already has replaces it and does not count twice;
 *   a filter refused by the device policy takes no place.
 * - publishes above 100 per second: AWS IoT throttles them, the connection stays (CloudWatch counts throttled
 *   inbound publishes), and sends no PUBACK for a throttled QoS 1 publish: MQTT 3.1.1 has no way to acknowledge
 *   "not done" (an AWS IoT SDK maintainer in aws/aws-iot-device-sdk-python-v2 issue #257; clients then run out
 *   of packet ids or resend on reconnect). Here, by default (`'unacknowledged'`): the publish is discarded, not
 *   routed, not applied to a shadow, never acknowledged, logged and counted; `'drop'` acknowledges it at QoS 1
 *   (friendlier to a client that awaits every PUBACK), `'disconnect'` closes the connection.
 * - a message over 128 KB: AWS IoT sends DISCONNECT (eclipse-paho/paho.mqtt.python issue #760, where a QoS 1
 *   client resent the oversized message after every reconnect). Here: the connection is closed before the
 *   packet is buffered (packet-limits.ts), not part of these quotas and always on.
 *
 * The publish rate is a token bucket holding one second of publishes, refilled continuously on the injected
 * clock, so a burst of up to the quota is accepted at once and the sustained rate is the quota.
 */
import { ShadowOptionsError } from '../errors.js';

/** The per-connection quotas. */
export interface ConnectionQuotas {
  /**
   * Distinct topic filters one connection may hold.
   * @defaultValue 50
   */
  maxSubscriptionsPerConnection: number;
  /**
   * Topic filters in one SUBSCRIBE packet; more closes the connection.
   * @defaultValue 8
   */
  maxFiltersPerSubscribe: number;
  /**
   * Inbound publishes per second per connection.
   * @defaultValue 100
   */
  publishesPerSecondPerConnection: number;
  /**
   * What a publish above the rate does: `'unacknowledged'` (discarded without a PUBACK, as AWS IoT throttles),
   * `'drop'` (discarded, acknowledged at QoS 1) or `'disconnect'`.
   * @defaultValue 'unacknowledged'
   */
  publishRateExceeded: 'unacknowledged' | 'drop' | 'disconnect';
}

/** AWS IoT Core's per-connection quotas. */
export const DEFAULT_CONNECTION_QUOTAS: Readonly<ConnectionQuotas> = Object.freeze({
  maxSubscriptionsPerConnection: 50,
  maxFiltersPerSubscribe: 8,
  publishesPerSecondPerConnection: 100,
  publishRateExceeded: 'unacknowledged',
});

const QUOTA_KEYS = Object.keys(DEFAULT_CONNECTION_QUOTAS);

/**
 * Validates partial quotas and fills the rest from {@link DEFAULT_CONNECTION_QUOTAS}.
 *
 * @throws ShadowOptionsError for an unknown key, a value that is not a positive integer, or a bad
 *   `publishRateExceeded`
 * @example resolveConnectionQuotas({ maxSubscriptionsPerConnection: 100 }).maxFiltersPerSubscribe // 8
 */
export function resolveConnectionQuotas(partial: Partial<ConnectionQuotas> = {}): Readonly<ConnectionQuotas> {
  if (typeof partial !== 'object' || partial === null)
    throw new ShadowOptionsError('connection quotas must be an object');
  for (const key of Object.keys(partial))
    if (!QUOTA_KEYS.includes(key))
      throw new ShadowOptionsError(`unknown connection quota '${key}' (known: ${QUOTA_KEYS.join(', ')})`);
  const resolved = { ...DEFAULT_CONNECTION_QUOTAS };
  for (const key of [
    'maxSubscriptionsPerConnection',
    'maxFiltersPerSubscribe',
    'publishesPerSecondPerConnection',
  ] as const) {
    const value = partial[key] ?? DEFAULT_CONNECTION_QUOTAS[key];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)
      throw new ShadowOptionsError(
        `connection quota ${key} must be a positive integer, got ${String(value)}`,
      );
    resolved[key] = value;
  }
  const onRate = partial.publishRateExceeded ?? DEFAULT_CONNECTION_QUOTAS.publishRateExceeded;
  if (onRate !== 'unacknowledged' && onRate !== 'drop' && onRate !== 'disconnect')
    throw new ShadowOptionsError(
      `connection quota publishRateExceeded must be 'unacknowledged', 'drop' or 'disconnect', got ${String(onRate)}`,
    );
  resolved.publishRateExceeded = onRate;
  return Object.freeze(resolved);
}

/** What the broker does with one filter of a SUBSCRIBE. */
export type SubscribeVerdict = 'grant' | 'refuse' | 'disconnect';

/** Quota bookkeeping of one connection. Pure: time comes from the injected clock. */
export interface ConnectionQuotaState {
  /**
   * Decides one filter of a SUBSCRIBE (after the policy allowed it).
   *
   * @param filter - the topic filter
   * @param filtersInPacket - how many filters the SUBSCRIBE packet carried (1 for a subscription restored from
   *   a persistent session)
   */
  subscribe(filter: string, filtersInPacket: number): SubscribeVerdict;
  /** The connection no longer holds these filters (UNSUBSCRIBE). */
  unsubscribed(filters: readonly string[]): void;
  /** Takes a publish token; false when the connection is above its publish rate. */
  publish(): boolean;
  /** Distinct filters held now. */
  readonly subscriptions: number;
}

/**
 * Starts the bookkeeping of one connection.
 *
 * @param quotas - resolved quotas
 * @param clock - milliseconds (any monotonic origin)
 */
export function createConnectionQuotaState(
  quotas: Readonly<ConnectionQuotas>,
  clock: () => number,
): ConnectionQuotaState {
  const held = new Set<string>();
  const capacity = quotas.publishesPerSecondPerConnection;
  let tokens = capacity;
  let refilledAt = clock();
  return {
    subscribe(filter, filtersInPacket) {
      if (filtersInPacket > quotas.maxFiltersPerSubscribe) return 'disconnect';
      if (held.has(filter)) return 'grant';
      if (held.size >= quotas.maxSubscriptionsPerConnection) return 'refuse';
      held.add(filter);
      return 'grant';
    },
    unsubscribed(filters) {
      for (const filter of filters) held.delete(filter);
    },
    publish() {
      const now = clock();
      if (now > refilledAt) {
        tokens = Math.min(capacity, tokens + ((now - refilledAt) * capacity) / 1000);
        refilledAt = now;
      }
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    },
    get subscriptions() {
      return held.size;
    },
  };
}
