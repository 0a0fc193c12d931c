/**
 * Applies {@link ConnectionQuotas} inside the embedded aedes broker: one {@link ConnectionQuotaState} per
 * connection, fed from the broker's connect, authorize and unsubscribe hooks, with the refusals logged and
 * counted.
 *
 * aedes authorizes a SUBSCRIBE filter by filter and does not tell the hook how many filters the packet carried,
 * so the guard reads every SUBSCRIBE packet as the connection's parser emits it (a listener put before aedes'
 * own) and remembers each subscription object's packet size until aedes authorizes it.
 */
import type { Client, Subscription } from 'aedes';
import type { MqttLogger } from './broker.js';
import {
  type ConnectionQuotaState,
  type ConnectionQuotas,
  createConnectionQuotaState,
  type SubscribeVerdict,
} from './connection-quotas.js';

/** Counters of the quota guard. */
export interface ConnectionQuotaStats {
  /** Subscriptions refused because the connection held its maximum. */
  refusedSubscriptions: number;
  /** Connections closed for a SUBSCRIBE with too many filters. */
  oversizedSubscribes: number;
  /** Publishes above the per-connection rate (dropped or disconnected). */
  throttledPublishes: number;
}

/** The quota guard of one broker. */
export interface ConnectionQuotaGuard {
  /** A connection sent CONNECT: start its bookkeeping (before any later packet is parsed). */
  connected(client: Client): void;
  /** Decides one filter the policy allowed. */
  subscribe(client: Client, subscription: Subscription): SubscribeVerdict;
  /** The client unsubscribed from these filters. */
  unsubscribed(client: Client, filters: readonly string[]): void;
  /** Takes a publish token of the client's connection; false when above the rate. */
  publish(client: Client): boolean;
  stats(): ConnectionQuotaStats;
}

interface PacketSource {
  _parser?: { prependListener(event: 'packet', listener: (packet: unknown) => void): void };
}

/**
 * Creates the guard.
 *
 * @param quotas - resolved quotas
 * @param clock - milliseconds for the publish rate
 * @param logger - receives every refusal
 */
export function createConnectionQuotaGuard(
  quotas: Readonly<ConnectionQuotas>,
  clock: () => number,
  logger: MqttLogger,
): ConnectionQuotaGuard {
  const states = new WeakMap<Client, ConnectionQuotaState>();
  // Subscription object -> the SUBSCRIBE it came in (its size, and whether its refusal was reported).
  const packets = new WeakMap<object, { size: number; reported: boolean }>();
  const counts: ConnectionQuotaStats = {
    refusedSubscriptions: 0,
    oversizedSubscribes: 0,
    throttledPublishes: 0,
  };
  const stateOf = (client: Client): ConnectionQuotaState => {
    let state = states.get(client);
    if (state === undefined) {
      state = createConnectionQuotaState(quotas, clock);
      states.set(client, state);
    }
    return state;
  };
  return {
    connected(client) {
      stateOf(client);
      (client as unknown as PacketSource)._parser?.prependListener('packet', (packet) => {
        const subscribe = packet as { cmd?: string; subscriptions?: object[] };
        if (subscribe.cmd !== 'subscribe' || subscribe.subscriptions === undefined) return;
        const info = { size: subscribe.subscriptions.length, reported: false };
        for (const subscription of subscribe.subscriptions) packets.set(subscription, info);
      });
    },
    subscribe(client, subscription) {
      const packet = packets.get(subscription);
      const verdict = stateOf(client).subscribe(subscription.topic, packet?.size ?? 1);
      if (verdict === 'refuse') {
        counts.refusedSubscriptions++;
        logger.warn(
          `mqtt subscription refused: the connection holds ${quotas.maxSubscriptionsPerConnection} subscriptions (AWS IoT quota per connection)`,
          { clientId: client.id, topic: subscription.topic },
        );
      } else if (verdict === 'disconnect' && packet !== undefined && !packet.reported) {
        // aedes authorizes the filters of one packet in parallel: count and log the packet once.
        packet.reported = true;
        counts.oversizedSubscribes++;
        logger.warn(
          `mqtt connection closed: a SUBSCRIBE carried ${packet.size} topic filters (AWS IoT allows ${quotas.maxFiltersPerSubscribe} per SUBSCRIBE)`,
          { clientId: client.id },
        );
      }
      return verdict;
    },
    unsubscribed(client, filters) {
      states.get(client)?.unsubscribed(filters);
    },
    publish(client) {
      if (stateOf(client).publish()) return true;
      counts.throttledPublishes++;
      logger.warn(
        `mqtt publish throttled: above ${quotas.publishesPerSecondPerConnection} publishes per second on one connection (AWS IoT quota)`,
        { clientId: client.id },
      );
      return false;
    },
    stats: () => ({ ...counts }),
  };
}
