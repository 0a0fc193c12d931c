import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MqttLogger } from '../../src/emulator/broker.js';
import { type MqttFront, startMqttFront } from '../../src/emulator/mqtt-front.js';
import { createShadowEngine, type ShadowEngine } from '../../src/emulator/shadow-engine.js';
import { buildMqttClient, connectTestClient, type TestClient } from './mqtt-test-client.js';

const SERVICE = { username: 'shadow-service', password: 's3cret-pass' };
const HIGH_QUOTA = { requestsPerSecondPerThing: 100_000, maxInFlightPerThing: 100_000 };

interface Logged {
  message: string;
  details: Record<string, unknown> | undefined;
}

/** Attempts a connection and returns the CONNACK return code of a refusal (or 0 on success). */
async function connackCode(url: string, options: Parameters<typeof buildMqttClient>[1]): Promise<number> {
  const client = buildMqttClient(url, options);
  return new Promise<number>((resolve) => {
    client.once('connect', () => {
      client.end(true);
      resolve(0);
    });
    client.once('error', (error: Error & { code?: number }) => {
      client.end(true);
      resolve(typeof error.code === 'number' ? error.code : -1);
    });
  });
}

describe('MQTT authorization in the manner of an AWS IoT policy', () => {
  let engine: ShadowEngine;
  let front: MqttFront;
  const logged: Logged[] = [];
  const logger: MqttLogger = { warn: (message, details) => logged.push({ message, details }) };
  let service: TestClient;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    engine = createShadowEngine({ limits: HIGH_QUOTA });
    front = await startMqttFront(engine, { auth: { serviceCredentials: SERVICE }, logger });
    service = await connectTestClient(front.mqttUrl, { clientId: 'svc-watcher', ...SERVICE });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await service.close();
    await front.close();
    await engine.close();
  });

  async function device(clientId: string): Promise<TestClient> {
    const client = await connectTestClient(front.mqttUrl, { clientId });
    clients.push(client);
    return client;
  }

  it('a service client may subscribe to every thing and publish anywhere', async () => {
    const granted = await service.subscribe([
      '$aws/things/+/shadow/update/accepted',
      '$aws/things/+/shadow/name/+/update/accepted',
      'my/things/+/state',
      '#',
    ]);
    expect(granted).toEqual([1, 1, 1, 1]);
    await service.publish('$aws/things/anything/shadow/update', { state: { desired: { on: true } } });
    const accepted = await service.take('$aws/things/anything/shadow/update/accepted');
    expect(accepted.json).toMatchObject({ state: { desired: { on: true } }, version: 1 });
    await service.publish('free/topic', 'x');
    expect((await service.take('free/topic')).payload.toString()).toBe('x');
  });

  it('a device (client id = thing name) may use its own shadow topics, classic and named', async () => {
    const lamp = await device('lamp');
    const granted = await lamp.subscribe([
      '$aws/things/lamp/shadow/update/accepted',
      '$aws/things/lamp/shadow/name/+/update/accepted',
      '$aws/things/lamp/shadow/get/+',
    ]);
    expect(granted).toEqual([1, 1, 1]);
    await lamp.publish('$aws/things/lamp/shadow/update', {
      state: { reported: { on: true } },
      clientToken: 'l1',
    });
    expect((await lamp.take('$aws/things/lamp/shadow/update/accepted')).json).toMatchObject({
      clientToken: 'l1',
    });
    await lamp.publish('$aws/things/lamp/shadow/name/cfg/update', { state: { reported: { a: 1 } } });
    expect((await lamp.take('$aws/things/lamp/shadow/name/cfg/update/accepted')).json).toMatchObject({
      version: 1,
    });
    await lamp.publish('$aws/things/lamp/shadow/get', '');
    expect((await lamp.take('$aws/things/lamp/shadow/get/accepted')).json).toMatchObject({
      state: { reported: { on: true } },
    });
  });

  it("denies a device's subscriptions to other things' topics with SUBACK 128 and keeps the others", async () => {
    const lamp = await device('lamp');
    const before = front.stats().broker?.deniedSubscriptions ?? 0;
    const granted = await lamp.subscribe([
      '$aws/things/fan/shadow/update/accepted',
      '$aws/things/+/shadow/update/accepted',
      '$aws/things/lamp/shadow/update/delta',
      'my/things/fan/state',
      'my/things/lamp/state',
      '#',
    ]);
    expect(granted).toEqual([128, 128, 1, 128, 1, 128]);
    expect(front.stats().broker?.deniedSubscriptions).toBe(before + 4);
    expect(logged.some((l) => l.message === 'mqtt subscription denied' && l.details?.topic === '#')).toBe(
      true,
    );
    // The client is still connected and served.
    await lamp.publish('my/things/lamp/state', '{"t":1}');
    expect((await lamp.take('my/things/lamp/state')).json).toEqual({ t: 1 });
  });

  it("drops a device's publish to another thing's shadow or telemetry, without disturbing anyone", async () => {
    const fan = await device('fan');
    await fan.subscribe(['$aws/things/fan/shadow/update/accepted', 'my/things/fan/#']);
    await service.subscribe([
      '$aws/things/fan/shadow/update',
      'my/things/fan/#',
      '$aws/things/lamp/shadow/update/accepted',
    ]);
    const lamp = await device('lamp');
    const before = front.stats();

    await lamp.publish('$aws/things/fan/shadow/update', { state: { desired: { speed: 9 } } }, 1);
    await lamp.publish('$aws/things/fan/shadow/update', { state: { desired: { speed: 9 } } }, 0);
    await lamp.publish('my/things/fan/state', 'spoofed', 1);
    await lamp.publish('$aws/things/lamp/shadow/update/accepted', '{"version":999}', 1);
    await lamp.publish('$aws/things/fan/shadow/name/cfg/update', { state: { desired: { a: 1 } } }, 1);

    // Still connected: its own update goes through, after the denied ones.
    await lamp.subscribe('$aws/things/lamp/shadow/update/accepted');
    await lamp.publish('$aws/things/lamp/shadow/update', {
      state: { reported: { ok: 1 } },
      clientToken: 'after',
    });
    expect((await lamp.take('$aws/things/lamp/shadow/update/accepted')).json).toMatchObject({
      clientToken: 'after',
    });
    // The legitimate fan device keeps working too.
    await fan.publish('$aws/things/fan/shadow/update', {
      state: { reported: { speed: 1 } },
      clientToken: 'fan',
    });
    expect((await fan.take('$aws/things/fan/shadow/update/accepted')).json).toMatchObject({
      clientToken: 'fan',
    });

    expect(engine.read({ thingName: 'fan' })).toMatchObject({ state: { reported: { speed: 1 } } });
    expect(engine.read({ thingName: 'fan' })).not.toHaveProperty('state.desired');
    expect(engine.read({ thingName: 'fan', shadowName: 'cfg' })).toBeUndefined();
    expect(fan.unread('my/things/fan/state')).toEqual([]);
    expect(service.unread('my/things/fan/state')).toEqual([]);
    // The service saw exactly the fan's own request, and lamp's own accepted (no spoofed version 999).
    await service.take('$aws/things/fan/shadow/update');
    expect(service.unread('$aws/things/fan/shadow/update')).toEqual([]);
    const seenByService: unknown[] = [];
    for (;;) {
      const message = (await service.take('$aws/things/lamp/shadow/update/accepted')).json as {
        clientToken?: string;
      };
      seenByService.push(message);
      if (message.clientToken === 'after') break;
    }
    expect(seenByService).not.toContainEqual(expect.objectContaining({ version: 999 }));

    const after = front.stats();
    expect((after.broker?.deniedPublishes ?? 0) - (before.broker?.deniedPublishes ?? 0)).toBe(5);
    expect(after.requests - before.requests).toBe(2);
    expect(
      logged.filter((l) => l.message === 'mqtt publish denied' && l.details?.clientId === 'lamp').length,
    ).toBeGreaterThanOrEqual(5);
    expect(lamp.client.connected).toBe(true);
  });

  it('a device may publish and subscribe on its own telemetry topics', async () => {
    const lamp = await device('lamp');
    const seen: string[] = [];
    const stop = front.onClientPublish((p) => seen.push(`${p.clientId}:${p.topic}`));
    await lamp.subscribe('my/things/lamp/#');
    await lamp.publish('my/things/lamp/state', '{"temperature":20}');
    expect((await lamp.take('my/things/lamp/state')).json).toEqual({ temperature: 20 });
    stop();
    expect(seen).toEqual(['lamp:my/things/lamp/state']);
  });

  it('refuses the service username with a wrong password (CONNACK 4), and logs and counts it', async () => {
    const before = front.stats().broker?.rejectedConnections ?? 0;
    expect(
      await connackCode(front.mqttUrl, {
        clientId: 'intruder',
        username: SERVICE.username,
        password: 'nope',
      }),
    ).toBe(4);
    expect(await connackCode(front.mqttUrl, { clientId: 'intruder', username: SERVICE.username })).toBe(4);
    expect(front.stats().broker?.rejectedConnections).toBe(before + 2);
    expect(logged.some((l) => l.message.includes('bad service password'))).toBe(true);
  });

  it('refuses a device whose client id is not a valid thing name (CONNACK 2)', async () => {
    expect(await connackCode(front.mqttUrl, { clientId: 'has space' })).toBe(2);
    expect(await connackCode(front.mqttUrl, { clientId: 'wild+card' })).toBe(2);
    expect(await connackCode(front.mqttUrl, { clientId: 'x'.repeat(129) })).toBe(2);
    expect(await connackCode(front.mqttUrl, { clientId: 'ok:thing_name-1' })).toBe(0);
  });

  it('configurable telemetry patterns, and disconnecting offenders instead of dropping', async () => {
    const strictEngine = createShadowEngine({ limits: HIGH_QUOTA });
    const strict = await startMqttFront(strictEngine, {
      auth: { telemetryTopics: ['dt/{thingName}/+'], deniedPublish: 'disconnect' },
    });
    try {
      const lamp = await connectTestClient(strict.mqttUrl, { clientId: 'lamp' });
      const other = await connectTestClient(strict.mqttUrl, { clientId: 'fan' });
      await other.subscribe('dt/fan/+');
      const granted = await lamp.subscribe(['dt/lamp/+', 'my/things/lamp/#']);
      expect(granted).toEqual([1, 128]);
      await lamp.publish('dt/lamp/temp', '1', 0);
      const closed = new Promise<void>((resolve) => lamp.client.once('close', () => resolve()));
      await lamp.publish('dt/fan/temp', 'spoof', 0);
      await closed;
      expect(strict.stats().broker?.deniedPublishes).toBe(1);
      // The other device is not disturbed.
      await other.publish('dt/fan/temp', '2', 1);
      expect((await other.take('dt/fan/temp')).payload.toString()).toBe('2');
      expect(other.unread('dt/fan/temp')).toEqual([]);
      await lamp.close();
      await other.close();
    } finally {
      await strict.close();
      await strictEngine.close();
    }
  });

  it('without auth the embedded broker is open', async () => {
    const openEngine = createShadowEngine({ limits: HIGH_QUOTA });
    const open = await startMqttFront(openEngine);
    try {
      const anyone = await connectTestClient(open.mqttUrl, { clientId: 'anyone' });
      const granted = await anyone.subscribe(['$aws/things/+/shadow/update/accepted']);
      expect(granted[0]).toBe(1);
      await anyone.publish('$aws/things/fan/shadow/update', { state: { desired: { a: 1 } } });
      expect((await anyone.take('$aws/things/fan/shadow/update/accepted')).json).toMatchObject({
        version: 1,
      });
      await anyone.close();
    } finally {
      await open.close();
      await openEngine.close();
    }
  });
});
