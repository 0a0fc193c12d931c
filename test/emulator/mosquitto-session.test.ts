/**
 * External-broker mode keeps a persistent session: requests a broker acknowledged while the service was
 * disconnected are applied after it reconnects, in order, and none twice. Needs the mosquitto binary
 * (`scripts/ensure-mosquitto.mjs`); each test starts its own managed mosquitto with persistence on and restarts
 * it in the middle of a burst.
 */
import { connect as netConnect } from 'node:net';
import { connectAsync, type IClientOptions, MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import type { OutgoingMessage } from '../../src/emulator/engine-api.js';
import { type ManagedMosquitto, startManagedMosquitto } from '../../src/emulator/managed-mosquitto.js';
import { type MqttFront, startMqttFront } from '../../src/emulator/mqtt-front.js';
import { createRedeliveryFilter } from '../../src/emulator/redelivery-filter.js';
import { createShadowEngine, type ShadowEngine } from '../../src/emulator/shadow-engine.js';

const HIGH_QUOTA = { requestsPerSecondPerThing: 100_000, maxInFlightPerThing: 100_000 };

describe('redelivery filter', () => {
  const message = (messageId: number, dup: boolean, payload = 'p', topic = 't') => ({
    messageId,
    dup,
    topic,
    payload: Buffer.from(payload),
  });

  it('skips a DUP copy of the last message let through under that packet id, nothing else', () => {
    const filter = createRedeliveryFilter();
    expect(filter.isRedelivery(message(1, false))).toBe(false);
    expect(filter.isRedelivery(message(1, true))).toBe(true);
    // Same id, different content: a new message (the broker reused the id after our PUBACK).
    expect(filter.isRedelivery(message(1, true, 'q'))).toBe(false);
    expect(filter.isRedelivery(message(1, true, 'q', 'other'))).toBe(false);
    // Without DUP a message always passes, even with the same content.
    expect(filter.isRedelivery(message(1, false, 'q', 'other'))).toBe(false);
    expect(filter.isRedelivery(message(2, true))).toBe(false);
    expect(filter.skipped).toBe(1);
    filter.reset();
    expect(filter.isRedelivery(message(2, true))).toBe(false);
  });
});

describe.each([5, 4] as const)('persistent session of the service client (MQTT %s)', (protocolVersion) => {
  let mosquitto: ManagedMosquitto | undefined;
  let engine: ShadowEngine | undefined;
  let front: MqttFront | undefined;
  let device: MqttClient | undefined;

  afterEach(async () => {
    await device?.endAsync(true);
    await front?.close();
    await engine?.close();
    await mosquitto?.close();
  });

  it('applies every request acknowledged across a broker restart exactly once, in order', async () => {
    mosquitto = await startManagedMosquitto({ persistence: true });
    engine = createShadowEngine({ limits: HIGH_QUOTA });
    const applied: number[] = [];
    const rejected: number[] = [];
    const engineMessageTimes: number[] = [];
    engine.onMessage((message: OutgoingMessage) => {
      engineMessageTimes.push(performance.now());
      if (message.topic === '$aws/things/burst/shadow/update/accepted') {
        const body = JSON.parse(Buffer.from(message.payload).toString()) as {
          state: { reported: { n: number } };
        };
        applied.push(body.state.reported.n);
      } else if (message.topic === '$aws/things/burst/shadow/update/rejected') rejected.push(1);
    });
    front = await startMqttFront(engine, {
      broker: mosquitto.serviceUrl,
      serviceClient: {
        clientId: `svc-persist-${protocolVersion}`,
        ...mosquitto.serviceCredentials,
        protocolVersion,
      },
    });
    // The device keeps its own session too and reconnects fast, so it is back (and publishing) while the
    // service still waits for its one-second reconnect period: the broker acknowledges and queues for it.
    const options: IClientOptions = {
      clientId: 'burst',
      protocolVersion,
      clean: false,
      reconnectPeriod: 50,
      connectTimeout: 5000,
      ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
    };
    const brokerUrl = new URL(mosquitto.url);
    const burst = await new Promise<MqttClient>((resolve, reject) => {
      const client = new MqttClient(
        () => netConnect({ host: brokerUrl.hostname, port: Number(brokerUrl.port), noDelay: true }),
        options,
      );
      client.once('connect', () => resolve(client));
      client.once('error', reject);
      // While the broker restarts, reconnect attempts fail with ECONNREFUSED until it listens again.
      client.on('error', () => {});
    });
    device = burst;
    const count = 240;
    const acknowledged: number[] = [];
    const ackTimes: number[] = [];
    let restarted = 0;
    const publishes: Promise<void>[] = [];
    let fortyAcknowledged: () => void = () => {};
    const someAcknowledged = new Promise<void>((resolve) => {
      fortyAcknowledged = resolve;
    });
    for (let n = 0; n < count; n++) {
      // Versioned: request n applies only on top of version n, so a second copy of it (QoS 1 is at least once
      // end to end) is refused with 409 instead of applying twice, and a lost or reordered request would stall
      // every later one.
      const body = JSON.stringify({ state: { reported: { n } }, version: n });
      publishes.push(
        burst.publishAsync('$aws/things/burst/shadow/update', body, { qos: 1 }).then(() => {
          acknowledged.push(n);
          ackTimes.push(performance.now());
          if (acknowledged.length === 40) fortyAcknowledged();
        }),
      );
      if (n === 80) {
        // Mid-burst: wait until some are acknowledged, then restart the broker under both clients.
        await someAcknowledged;
        await mosquitto.restart();
        restarted = performance.now();
      }
    }
    await Promise.all(publishes);
    await expect
      .poll(() => engine?.read({ thingName: 'burst' })?.version, { timeout: 20_000, interval: 50 })
      .toBe(count);
    expect(mosquitto.health()).toMatchObject({ running: true, restarts: 1 });
    expect(acknowledged).toHaveLength(count);
    // Every acknowledged request was applied once, in publish order.
    expect(applied).toEqual(Array.from({ length: count }, (_, n) => n));
    expect(engine.read({ thingName: 'burst' })).toMatchObject({ state: { reported: { n: count - 1 } } });
    // Some requests were acknowledged by the broker after the restart while the service was still away: before
    // the engine saw anything again.
    const serviceBack = engineMessageTimes.find((t) => t > restarted) ?? Number.POSITIVE_INFINITY;
    const ackedWhileServiceAway = ackTimes.filter((t) => t > restarted && t < serviceBack).length;
    expect(ackedWhileServiceAway).toBeGreaterThan(0);
    // A device resending a request whose PUBACK the restart lost makes a second copy: refused with 409, never
    // applied (the applied sequence above has no repeats).
    expect(rejected.length).toBeLessThan(count);
  });
});

describe('managed mosquitto health', () => {
  it('reports an unexpected exit to the logger and in health(); restart() brings it back on the same port', async () => {
    const warnings: string[] = [];
    const broker = await startManagedMosquitto({
      autoRestart: false,
      logger: { warn: (message) => warnings.push(message) },
    });
    try {
      const pid = broker.health().pid;
      expect(pid).toBeTypeOf('number');
      process.kill(pid as number, 'SIGKILL');
      await expect.poll(() => broker.health().running).toBe(false);
      expect(broker.health().unexpectedExit).toBe('SIGKILL');
      expect(warnings).toEqual(['mosquitto exited unexpectedly (SIGKILL)']);
      await broker.restart();
      expect(broker.health()).toMatchObject({ running: true, restarts: 1 });
      const client = await connectAsync(broker.url, { clientId: 'after', reconnectPeriod: 0 });
      await client.endAsync(true);
    } finally {
      await broker.close();
    }
  });

  it('restarts a crashed mosquitto by itself, and the service joins it again', async () => {
    const warnings: string[] = [];
    const engine = createShadowEngine();
    const front = await startMqttFront(engine, {
      broker: 'mosquitto',
      logger: { warn: (message) => warnings.push(message) },
    });
    try {
      const pid = front.mosquitto?.health().pid as number;
      process.kill(pid, 'SIGKILL');
      await expect.poll(() => front.mosquitto?.health().restarts, { timeout: 10_000 }).toBe(1);
      await expect
        .poll(() => warnings, { timeout: 10_000 })
        .toContain('mosquitto restarted after an unexpected exit');
      expect(front.mosquitto?.health()).toMatchObject({ running: true, unexpectedExit: 'SIGKILL' });
      // The device reconnects; the service's client has re-joined (it reconnects every second) once its update
      // is answered.
      const device = await connectAsync(front.mqttUrl, { clientId: 'revived', reconnectPeriod: 0 });
      try {
        await device.subscribeAsync('$aws/things/revived/shadow/update/accepted', { qos: 1 });
        const accepted = new Promise<void>((resolve) => device.once('message', () => resolve()));
        const retry = setInterval(
          () => device.publish('$aws/things/revived/shadow/update', '{"state":{"reported":{"up":1}}}'),
          250,
        );
        await accepted.finally(() => clearInterval(retry));
      } finally {
        await device.endAsync(true);
      }
    } finally {
      await front.close();
      await engine.close();
    }
  });
});
