/**
 * Brokers the reserved-topic session tests run against, each with the real local shadow service answering:
 * the embedded aedes broker (MQTT 3.1.1) and a real mosquitto joined by the service as an external broker
 * (MQTT 5 clients). Clients are real mqtt.js clients with Nagle disabled.
 */
import type { Socket } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { type ShadowService, startShadowService } from '../../src/emulator/index.js';
import {
  createReservedTopicSession,
  type ReservedTopicSession,
  type ReservedTopicSessionSettings,
} from '../../src/mqtt-session/reserved-topic-session.js';
import { SYSTEM_TIMER_CLOCK } from '../../src/mqtt-session/timer-clock.js';
import { type Mosquitto, startMosquitto } from '../support/mosquitto.js';

/** A broker with the service behind it. */
export interface SessionRig {
  readonly name: string;
  readonly protocolVersion: 4 | 5;
  readonly service: ShadowService;
  /** Topics of client requests the service received, in order. */
  readonly requests: string[];
  /** A connected client (ended by `close`). */
  client(clientId: string): Promise<MqttClient>;
  close(): Promise<void>;
}

/** Every response topic of a shadow. */
export const ALL_RESPONSES: ReservedTopicSessionSettings['suffixes'] = [
  'get/accepted',
  'get/rejected',
  'update/accepted',
  'update/rejected',
  'update/delta',
  'update/documents',
  'delete/accepted',
  'delete/rejected',
];

/** Connects a real mqtt.js client, Nagle off. */
export async function connectClient(
  url: string,
  clientId: string,
  protocolVersion: 4 | 5,
): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, {
    clientId,
    protocolVersion,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
  });
  (client.stream as Socket).setNoDelay?.(true);
  return client;
}

async function rig(name: string, protocolVersion: 4 | 5, broker: Mosquitto | undefined): Promise<SessionRig> {
  const service = await startShadowService({
    host: '127.0.0.1',
    limits: { requestsPerSecondPerThing: 100_000, maxInFlightPerThing: 100_000 },
    ...(broker === undefined ? {} : { broker: broker.url }),
  });
  const requests: string[] = [];
  service.mqtt.onClientPublish((publish) => requests.push(publish.topic));
  await service.mqtt.clientPublishesObserved();
  const clients: MqttClient[] = [];
  return {
    name,
    protocolVersion,
    service,
    requests,
    async client(clientId) {
      const client = await connectClient(service.mqttUrl, clientId, protocolVersion);
      clients.push(client);
      return client;
    },
    async close() {
      await Promise.all(clients.map((client) => client.endAsync(true)));
      await service.close();
      await broker?.stop();
    },
  };
}

/** The embedded aedes broker, MQTT 3.1.1 clients. */
export const aedesRig = () => rig('MQTT 3.1.1 on the embedded aedes broker', 4, undefined);

/** mosquitto as the service's external broker, MQTT 5 clients. */
export async function mosquittoRig(): Promise<SessionRig> {
  return rig('MQTT 5 on mosquitto', 5, await startMosquitto());
}

let sessions = 0;

/** A session with test settings (every response topic, 2 s timeout, a token prefix of its own), overridable. */
export function sessionOn(
  client: MqttClient,
  overrides: Partial<ReservedTopicSessionSettings> = {},
): ReservedTopicSession {
  return createReservedTopicSession(client, {
    timeoutMs: 2_000,
    qos: 1,
    clientTokenPrefix: `tst${++sessions}`,
    validate: true,
    suffixes: ALL_RESPONSES,
    observe: ['update/accepted', 'update/delta', 'update/documents', 'delete/accepted'],
    mode: 'per-shadow',
    maxSubscriptions: 50,
    maxFiltersPerSubscribe: 8,
    clock: SYSTEM_TIMER_CLOCK,
    owner: 'the test session',
    ...overrides,
  });
}

/**
 * Follows what a client subscribes, from its own packets: a filter counts from its SUBSCRIBE until the
 * UNSUBACK of its UNSUBSCRIBE (an upper bound of what the broker holds), and the largest SUBSCRIBE is kept.
 */
export function watchSubscriptions(client: MqttClient): {
  live: Set<string>;
  maxLive: () => number;
  maxPerSubscribe: () => number;
  log: string[];
} {
  const live = new Set<string>();
  const unsubscribing = new Map<number, string[]>();
  const log: string[] = [];
  let maxLive = 0;
  let maxPerSubscribe = 0;
  client.on('packetsend', (packet) => {
    if (packet.cmd === 'subscribe') {
      maxPerSubscribe = Math.max(maxPerSubscribe, packet.subscriptions.length);
      for (const subscription of packet.subscriptions) live.add(subscription.topic);
      maxLive = Math.max(maxLive, live.size);
      log.push(`subscribe ${packet.subscriptions.map((s) => s.topic).join(' ')}`);
    } else if (packet.cmd === 'unsubscribe') {
      unsubscribing.set(packet.messageId as number, [...(packet.unsubscriptions as string[])]);
    } else if (packet.cmd === 'publish') {
      log.push(`publish ${packet.topic}`);
    }
  });
  client.on('packetreceive', (packet) => {
    if (packet.cmd === 'suback') log.push('suback');
    if (packet.cmd === 'unsuback') {
      for (const topic of unsubscribing.get(packet.messageId as number) ?? []) live.delete(topic);
      unsubscribing.delete(packet.messageId as number);
    }
  });
  return { live, maxLive: () => maxLive, maxPerSubscribe: () => maxPerSubscribe, log };
}
