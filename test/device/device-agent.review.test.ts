/**
 * Regression tests for defects found in review: each names the defect it pins down.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import type { MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDeviceAgent, type DeviceAgent } from '../../src/device/index.js';
import type { ShadowService } from '../../src/emulator/index.js';
import { splitPolicy } from '../../src/split/index.js';
import { createFakeClock, flush } from '../support/fake-clock.js';
import { mqttClient, readShadow, sdkClient, startService, waitFor, writeDesired } from './service-fixture.js';

let service: ShadowService;
let sdk: IoTDataPlaneClient;
const agents: DeviceAgent[] = [];
const clients: MqttClient[] = [];

beforeEach(async () => {
  service = await startService();
  sdk = sdkClient(service);
});

afterEach(async () => {
  for (const agent of agents.splice(0)) await agent.close();
  for (const client of clients.splice(0)) await client.endAsync(true);
  sdk.destroy();
  await service.close();
});

describe('device agent review: reconnect while a failed read waits to retry', () => {
  it('reads the shadow on the new connection instead of stalling unsynced forever', async () => {
    await writeDesired(sdk, 'pump', { speed: 3 });
    // Every shadow answer is lost: the agent's reads time out and it backs off between attempts.
    service.mqtt.faults.set({ drop: 1 });
    const client = await mqttClient(service.mqttUrl, 'pump', { reconnectPeriod: 50 });
    clients.push(client);
    const agent = await createDeviceAgent({
      thingName: 'pump',
      mqtt: client,
      requestTimeoutMs: 60,
      onDelta: (delta) => delta,
    });
    agents.push(agent);
    let syncErrors = 0;
    let dropped = false;
    agent.on('error', (_error, info) => {
      if (info.kind !== 'sync' || ++syncErrors !== 4 || dropped) return;
      // The 4th failed read: the agent now sleeps 400 ms before reading again. The faults stop and the
      // connection drops and comes back (in ~50 ms) during that sleep.
      dropped = true;
      service.mqtt.faults.clear();
      (client.stream as { destroy(): void }).destroy();
    });
    await waitFor(() => dropped, 'the 4th failed read', 5_000);
    await waitFor(() => agent.applied()?.speed === 3, 'the delta applied after the reconnect', 4_000);
    await agent.whenSynced();
    expect((await readShadow(sdk, 'pump'))?.state.reported).toEqual({ speed: 3 });
  });
});

describe('device agent review: subscriptions after a reconnect the client does not make by itself', () => {
  it('subscribes again on the new connection (the broker dropped the clean session), so deltas still arrive', async () => {
    // reconnectPeriod 0: mqtt.js neither reconnects nor re-subscribes by itself; the application reconnects.
    const client = await mqttClient(service.mqttUrl, 'lamp-manual');
    clients.push(client);
    const agent = await createDeviceAgent({
      thingName: 'lamp-manual',
      mqtt: client,
      onDelta: (delta) => delta,
    });
    agents.push(agent);
    await agent.whenSynced();
    (client.stream as { destroy(): void }).destroy();
    await waitFor(() => !agent.status().connected && !client.connected, 'the agent notices');
    client.reconnect();
    await waitFor(() => agent.status().connected, 'the agent reconnected');
    await agent.whenSynced();
    await writeDesired(sdk, 'lamp-manual', { power: 'on' }); // reaches the device only as an update/delta
    await waitFor(() => agent.applied()?.power === 'on', 'the delta applied');
  });
});

describe('device agent review: telemetry order across a reconnect', () => {
  it('publishes telemetry buffered offline before telemetry reported once the link is back', async () => {
    const client = await mqttClient(service.mqttUrl, 'buoy', { reconnectPeriod: 50 });
    clients.push(client);
    const agent = await createDeviceAgent({
      thingName: 'buoy',
      mqtt: client,
      policy: splitPolicy({ fields: { wave: 'telemetry' } }),
      onDelta: () => undefined,
    });
    agents.push(agent);
    await agent.whenSynced();
    const seen: number[] = [];
    const observer = await mqttClient(service.mqttUrl, 'buoy-observer');
    clients.push(observer);
    observer.on('message', (_topic, payload) => seen.push(JSON.parse(payload.toString()).state.wave));
    await observer.subscribeAsync('my/things/buoy/state', { qos: 1 });
    // The link drops: the device buffers its readings.
    client.options.reconnectPeriod = 0;
    (client.stream as { destroy(): void }).destroy();
    await waitFor(() => !agent.status().connected && !client.connected, 'the agent notices');
    agent.report({ wave: 1 });
    agent.report({ wave: 2 });
    // The link comes back; the device reports a new reading as soon as it learns of it.
    client.once('connect', () => agent.report({ wave: 3 }));
    client.reconnect();
    await waitFor(() => seen.length === 3, 'three readings', 3_000);
    expect(seen).toEqual([1, 2, 3]);
  });
});

describe('device agent review: handler retry after a newer delta', () => {
  it('does not hand a failed older delta to the handler again once a newer delta was applied', async () => {
    const calls: unknown[] = [];
    let failOnce = true;
    const clock = createFakeClock(Date.now());
    const agent = await createDeviceAgent({
      thingName: 'fan',
      mqtt: service.mqttUrl,
      clock,
      handlerRetryDelayMs: 300,
      onDelta: (delta) => {
        calls.push(delta.speed);
        if (delta.speed === 1 && failOnce) {
          failOnce = false;
          throw new Error('motor busy');
        }
        return delta;
      },
    });
    agents.push(agent);
    await agent.whenSynced();
    await writeDesired(sdk, 'fan', { speed: 1 });
    await waitFor(() => calls.length === 1, 'the failing call');
    await writeDesired(sdk, 'fan', { speed: 2 }); // arrives while the retry of speed 1 waits
    await waitFor(() => agent.applied()?.speed === 2, 'speed 2 applied');
    await clock.advance(500); // past the retry delay, on the agent's own clock
    await agent.whenSynced();
    expect(calls).toEqual([1, 2]);
    expect(agent.applied()).toEqual({ speed: 2 });
    expect((await readShadow(sdk, 'fan'))?.state.reported).toEqual({ speed: 2 });
  });
});

describe('device agent review: a refused report coalesced with valid ones', () => {
  it('drops only the refused value: values coalesced into the same update still reach the shadow', async () => {
    const errors: { kind: string; error: unknown }[] = [];
    const agent = await createDeviceAgent({
      thingName: 'cart',
      mqtt: service.mqttUrl,
      onDelta: () => undefined,
    });
    agents.push(agent);
    agent.on('error', (error, info) => errors.push({ kind: info.kind, error }));
    agent.report({ mode: 'eco', gear: 1 });
    await agent.whenSynced();
    // Two reports in the same tick share one update; the second is too large for the service (413).
    agent.report({ mode: 'boost' });
    agent.report({ blob: 'x'.repeat(9_000) });
    await waitFor(() => errors.length === 1, 'the refusal');
    await agent.whenSynced();
    expect(errors[0]).toMatchObject({ kind: 'report', error: { statusCode: 413 } });
    expect((await readShadow(sdk, 'cart'))?.state.reported).toEqual({ mode: 'boost', gear: 1 });
    expect(agent.status().reported).toEqual({ mode: 'boost', gear: 1 });
    expect(agent.status().pending).toBe(false);
  });
});

describe('device agent review: after close', () => {
  it('whenSynced() rejects with a ShadowTransportError naming the thing, even if the agent was in sync', async () => {
    const agent = await createDeviceAgent({
      thingName: 'kiosk',
      mqtt: service.mqttUrl,
      onDelta: () => undefined,
    });
    await agent.whenSynced();
    await agent.close();
    await expect(agent.whenSynced()).rejects.toMatchObject({
      name: 'ShadowTransportError',
      message: expect.stringContaining("'kiosk'"),
    });
    expect(agent.status().connected).toBe(false);
  });
});

describe('device agent review: delays beyond what a Node timer holds (2^31 - 1 ms, ~24.8 days)', () => {
  it('refuses a timer option a Node timer would fire after 1 ms instead', async () => {
    for (const key of ['requestTimeoutMs', 'handlerRetryDelayMs', 'coalesceMs', 'resyncIntervalMs']) {
      await expect(
        createDeviceAgent({
          thingName: 'x',
          mqtt: 'mqtt://127.0.0.1:1',
          onDelta: () => undefined,
          [key]: 2 ** 31,
        }),
      ).rejects.toMatchObject({ name: 'ShadowOptionsError', message: expect.stringContaining(key) });
    }
  });

  it('does not spin re-checking a held-back value whose staleness deadline is more than 24.8 days away', async () => {
    // Node fires a timer longer than 2^31 - 1 ms after 1 ms, so such a delay would spin: on fake time, every
    // delay the agent asks for must fit, and the re-check timers it sets in 40 fake days are counted.
    const fake = createFakeClock(Date.now());
    const delays: number[] = [];
    const clock = {
      now: () => fake.now(),
      setTimer: (callback: () => void, ms: number) => {
        delays.push(ms);
        return fake.setTimer(callback, ms);
      },
      clearTimer: (handle: unknown) => fake.clearTimer(handle),
    };
    const agent = await createDeviceAgent({
      thingName: 'meter',
      mqtt: service.mqttUrl,
      onDelta: () => undefined,
      clock,
      resyncIntervalMs: 0,
      policy: splitPolicy({
        fields: { kwh: { route: 'telemetry', alsoShadow: { deadband: 1, maxStalenessMs: 40 * 86_400_000 } } },
      }),
    });
    agents.push(agent);
    await agent.whenSynced();
    agent.report({ kwh: 10 });
    await fake.advance(0); // the report's (zero) coalescing delay
    await waitFor(() => agent.stats().reportsAccepted === 1, 'the first value reported');
    agent.report({ kwh: 10.5 }); // within the deadband: held back for 40 days
    const before = delays.length;
    for (let day = 0; day < 39; day++) await fake.advance(86_400_000);
    expect(Math.max(...delays)).toBeLessThanOrEqual(2 ** 31 - 1);
    // One re-check per 24.8 days at most (and the request timeouts of nothing: no request was sent).
    expect(delays.length - before).toBeLessThan(5);
    expect(agent.stats().reportsAccepted).toBe(1);
  });
});

describe('device agent review: a read answered 404 after the report that created the shadow', () => {
  it('does not take the late "no shadow" answer as the truth and forget what it reported', async () => {
    const client = await mqttClient(service.mqttUrl, 'tag');
    clients.push(client);
    // Once the first read is in, the device's link holds back answers on get/rejected (the 404s of reads) until
    // the device's first report was accepted: a read sent just before that report is answered after it.
    const rejectedTopic = '$aws/things/tag/shadow/get/rejected';
    const held: unknown[][] = [];
    let holding = false;
    const emit = client.emit.bind(client) as (event: string, ...args: unknown[]) => boolean;
    client.emit = ((event: string, ...args: unknown[]) => {
      if (holding && event === 'message' && args[0] === rejectedTopic) {
        held.push(args);
        return true;
      }
      return emit(event, ...args);
    }) as typeof client.emit;
    const clock = createFakeClock(Date.now());
    const agent = await createDeviceAgent({
      thingName: 'tag',
      mqtt: client,
      clock,
      resyncIntervalMs: 20,
      onDelta: () => undefined,
    });
    agents.push(agent);
    await agent.whenSynced(); // the shadow does not exist yet
    holding = true;
    await clock.advance(20); // the resync read is on its way
    agent.report({ battery: 80 });
    await clock.advance(0); // the report's (zero) coalescing delay
    await waitFor(() => agent.stats().reportsAccepted === 1, 'the report accepted');
    await waitFor(() => held.length > 0, 'the 404 of the resync read');
    holding = false;
    for (const args of held.splice(0)) emit('message', ...args);
    await flush(); // the agent has handled the late answer by the next macrotask
    expect(agent.status().reported).toEqual({ battery: 80 });
    expect((await readShadow(sdk, 'tag'))?.state.reported).toEqual({ battery: 80 });
  });
});

/** A TCP proxy to the broker that can turn into a black hole (the link stays open, nothing gets through). */
async function blackHoleProxy(target: string): Promise<{ url: string; cut(): void; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let cut = false;
  const server: Server = createServer((inbound) => {
    inbound.setNoDelay(true);
    const outbound = tcpConnect(Number(port), hostname, () => outbound.setNoDelay(true));
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    }
    inbound.on('data', (chunk) => cut || outbound.write(chunk));
    outbound.on('data', (chunk) => cut || inbound.write(chunk));
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `mqtt://127.0.0.1:${address.port}`,
    cut: () => {
      cut = true;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('device agent review: close() on a link that went silent', () => {
  it('returns within the request timeout instead of waiting forever for the broker', async () => {
    const proxy = await blackHoleProxy(service.mqttUrl);
    try {
      const clock = createFakeClock(Date.now());
      const agent = await createDeviceAgent({
        thingName: 'probe',
        mqtt: proxy.url,
        clock,
        requestTimeoutMs: 200,
        telemetryQos: 1,
        policy: splitPolicy({ fields: { rssi: 'telemetry' } }),
        onDelta: () => undefined,
      });
      await agent.whenSynced();
      proxy.cut();
      agent.report({ mode: 'x', rssi: -70 }); // an update and a QoS 1 publish that will never be answered
      await clock.advance(0); // the update goes out
      let closed = false;
      const closing = agent.close().then(() => {
        closed = true;
        return 'closed';
      });
      // The unsubscribe and the in-flight messages each wait at most requestTimeoutMs of the agent's clock.
      for (let step = 0; step < 10 && !closed; step++) await clock.advance(200);
      expect(await Promise.race([closing, Promise.resolve('still closing after 2 s of its clock')])).toBe(
        'closed',
      );
    } finally {
      await proxy.close();
    }
  });
});
