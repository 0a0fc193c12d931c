/**
 * One MQTT connection addressing 1,000 shadows stays inside AWS IoT's per-connection quotas: at most 50 live
 * subscriptions and 8 topic filters per SUBSCRIBE, counted at a real aedes broker from its own `subscribe` /
 * `unsubscribe` events, with the real local shadow service joined to that broker and the real update engine
 * on top of `mqttTransport`.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/core/document.js';
import { shadowTopic } from '../../src/core/topics.js';
import { type EmbeddedBroker, startBroker } from '../../src/emulator/broker.js';
import { type ShadowService, startShadowService } from '../../src/emulator/index.js';
import type { ShadowValidationError } from '../../src/errors.js';
import { mqttTransport } from '../../src/transports/mqtt.js';
import { createShadowClient } from '../../src/update/shadow-client.js';
import { connectMqtt } from './connect-mqtt.js';

const SHADOWS = 1_000;

/** What the broker holds for one client: its live filters, the most at once, the largest SUBSCRIBE. */
interface Held {
  live: Set<string>;
  maxLive: number;
  maxPerSubscribe: number;
  subscribes: number;
}

let broker: EmbeddedBroker;
let service: ShadowService;
const held = new Map<string, Held>();
const clients: MqttClient[] = [];

function heldBy(clientId: string): Held {
  let entry = held.get(clientId);
  if (entry === undefined) {
    entry = { live: new Set(), maxLive: 0, maxPerSubscribe: 0, subscribes: 0 };
    held.set(clientId, entry);
  }
  return entry;
}

/**
 * The backend and the service log in with the service credentials: on an open broker nobody may publish the
 * shadow response topics (the service's answers), see publish-policy.ts.
 */
const SERVICE_LOGIN = { username: 'backend', password: 'backend-secret' };

beforeAll(async () => {
  // No quotas at this broker: it counts what the client holds itself (a refusal would cap the count and hide an
  // overrun), and the backend's 1,000 updates and the joined service's answers go far above 100 publishes/s.
  broker = await startBroker({ auth: { serviceCredentials: SERVICE_LOGIN }, connectionQuotas: false });
  // aedes emits both events synchronously with the SUBACK / UNSUBACK it writes: before the client can send
  // the next packet, so the live count below is exact at every step.
  broker.aedes.on('subscribe', (subscriptions, client) => {
    const entry = heldBy(client.id);
    entry.subscribes++;
    entry.maxPerSubscribe = Math.max(entry.maxPerSubscribe, subscriptions.length);
    for (const subscription of subscriptions) {
      if ((subscription.qos as number) !== 128) entry.live.add(subscription.topic);
    }
    entry.maxLive = Math.max(entry.maxLive, entry.live.size);
  });
  broker.aedes.on('unsubscribe', (unsubscriptions, client) => {
    const entry = heldBy(client.id);
    for (const topic of unsubscriptions) entry.live.delete(topic);
  });
  service = await startShadowService({
    host: '127.0.0.1',
    broker: broker.url,
    mqtt: { serviceClient: SERVICE_LOGIN },
    limits: { requestsPerSecondPerThing: 100_000, maxInFlightPerThing: 100_000 },
  });
}, 20_000);

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.endAsync()));
});

afterAll(async () => {
  await service?.close();
  await broker?.close();
});

async function updateAll(clientId: string, options: Parameters<typeof mqttTransport>[1]) {
  const client = await connectMqtt(broker.url, clientId, SERVICE_LOGIN);
  clients.push(client);
  const transport = mqttTransport(client, options);
  const shadows = createShadowClient({ transport });
  const results = await Promise.all(
    Array.from({ length: SHADOWS }, (_, i) =>
      shadows.shadow(`${clientId}-${i}`).merge({ desired: { n: i } }),
    ),
  );
  await transport.close();
  return results;
}

function expectStored(clientId: string) {
  for (let i = 0; i < SHADOWS; i++) {
    const stored = service.engine.read({ thingName: `${clientId}-${i}` });
    expect(stored && 'state' in stored ? (stored.state.desired as JsonObject) : undefined).toEqual({ n: i });
  }
}

describe(`mqttTransport addressing ${SHADOWS} shadows over one connection`, () => {
  it('per-shadow subscriptions (default): never more than 50 live filters nor 8 per SUBSCRIBE; every update succeeds', async () => {
    const results = await updateAll('backend-lru', {});
    expect(results.filter((result) => result.skipped)).toEqual([]);
    expectStored('backend-lru');
    const at = heldBy('backend-lru');
    expect(at.maxLive).toBeLessThanOrEqual(50);
    expect(at.maxLive).toBeGreaterThan(40); // the room was used, not one shadow at a time
    expect(at.maxPerSubscribe).toBeLessThanOrEqual(8);
    expect(at.subscribes).toBeGreaterThanOrEqual(SHADOWS); // each shadow subscribed (one SUBSCRIBE of 7 each)
    expect(at.live.size).toBe(0); // close() released them all
  }, 120_000);

  it('lower limits are kept too (an application holding subscriptions of its own on the same client)', async () => {
    const results = await updateAll('backend-small', { maxSubscriptions: 20, maxFiltersPerSubscribe: 3 });
    expect(results.filter((result) => result.skipped)).toEqual([]);
    const at = heldBy('backend-small');
    expect(at.maxLive).toBeLessThanOrEqual(20);
    expect(at.maxPerSubscribe).toBeLessThanOrEqual(3);
  }, 120_000);

  it("wildcard subscriptions: the 7 '+' filters, subscribed once; every update succeeds", async () => {
    const results = await updateAll('backend-wild', { subscriptions: 'wildcard' });
    expect(results.filter((result) => result.skipped)).toEqual([]);
    expectStored('backend-wild');
    const at = heldBy('backend-wild');
    expect(at.maxLive).toBe(7);
    expect(at.maxPerSubscribe).toBeLessThanOrEqual(8);
    expect(at.subscribes).toBe(1);
  }, 120_000);

  it('reports a malformed broadcast through onInvalidMessage and keeps serving', async () => {
    const client = await connectMqtt(broker.url, 'backend-invalid', SERVICE_LOGIN);
    clients.push(client);
    const invalid: [ShadowValidationError, string][] = [];
    const transport = mqttTransport(client, {
      onInvalidMessage: (error, topic) => invalid.push([error, topic]),
    });
    const target = { thingName: 'invalid-1' };
    await transport.get(target); // subscribed
    await broker.publish(shadowTopic(target, 'update/documents'), 'not json', { qos: 1 });
    await transport.update(target, { state: { desired: { on: true } } });
    expect(invalid).toHaveLength(1);
    expect(invalid[0]?.[0]).toMatchObject({ name: 'ShadowValidationError', thingName: 'invalid-1' });
    expect(invalid[0]?.[1]).toBe(shadowTopic(target, 'update/documents'));
    await transport.close();
  });
});
