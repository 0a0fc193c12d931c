import { once } from 'node:events';
import { createServer, connect as netConnect } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_BROKER_OPTIONS,
  devicePublishAllowed,
  deviceSubscribeAllowed,
  resolveBrokerOptions,
  startBroker,
} from '../../src/emulator/broker.js';
import { MessageFifo } from '../../src/emulator/message-fifo.js';
import { filterWithin } from '../../src/emulator/topic-filter.js';
import { isShadowError } from '../../src/errors.js';
import { connectTestClient } from './mqtt-test-client.js';
import { connectPacket } from './security/raw-mqtt.js';

describe('filterWithin (MQTT filter containment)', () => {
  it.each([
    ['a/b/c', 'a/b/c', true],
    ['a/b/c', 'a/+/c', true],
    ['a/b/c', 'a/#', true],
    ['a', 'a/#', true],
    ['a/b', 'a/b/c', false],
    ['a/b/c', 'a/b', false],
    ['a/+/c', 'a/b/c', false],
    ['a/+/c', 'a/+/c', true],
    ['a/#', 'a/b/#', false],
    ['a/b/#', 'a/#', true],
    ['a/b/#', 'a/+/#', true],
    ['#', 'a/#', false],
    ['+/b', 'a/b', false],
    ['a/b/c/d', 'a/+/c', false],
  ])('%s within %s -> %s', (filter, pattern, expected) => {
    expect(filterWithin(filter, pattern)).toBe(expected);
  });
});

describe('device policy (iot:Connection.Thing.ThingName)', () => {
  const telemetry = ['my/things/{thingName}/#'];
  it.each([
    ['$aws/things/lamp/shadow/update', true],
    ['$aws/things/lamp/shadow/get', true],
    ['$aws/things/lamp/shadow/delete', true],
    ['$aws/things/lamp/shadow/name/cfg/update', true],
    ['$aws/things/lamp/shadow/name/cfg/get', true],
    ['$aws/things/lamp/shadow/update/accepted', false],
    ['$aws/things/lamp/shadow/update/delta', false],
    ['$aws/things/lamp/shadow/name/cfg/update/documents', false],
    ['$aws/things/fan/shadow/update', false],
    ['$aws/things/fan/shadow/name/cfg/update', false],
    ['my/things/lamp/state', true],
    ['my/things/lamp', true],
    ['my/things/lamp/a/b/c', true],
    ['my/things/fan/state', false],
    ['other/topic', false],
  ])('lamp publishing to %s -> %s', (topic, expected) => {
    expect(devicePublishAllowed('lamp', topic, telemetry)).toBe(expected);
  });

  it.each([
    ['$aws/things/lamp/shadow/update/accepted', true],
    ['$aws/things/lamp/shadow/update/+', true],
    ['$aws/things/lamp/shadow/#', true],
    ['$aws/things/lamp/shadow/name/+/update/delta', true],
    ['$aws/things/+/shadow/update/accepted', false],
    ['$aws/things/fan/shadow/update/accepted', false],
    ['$aws/things/#', false],
    ['#', false],
    ['my/things/lamp/#', true],
    ['my/things/lamp/+', true],
    ['my/things/+/state', false],
    ['my/things/fan/state', false],
  ])('lamp subscribing to %s -> %s', (filter, expected) => {
    expect(deviceSubscribeAllowed('lamp', filter, telemetry)).toBe(expected);
  });

  it('substitutes {thingName} in configured telemetry patterns', () => {
    const patterns = ['dt/{thingName}/+/data', 'broadcast/#'];
    expect(devicePublishAllowed('lamp', 'dt/lamp/kitchen/data', patterns)).toBe(true);
    expect(devicePublishAllowed('lamp', 'dt/fan/kitchen/data', patterns)).toBe(false);
    expect(devicePublishAllowed('lamp', 'broadcast/all', patterns)).toBe(true);
    expect(devicePublishAllowed('lamp', 'my/things/lamp/state', patterns)).toBe(false);
  });
});

describe('resolveBrokerOptions', () => {
  const fails = (options: object, text: RegExp) => {
    let error: unknown;
    try {
      resolveBrokerOptions(options as never);
    } catch (caught) {
      error = caught;
    }
    expect(isShadowError(error) && (error as Error).name === 'ShadowOptionsError').toBe(true);
    expect((error as Error).message).toMatch(text);
  };

  it('applies documented defaults', () => {
    const resolved = resolveBrokerOptions();
    expect(resolved).toMatchObject({
      host: '127.0.0.1',
      port: 0,
      concurrency: DEFAULT_BROKER_OPTIONS.concurrency,
      drainTimeoutMs: DEFAULT_BROKER_OPTIONS.drainTimeoutMs,
      open: true,
    });
    expect(resolved.auth.telemetryTopics).toEqual(['my/things/{thingName}/#']);
  });

  it('rejects unknown keys and invalid values with a message naming them', () => {
    fails({ hots: 'x' }, /unknown broker option 'hots'/);
    fails({ port: -1 }, /broker port must be an integer in \[0, 65535\]/);
    fails({ concurrency: 0 }, /concurrency must be a positive integer/);
    fails({ drainTimeoutMs: 1.5 }, /drainTimeoutMs must be a positive integer/);
    fails({ auth: { telemetry: [] } }, /unknown broker auth option 'telemetry'/);
    fails({ auth: { telemetryTopics: ['a/#/b'] } }, /telemetry topic "a\/#\/b" is invalid/);
    fails({ auth: { telemetryTopics: ['a/b+'] } }, /'\+' must be a whole level/);
    fails({ auth: { deniedPublish: 'ignore' } }, /deniedPublish must be 'drop' or 'disconnect'/);
    fails({ auth: { serviceCredentials: { username: '', password: 'x' } } }, /non-empty username/);
    fails({ tls: { key: 'k' } }, /needs both key and cert/);
    fails({ tls: { key: 'k', cert: 'c', requestCert: true } }, /requestCert needs the ca/);
    fails({ tls: { key: 'k', cert: 'c', passphrase: 'p' } }, /unknown broker tls option 'passphrase'/);
  });
});

describe('startBroker', () => {
  it('routes messages between real clients, publishes as the service and counts', async () => {
    const broker = await startBroker();
    try {
      expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
      const a = await connectTestClient(broker.url, { clientId: 'a' });
      const b = await connectTestClient(broker.url, { clientId: 'b' });
      await b.subscribe('t/#');
      await a.publish('t/1', 'hello', 1);
      expect((await b.take('t/1')).payload.toString()).toBe('hello');
      await broker.publish('t/2', new Uint8Array([1, 2, 3]), { qos: 1 });
      expect([...(await b.take('t/2')).payload]).toEqual([1, 2, 3]);
      expect(broker.stats()).toMatchObject({
        connectedClients: 2,
        acceptedConnections: 2,
        clientPublishes: 1,
      });
      await a.close();
      await b.close();
    } finally {
      await broker.close();
    }
  });

  it('disables Nagle on every accepted socket', async () => {
    const broker = await startBroker();
    try {
      // A socket option cannot be read back portably; check that our server hook runs setNoDelay by spying on it.
      const { Socket } = await import('node:net');
      const original = Socket.prototype.setNoDelay;
      let calls = 0;
      Socket.prototype.setNoDelay = function patched(this: InstanceType<typeof Socket>, noDelay?: boolean) {
        if (noDelay === true) calls++;
        return original.call(this, noDelay);
      };
      try {
        // A bare socket (this side never calls setNoDelay): the CONNACK proves the server accepted the socket,
        // and its hook runs on accept, before the broker reads a byte.
        const raw = netConnect(broker.port, '127.0.0.1');
        await once(raw, 'connect');
        raw.write(connectPacket('nagle'));
        const [connack] = (await once(raw, 'data')) as [Buffer];
        raw.destroy();
        expect(connack[0]).toBe(0x20);
      } finally {
        Socket.prototype.setNoDelay = original;
      }
      expect(calls).toBeGreaterThanOrEqual(1);
    } finally {
      await broker.close();
    }
  });

  it('releases its port on close, and reports a taken port as a listen error', async () => {
    const broker = await startBroker();
    const port = broker.port;
    await expect(startBroker({ port })).rejects.toThrow(/EADDRINUSE/);
    await broker.close();
    await broker.close(); // idempotent
    const probe = createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(port, '127.0.0.1', () => resolve());
    });
    await new Promise((resolve) => probe.close(resolve));
  });

  it('closing disconnects connected clients', async () => {
    const broker = await startBroker();
    const a = await connectTestClient(broker.url, { clientId: 'a' });
    const closed = new Promise<void>((resolve) => a.client.once('close', () => resolve()));
    await broker.close();
    await closed;
    await a.close();
  });
  it('closing ends a connection that never sent CONNECT at once, not after the 30 s connect timeout', async () => {
    const broker = await startBroker();
    const socket = netConnect(broker.port, '127.0.0.1');
    socket.setNoDelay(true);
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await broker.close();
    await ended;
  }, 10_000);

  it('routes a long run of messages nobody subscribes to behind saturated deliveries without overflowing the stack', async () => {
    // mqemitter starts each queued message from the completion of the one before, synchronously when nobody
    // subscribes: before the fix, 50,000 such messages queued behind `concurrency` in-flight deliveries
    // recursed until "Maximum call stack size exceeded" (aedes' nextBatch at 5,000+ device agents).
    const broker = await startBroker({ concurrency: 10 });
    const subscriber = await connectTestClient(broker.url, { clientId: 'busy-reader' });
    try {
      await subscriber.subscribe('busy');
      const routed = [
        ...Array.from({ length: 10 }, () => broker.publish('busy', 'x')),
        ...Array.from({ length: 50_000 }, (_, i) => broker.publish(`nobody/${i}`, 'x')),
      ];
      await Promise.all(routed);
      expect(routed).toHaveLength(50_010);
      expect((await subscriber.takeMany('busy', 10)).length).toBe(10);
    } finally {
      await subscriber.close();
      await broker.close();
    }
  }, 30_000);

  it('queues messages beyond its concurrency in a first-in first-out queue that takes each in O(1)', async () => {
    // mqemitter's own queue is an array drained with shift(), O(length) per message: 100,000 queued messages
    // took 23 s to drain instead of 1.6 s (a fleet-wide change to 10,000 devices queues more than that).
    const broker = await startBroker({ concurrency: 5 });
    const reader = await connectTestClient(broker.url, { clientId: 'burst-reader' });
    try {
      const router = (
        broker.aedes as unknown as { mq: { _messageQueue: unknown; _messageCallbacks: unknown } }
      ).mq;
      expect(router._messageQueue).toBeInstanceOf(MessageFifo);
      expect(router._messageCallbacks).toBeInstanceOf(MessageFifo);
      await reader.subscribe('burst');
      const count = 3_000;
      await Promise.all(Array.from({ length: count }, (_, i) => broker.publish('burst', String(i))));
      const received = await reader.takeMany('burst', count, 20_000);
      expect(received.map((message) => message.payload.toString())).toEqual(
        Array.from({ length: count }, (_, i) => String(i)),
      );
    } finally {
      await reader.close();
      await broker.close();
    }
  }, 30_000);
});
