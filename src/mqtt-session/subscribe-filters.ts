/**
 * Subscribing a set of topic filters the way AWS IoT accepts it: at most `maxFiltersPerSubscribe` filters per
 * SUBSCRIBE packet (AWS's quota is 8), and every refusal detected, whichever way the client reports it.
 *
 * A broker refuses a filter with a SUBACK return code of 0x80 (MQTT 3.1.1) or an MQTT 5 reason code of 0x80 or
 * more (0x87 Not authorized, 0x97 Quota exceeded, 0xA2 Wildcard subscriptions not supported...). mqtt.js 5
 * rejects `subscribeAsync` with the SUBACK packet attached when any code has that bit; older clients and test
 * doubles resolve with the codes in the grants instead. Both are read here.
 */
import type { MqttClient } from 'mqtt';

/** MQTT 5 SUBACK reason codes at or above 0x80 (MQTT 5.0 section 3.9.3), for readable messages. */
const REASONS: Readonly<Record<number, string>> = {
  128: 'Unspecified error',
  131: 'Implementation specific error',
  135: 'Not authorized',
  143: 'Topic Filter invalid',
  145: 'Packet Identifier in use',
  151: 'Quota exceeded',
  158: 'Shared Subscriptions not supported',
  161: 'Subscription Identifiers not supported',
  162: 'Wildcard Subscriptions not supported',
};

/** One filter the broker refused, with its return / reason code. */
export interface RefusedFilter {
  filter: string;
  code: number;
}

/** Thrown by {@link subscribeFilters} when the broker refused some filters (the others may be granted). */
export class SubscriptionRefusedError extends Error {
  override readonly name = 'SubscriptionRefusedError';
  constructor(readonly refused: readonly RefusedFilter[]) {
    super(
      `the broker refused the subscriptions ${refused
        .map(({ filter, code }) => `${filter} (0x${code.toString(16)} ${REASONS[code] ?? 'refused'})`)
        .join(', ')}`,
    );
  }
}

/** The subset of an mqtt.js client this module uses (test doubles implement only this). */
export type SubscribingClient = Pick<MqttClient, 'subscribeAsync'>;

function codesOf(value: unknown): number[] | undefined {
  const granted = (value as { packet?: { granted?: unknown } } | null)?.packet?.granted;
  return Array.isArray(granted) && granted.every((code) => typeof code === 'number') ? granted : undefined;
}

async function subscribeChunk(
  client: SubscribingClient,
  chunk: string[],
  qos: 0 | 1,
): Promise<RefusedFilter[]> {
  try {
    const grants = await client.subscribeAsync(chunk, { qos });
    return grants
      .filter((grant) => grant.qos >= 0x80)
      .map((grant) => ({ filter: grant.topic, code: grant.qos as number }));
  } catch (error) {
    const codes = codesOf(error);
    if (codes === undefined || codes.length !== chunk.length) throw error;
    return chunk.flatMap((filter, i) => {
      const code = codes[i] as number;
      return code >= 0x80 ? [{ filter, code }] : [];
    });
  }
}

/**
 * Subscribes `filters` in packets of at most `maxPerSubscribe` filters, sent together.
 *
 * @throws SubscriptionRefusedError listing every refused filter and its code
 * @throws the client's own error when the subscription failed otherwise (disconnected, closing...)
 */
export async function subscribeFilters(
  client: SubscribingClient,
  filters: readonly string[],
  qos: 0 | 1,
  maxPerSubscribe: number,
): Promise<void> {
  const chunks: string[][] = [];
  for (let i = 0; i < filters.length; i += maxPerSubscribe)
    chunks.push(filters.slice(i, i + maxPerSubscribe));
  const refused = (await Promise.all(chunks.map((chunk) => subscribeChunk(client, chunk, qos)))).flat();
  if (refused.length > 0) throw new SubscriptionRefusedError(refused);
}
