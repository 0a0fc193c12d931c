/**
 * Clients that try to exceed each of AWS IoT's per-connection quotas against a local service started with its
 * defaults (embedded broker, quotas on with AWS's values, the device policy on): each attempt gets AWS's answer
 * and refused input never changes stored shadow state. MQTT 3.1.1 only: the embedded broker refuses MQTT 5 at
 * CONNECT (mqtt5.test.ts); the managed mosquitto's share of these is tested in mqtt5.test.ts.
 *
 * Also: the library's own MQTT transport, with its default options, addressing many shadows over one
 * connection of such a service, is never refused anything.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDeviceAgent } from '../../src/device/index.js';
import { type ShadowService, startShadowService } from '../../src/emulator/start-shadow-service.js';
import { mqttTransport } from '../../src/transports/mqtt.js';
import { createShadowClient } from '../../src/update/shadow-client.js';
import { connectMqtt } from '../transports/connect-mqtt.js';
import { connectTestClient, type TestClient } from './mqtt-test-client.js';

const APP = { username: 'quota-app', password: 'quota-secret' };
// The per-thing quotas (20 requests/s) would answer first; this file is about the per-connection ones.
const HIGH_PER_THING = { requestsPerSecondPerThing: 100_000, maxInFlightPerThing: 100_000 };

let service: ShadowService;
const clients: TestClient[] = [];

beforeAll(async () => {
  service = await startShadowService({ auth: { serviceCredentials: APP }, limits: HIGH_PER_THING });
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await service?.close();
});

async function device(thingName: string): Promise<TestClient> {
  const client = await connectTestClient(service.mqttUrl, { clientId: thingName });
  clients.push(client);
  return client;
}

function quotaStats() {
  const stats = service.mqtt.stats().broker?.connectionQuotas;
  if (stats === undefined) throw new Error('the connection quotas are off: they should be on by default');
  return stats;
}

function closedPromise(client: TestClient): Promise<void> {
  return new Promise((resolve) => client.client.once('close', () => resolve()));
}

describe("a default local service answers attempts to exceed AWS IoT's per-connection quotas as AWS does", () => {
  it('says at start which quotas its broker enforces', () => {
    expect(service.mqtt.brokerInfo.description).toContain(
      "AWS IoT's per-connection quotas enforced: 50 subscriptions, 8 filters per SUBSCRIBE, 100 publishes/s (over it: unacknowledged)",
    );
  });

  it('the 51st subscription of a connection gets SUBACK 0x80 and receives nothing; the 50 before it work', async () => {
    const before = quotaStats().refusedSubscriptions;
    const d = await device('sub51');
    const named = Array.from({ length: 50 }, (_, i) => `$aws/things/sub51/shadow/name/s${i}/update/accepted`);
    for (let i = 0; i < 50; i += 8)
      expect(await d.subscribe(named.slice(i, i + 8))).toEqual(Array(Math.min(8, 50 - i)).fill(1));
    // Inside the device policy, refused only for the count.
    expect(await d.subscribe('$aws/things/sub51/shadow/update/accepted')).toEqual([128]);
    expect(quotaStats().refusedSubscriptions).toBe(before + 1);
    await d.publish('$aws/things/sub51/shadow/update', { state: { reported: { on: true } } }, 1);
    await d.publish('$aws/things/sub51/shadow/name/s49/update', { state: { reported: { on: true } } }, 1);
    await d.take('$aws/things/sub51/shadow/name/s49/update/accepted');
    expect(d.unread('$aws/things/sub51/shadow/update/accepted')).toEqual([]);
    // The refusal refused the subscription, not the request: the update itself was applied.
    expect(service.engine.read({ thingName: 'sub51' })?.version).toBe(1);
  });

  it('a SUBSCRIBE with 9 topic filters closes the connection; none of them was granted', async () => {
    const before = quotaStats().oversizedSubscribes;
    const d = await device('nine');
    const closed = closedPromise(d);
    const filters = Array.from({ length: 9 }, (_, i) => `$aws/things/nine/shadow/name/s${i}/update/accepted`);
    d.client.subscribe(filters, { qos: 1 }, () => {});
    await closed;
    expect(quotaStats().oversizedSubscribes).toBe(before + 1);
    // The same device with 8 filters in one SUBSCRIBE is served.
    const again = await device('nine');
    expect(await again.subscribe(filters.slice(0, 8))).toEqual(Array(8).fill(1));
  });

  it('publishes above 100 per second get no PUBACK and are never applied; every other one is applied in order', async () => {
    const before = quotaStats().throttledPublishes;
    const d = await device('burst');
    await d.subscribe('$aws/things/burst/shadow/update/accepted');
    // 300 pipelined QoS 1 updates: at 100/s on the wall clock with a one-second burst, at least 100 of them
    // would need more than two seconds between the first and the last to all pass.
    const count = 300;
    let acknowledged = 0;
    for (let n = 0; n < count; n++)
      d.client.publish(
        '$aws/things/burst/shadow/update',
        JSON.stringify({ state: { reported: { n } } }),
        { qos: 1 },
        () => {
          acknowledged++;
        },
      );
    // A SUBSCRIBE after them is handled after them: once granted, the broker has decided every publish.
    await d.subscribe('$aws/things/burst/shadow/update/rejected');
    const throttled = quotaStats().throttledPublishes - before;
    expect(throttled).toBeGreaterThan(0);
    expect(throttled).toBeLessThan(count - 99);
    const accepted = await d.takeMany('$aws/things/burst/shadow/update/accepted', count - throttled);
    // AWS IoT acknowledges none of the throttled ones (their packet ids stay taken on the client).
    await expect.poll(() => acknowledged).toBe(count - throttled);
    expect(Object.keys((d.client as unknown as { outgoing: object }).outgoing)).toHaveLength(throttled);
    expect(await d.quiet('$aws/things/burst/shadow/update/accepted', 100)).toBe(true);
    // The version counts exactly the publishes that were let through, in their order.
    expect(service.engine.read({ thingName: 'burst' })?.version).toBe(count - throttled);
    const ns = accepted.map((m) => (m.json as { state: { reported: { n: number } } }).state.reported.n);
    expect(ns).toEqual([...ns].sort((a, b) => a - b));
    expect(ns.slice(0, 100)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(d.unread('$aws/things/burst/shadow/update/rejected')).toEqual([]);
  });

  it('a message of 128 KB + 1 byte closes the connection before it is applied; 128 KB exactly is accepted', async () => {
    const d = await device('heavy');
    await d.publish('$aws/things/heavy/shadow/update', { state: { reported: { v: 1 } } }, 1);
    await expect.poll(() => service.engine.read({ thingName: 'heavy' })?.version).toBe(1);
    const requests = service.mqtt.stats().requests;
    const closed = closedPromise(d);
    const oversized = Buffer.alloc(128 * 1024 + 1, 0x20);
    oversized.write('{"state":{"reported":{"v":2}}}');
    d.client.publish('$aws/things/heavy/shadow/update', oversized, { qos: 1 });
    await closed;
    expect(service.mqtt.stats().requests).toBe(requests);
    expect(service.engine.read({ thingName: 'heavy' })).toMatchObject({
      version: 1,
      state: { reported: { v: 1 } },
    });
    // The quota is 128 KB inclusive (telemetry, so the 8 KB shadow limit does not answer first).
    const fits = await device('heavy');
    await fits.subscribe('my/things/heavy/blob');
    await fits.publish('my/things/heavy/blob', Buffer.alloc(128 * 1024, 1), 1);
    expect((await fits.take('my/things/heavy/blob')).payload.length).toBe(128 * 1024);
  });

  it("a subscription outside the device policy gets SUBACK 0x80 and receives nothing of another thing's shadow", async () => {
    const snoop = await device('snooper');
    const victim = await device('victim');
    expect(
      await snoop.subscribe(['$aws/things/victim/shadow/update/accepted', '#', '$aws/things/+/shadow/#']),
    ).toEqual([128, 128, 128]);
    await victim.subscribe('$aws/things/victim/shadow/update/accepted');
    await victim.publish('$aws/things/victim/shadow/update', { state: { reported: { secret: 1 } } }, 1);
    await victim.take('$aws/things/victim/shadow/update/accepted');
    expect(await snoop.quiet('$aws/things/victim/shadow/update/accepted', 100)).toBe(true);
    // A refused subscription takes no place in the 50: the denied ones are not counted.
    const named = Array.from({ length: 50 }, (_, i) => `$aws/things/snooper/shadow/name/s${i}/get/accepted`);
    for (let i = 0; i < 50; i += 8) expect(await snoop.subscribe(named.slice(i, i + 8))).not.toContain(128);
  });
});

describe('the library inside the default quotas', () => {
  it('a device agent with its defaults, reporting in a tight loop, is never refused anything', async () => {
    const before = quotaStats();
    const agent = await createDeviceAgent({
      thingName: 'eager-agent',
      mqtt: service.mqttUrl,
      onDelta: (d) => d,
    });
    try {
      // 1,000 reports as fast as the loop goes: the agent coalesces them into a few publishes.
      for (let n = 0; n < 1000; n++) agent.report({ n });
      await agent.whenSynced();
      expect(service.engine.read({ thingName: 'eager-agent' })).toMatchObject({
        state: { reported: { n: 999 } },
      });
    } finally {
      await agent.close();
    }
    expect(quotaStats()).toEqual(before);
  });

  it('mqttTransport with its defaults addresses 45 shadows over one connection without a single refusal', async () => {
    const before = quotaStats();
    const client = await connectMqtt(service.mqttUrl, 'quota-backend', APP);
    try {
      const transport = mqttTransport(client);
      const shadows = createShadowClient({ transport });
      // 45 shadows x 7 response filters is six times the 50 subscriptions a connection may hold; one get and one
      // update each stay inside the 100-publish burst, so nothing here depends on how fast the machine is.
      const results = await Promise.all(
        Array.from({ length: 45 }, (_, i) => shadows.shadow(`fleet-${i}`).merge({ desired: { n: i } })),
      );
      expect(results.filter((result) => result.skipped)).toEqual([]);
      for (let i = 0; i < 45; i++)
        expect(service.engine.read({ thingName: `fleet-${i}` })).toMatchObject({
          state: { desired: { n: i } },
        });
      await transport.close();
    } finally {
      await client.endAsync();
    }
    expect(quotaStats()).toEqual(before);
  });
});
