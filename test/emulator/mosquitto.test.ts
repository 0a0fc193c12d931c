import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientPublish } from '../../src/emulator/broker.js';
import { type MqttFront, startMqttFront } from '../../src/emulator/mqtt-front.js';
import { createShadowEngine, type ShadowEngine } from '../../src/emulator/shadow-engine.js';
import { freePort, type Mosquitto, startMosquitto } from '../support/mosquitto.js';
import { connectTestClient, type TestClient } from './mqtt-test-client.js';

describe('the service joined to an external mosquitto broker', () => {
  let mosquitto: Mosquitto;
  let brokerUrl: string;
  let engine: ShadowEngine;
  let front: MqttFront;
  let device: TestClient;

  beforeAll(async () => {
    mosquitto = await startMosquitto();
    brokerUrl = mosquitto.url;
    engine = createShadowEngine({
      limits: { requestsPerSecondPerThing: 100_000, maxInFlightPerThing: 100_000 },
    });
    front = await startMqttFront(engine, {
      broker: brokerUrl,
      serviceClient: { clientId: 'shadow-service' },
    });
    device = await connectTestClient(brokerUrl, { clientId: 'lamp' });
  }, 20_000);

  afterAll(async () => {
    await device?.close();
    await front?.close();
    await engine?.close();
    await mosquitto?.stop();
  });

  it('reports the external broker URL', () => {
    expect(front.mqttUrl).toBe(brokerUrl);
    expect(front.stats().broker).toBeUndefined();
  });

  it('a device on mosquitto updates, reads and deletes its classic shadow through the reserved topics', async () => {
    await device.subscribe([
      '$aws/things/lamp/shadow/update/accepted',
      '$aws/things/lamp/shadow/update/delta',
      '$aws/things/lamp/shadow/update/documents',
      '$aws/things/lamp/shadow/get/accepted',
      '$aws/things/lamp/shadow/delete/accepted',
      '$aws/things/lamp/shadow/update/rejected',
    ]);
    await device.publish('$aws/things/lamp/shadow/update', {
      state: { desired: { on: true } },
      clientToken: 'm1',
    });
    expect((await device.take('$aws/things/lamp/shadow/update/accepted')).json).toMatchObject({
      state: { desired: { on: true } },
      version: 1,
      clientToken: 'm1',
    });
    expect((await device.take('$aws/things/lamp/shadow/update/delta')).json).toMatchObject({
      state: { on: true },
      version: 1,
    });
    expect((await device.take('$aws/things/lamp/shadow/update/documents')).json).toMatchObject({
      previous: null,
    });

    await device.publish('$aws/things/lamp/shadow/update', '{"state":');
    expect((await device.take('$aws/things/lamp/shadow/update/rejected')).json).toMatchObject({
      code: 400,
      message: 'Invalid JSON',
    });

    await device.publish('$aws/things/lamp/shadow/get', { clientToken: 'g' });
    expect((await device.take('$aws/things/lamp/shadow/get/accepted')).json).toMatchObject({
      state: { desired: { on: true }, delta: { on: true } },
      version: 1,
      clientToken: 'g',
    });
    await device.publish('$aws/things/lamp/shadow/delete', '');
    expect((await device.take('$aws/things/lamp/shadow/delete/accepted')).json).toMatchObject({ version: 1 });
  });

  it('named shadows work through mosquitto too', async () => {
    await device.subscribe([
      '$aws/things/lamp/shadow/name/cfg/update/accepted',
      '$aws/things/lamp/shadow/name/cfg/get/rejected',
    ]);
    await device.publish('$aws/things/lamp/shadow/name/nothing/get', '');
    await device.publish('$aws/things/lamp/shadow/name/cfg/get', { clientToken: 'n' });
    expect((await device.take('$aws/things/lamp/shadow/name/cfg/get/rejected')).json).toMatchObject({
      code: 404,
      message: "No shadow exists with name: 'cfg'",
      clientToken: 'n',
    });
    await device.publish('$aws/things/lamp/shadow/name/cfg/update', { state: { reported: { mode: 1 } } });
    expect((await device.take('$aws/things/lamp/shadow/name/cfg/update/accepted')).json).toMatchObject({
      version: 1,
    });
    expect(engine.read({ thingName: 'lamp', shadowName: 'cfg' })).toMatchObject({
      state: { reported: { mode: 1 } },
    });
  });

  it('keeps arrival order for many QoS 1 updates to one shadow', async () => {
    const d = await connectTestClient(brokerUrl, { clientId: 'counter' });
    await d.subscribe('$aws/things/counter/shadow/update/accepted');
    const count = 150;
    await Promise.all(
      Array.from({ length: count }, (_, i) =>
        d.publish('$aws/things/counter/shadow/update', { state: { reported: { n: i } } }, 1),
      ),
    );
    const accepted = await d.takeMany('$aws/things/counter/shadow/update/accepted', count, 15_000);
    expect(accepted.map((m) => (m.json as { state: { reported: { n: number } } }).state.reported.n)).toEqual(
      Array.from({ length: count }, (_, i) => i),
    );
    expect(accepted.map((m) => (m.json as { version: number }).version)).toEqual(
      Array.from({ length: count }, (_, i) => i + 1),
    );
    await d.close();
  });

  it('sees clients publishes on ordinary topics (client id unknown behind an external broker) and publishes to them', async () => {
    const seen: ClientPublish[] = [];
    let heard: () => void = () => {};
    const telemetryHeard = new Promise<void>((resolve) => {
      heard = resolve;
    });
    const stop = front.onClientPublish((p) => {
      seen.push(p);
      if (p.topic === 'my/things/lamp/state') heard();
    });
    await front.clientPublishesObserved();
    await device.publish('my/things/lamp/state', { temperature: 19 }, 1);
    await telemetryHeard;
    stop();
    const telemetry = seen.find((p) => p.topic === 'my/things/lamp/state');
    expect(telemetry?.clientId).toBeUndefined();
    expect(JSON.parse(telemetry?.payload.toString() ?? 'null')).toEqual({ temperature: 19 });

    await device.subscribe('my/things/lamp/cmd');
    await front.publish('my/things/lamp/cmd', '{"blink":1}', { qos: 1 });
    expect((await device.take('my/things/lamp/cmd')).json).toEqual({ blink: 1 });
  });

  it('applies a retained request once, not again each time the service subscribes anew', async () => {
    // A broker of its own: the suite's service would answer this device's requests too.
    const own = await startMosquitto();
    const other = createShadowEngine();
    const first = await startMqttFront(other, {
      broker: own.url,
      serviceClient: { clientId: 'svc-retain-1' },
    });
    const d = await connectTestClient(own.url, { clientId: 'retainer' });
    let second: MqttFront | undefined;
    try {
      await d.subscribe('$aws/things/retainer/shadow/update/accepted');
      await d.publish('$aws/things/retainer/shadow/update', { state: { desired: { a: 1 } } }, 1, true);
      await d.take('$aws/things/retainer/shadow/update/accepted');
      await d.publish('$aws/things/retainer/shadow/update', { state: { desired: { a: 2 } } }, 1);
      await d.take('$aws/things/retainer/shadow/update/accepted');
      await first.close();
      // A restart (or a reconnect) subscribes again; mosquitto then replays the retained request with RETAIN set.
      second = await startMqttFront(other, { broker: own.url, serviceClient: { clientId: 'svc-retain-2' } });
      // mosquitto queues a replay right when it handles the new SUBSCRIBE, so the service would get (and apply)
      // it before this later get, and its accepted message would come before the get's answer.
      await d.subscribe('$aws/things/retainer/shadow/get/accepted');
      await d.publish('$aws/things/retainer/shadow/get', '', 1);
      expect((await d.take('$aws/things/retainer/shadow/get/accepted')).json).toMatchObject({
        version: 2,
        state: { desired: { a: 2 } },
      });
      expect(d.unread('$aws/things/retainer/shadow/update/accepted')).toEqual([]);
      expect(other.read({ thingName: 'retainer' })).toMatchObject({
        version: 2,
        state: { desired: { a: 2 } },
      });
    } finally {
      await d.close();
      await first.close();
      await second?.close();
      await other.close();
      await own.stop();
    }
  });

  it('names the broker and the login when the external broker refuses the service client', async () => {
    const closed = await startMosquitto(() => ['allow_anonymous false']);
    const other = createShadowEngine();
    try {
      await expect(
        startMqttFront(other, { broker: closed.url, serviceClient: { clientId: 'svc-refused' } }),
      ).rejects.toThrow(
        `joining the MQTT broker ${closed.url} as client 'svc-refused' without a username failed: Connection refused: Not authorized`,
      );
    } finally {
      await other.close();
      await closed.stop();
    }
  });

  it('fails clearly when the external broker cannot be reached', async () => {
    const closedPort = await freePort();
    const other = createShadowEngine();
    await expect(
      startMqttFront(other, { broker: `mqtt://127.0.0.1:${closedPort}`, connectTimeoutMs: 2000 }),
    ).rejects.toThrow(/ECONNREFUSED|timed out/);
    await other.close();
  });
});
