/** The MQTT transport against the local shadow service with real mqtt.js clients. */
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShadowService } from '../../src/emulator/index.js';
import type { ShadowService } from '../../src/emulator/start-shadow-service.js';
import {
  ShadowConflictError,
  ShadowNotFoundError,
  ShadowOptionsError,
  ShadowRejectedError,
  ShadowTimeoutError,
  ShadowTransportError,
} from '../../src/errors.js';
import { mqttTransport } from '../../src/transports/mqtt.js';
import { connectMqtt } from './connect-mqtt.js';

let service: ShadowService;
const clients: MqttClient[] = [];

beforeAll(async () => {
  service = await startShadowService({
    limits: { requestsPerSecondPerThing: 100_000, maxInFlightPerThing: 10_000 },
  });
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.endAsync()));
  await service.close();
});

async function client(id: string): Promise<MqttClient> {
  const connected = await connectMqtt(service.mqttUrl, id);
  clients.push(connected);
  return connected;
}

/**
 * Resolves once `condition` holds, checking it after each message `receiver` gets (its listeners run in the
 * order they were added, so the transport's own handler has seen the message by then).
 */
const afterMessages = (receiver: MqttClient, condition: () => boolean, timeoutMs = 2000) =>
  new Promise<void>((resolve, reject) => {
    if (condition()) {
      resolve();
      return;
    }
    const check = () => {
      if (!condition()) return;
      clearTimeout(timer);
      receiver.off('message', check);
      resolve();
    };
    const timer = setTimeout(() => {
      receiver.off('message', check);
      reject(new Error('condition not met in time'));
    }, timeoutMs);
    receiver.on('message', check);
  });

describe('mqttTransport', () => {
  it('gets undefined for a missing shadow, then updates, reads and deletes it (classic and named)', async () => {
    const transport = mqttTransport(await client('app-crud'));
    for (const target of [{ thingName: 'crud-1' }, { thingName: 'crud-1', shadowName: 'config' }]) {
      await expect(transport.get(target)).resolves.toBeUndefined();
      const accepted = await transport.update(target, { state: { desired: { on: true } }, version: 0 });
      expect(accepted).toMatchObject({ state: { desired: { on: true } }, version: 1 });
      const document = await transport.get(target);
      expect(document).toMatchObject({ state: { desired: { on: true }, delta: { on: true } }, version: 1 });
      expect(document).not.toHaveProperty('clientToken');
      await expect(transport.delete(target)).resolves.toMatchObject({ version: 1 });
      await expect(transport.delete(target)).rejects.toBeInstanceOf(ShadowNotFoundError);
    }
    await transport.close();
  });

  it('maps update/rejected 409 to ShadowConflictError with the expected version', async () => {
    const transport = mqttTransport(await client('app-409'));
    const target = { thingName: 'conflict-1' };
    await transport.update(target, { state: { reported: { a: 1 } } });
    const error = await transport
      .update(target, { state: { reported: { a: 2 } }, version: 5 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowConflictError);
    expect(error).toMatchObject({
      statusCode: 409,
      awsMessage: 'Version conflict',
      expectedVersion: 5,
      thingName: 'conflict-1',
    });
    const invalid = await transport
      .update(target, { state: { bogus: {} } } as never)
      .catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(ShadowRejectedError);
    expect((invalid as ShadowRejectedError).awsMessage).toBe("State contains an invalid node: 'bogus'");
    await transport.close();
  });

  it("keeps a caller's own clientToken and refuses a duplicate one in flight", async () => {
    const transport = mqttTransport(await client('app-token'));
    const target = { thingName: 'token-1' };
    const accepted = await transport.update(target, { state: { desired: { x: 1 } }, clientToken: 'mine-42' });
    expect(accepted.clientToken).toBe('mine-42');
    const first = transport.update(target, { state: { desired: { x: 2 } }, clientToken: 'dup' });
    await expect(
      transport.update(target, { state: { desired: { x: 3 } }, clientToken: 'dup' }),
    ).rejects.toBeInstanceOf(ShadowOptionsError);
    await expect(first).resolves.toMatchObject({ clientToken: 'dup' });
    await transport.close();
  });

  it('correlates many requests in flight, from two transports sharing topics', async () => {
    const a = mqttTransport(await client('app-many-a'));
    const b = mqttTransport(await client('app-many-b'));
    const target = { thingName: 'many-1' };
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        (i % 2 === 0 ? a : b).update(target, { state: { reported: { [`k${i}`]: i } } }),
      ),
    );
    const versions = results.map((r) => r.version).sort((x, y) => x - y);
    expect(versions).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    results.forEach((result, i) => {
      expect(result.state).toEqual({ reported: { [`k${i}`]: i } });
    });
    await Promise.all([a.close(), b.close()]);
  });

  it('keeps the current document from update/documents and the re-create version from delete/accepted', async () => {
    const watcherClient = await client('app-watch');
    const watcher = mqttTransport(watcherClient);
    const writer = mqttTransport(await client('app-writer'));
    const target = { thingName: 'watched-1', shadowName: 'cfg' };
    await watcher.get(target); // subscribes
    expect(watcher.known(target)).toBeUndefined();
    await writer.update(target, { state: { desired: { mode: 'cool' } } });
    await writer.update(target, { state: { desired: { fan: 2 } } });
    await afterMessages(watcherClient, () => {
      const known = watcher.known(target);
      return known?.exists === true && known.document.version === 2;
    });
    expect(watcher.known(target)).toMatchObject({
      exists: true,
      document: { state: { desired: { mode: 'cool', fan: 2 } } },
    });
    await writer.delete(target);
    await afterMessages(watcherClient, () => watcher.known(target)?.exists === false);
    expect(watcher.known(target)).toEqual({ exists: false, version: 3 });
    await Promise.all([watcher.close(), writer.close()]);
  });

  it('times out with ShadowTimeoutError when no answer comes', async () => {
    const transport = mqttTransport(await client('app-timeout'), { timeoutMs: 150 });
    const target = { thingName: 'timeout-1' };
    await transport.get(target); // subscribed while answers still flow
    service.mqtt.faults.set({ drop: 1 });
    try {
      const error = await transport.get(target).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ShadowTimeoutError);
      expect(error).toMatchObject({ timeoutMs: 150, thingName: 'timeout-1' });
    } finally {
      service.mqtt.faults.clear();
    }
    await transport.close();
  });

  it('rejects requests in flight on close and refuses new ones', async () => {
    const transport = mqttTransport(await client('app-close'), { timeoutMs: 2000 });
    const target = { thingName: 'close-1' };
    await transport.get(target);
    service.mqtt.faults.set({ drop: 1 });
    try {
      // In flight once the service received it (its answer is then dropped).
      const received = new Promise<void>((resolve) => {
        const stop = service.mqtt.onClientPublish((publish) => {
          if (publish.topic !== '$aws/things/close-1/shadow/get') return;
          stop();
          resolve();
        });
      });
      const inFlight = transport.get(target).catch((e: unknown) => e);
      await received;
      await transport.close();
      expect(await inFlight).toBeInstanceOf(ShadowTransportError);
    } finally {
      service.mqtt.faults.clear();
    }
    await expect(transport.get(target)).rejects.toBeInstanceOf(ShadowTransportError);
  });

  it('never publishes a request when close() or an abort came while it waited for its subscription', async () => {
    const transport = mqttTransport(await client('app-close-subscribing'), { timeoutMs: 3000 });
    const reader = mqttTransport(await client('app-close-reader'));
    const closedTarget = { thingName: 'close-subscribing-1' };
    const abortedTarget = { thingName: 'abort-subscribing-1' };
    const controller = new AbortController();
    const started = Date.now();
    const aborted = transport
      .update(abortedTarget, { state: { desired: { on: true } } }, { signal: controller.signal })
      .catch((e: unknown) => e);
    controller.abort(new Error('caller gave up'));
    expect(await aborted).toMatchObject({ message: 'caller gave up' });
    const closing = transport
      .update(closedTarget, { state: { desired: { on: true } } })
      .catch((e: unknown) => e);
    await transport.close();
    const error = await closing;
    expect(error).toBeInstanceOf(ShadowTransportError);
    expect((error as Error).message).toMatch(/close-subscribing-1.*closed/);
    // Both answered at once instead of after timeoutMs, and neither write reached the service.
    expect(Date.now() - started).toBeLessThan(2000);
    await expect(reader.get(closedTarget)).resolves.toBeUndefined();
    await expect(reader.get(abortedTarget)).resolves.toBeUndefined();
    await reader.close();
  });

  it('close() unsubscribes only what it subscribed: update/documents stays when trackDocuments is false', async () => {
    const raw = await client('app-own-documents');
    const target = { thingName: 'own-documents-1' };
    const documentsTopic = '$aws/things/own-documents-1/shadow/update/documents';
    await raw.subscribeAsync(documentsTopic, { qos: 1 });
    const heard: string[] = [];
    raw.on('message', (topic) => heard.push(topic));
    const transport = mqttTransport(raw, { trackDocuments: false });
    await transport.get(target);
    await transport.close();
    const writer = mqttTransport(await client('app-own-documents-writer'));
    await writer.update(target, { state: { reported: { on: true } } });
    await afterMessages(raw, () => heard.includes(documentsTopic));
    await writer.close();
  });

  it('never takes an update/delta carrying its clientToken for the answer (a device listening to deltas on the same connection)', async () => {
    const raw = await client('device-with-delta');
    const target = { thingName: 'delta-listener-1' };
    await raw.subscribeAsync('$aws/things/delta-listener-1/shadow/update/delta', { qos: 1 });
    let deltas = 0;
    raw.on('message', (topic) => {
      if (topic.endsWith('/update/delta')) deltas++;
    });
    const transport = mqttTransport(raw);
    // The delta of an update may reach the client before its update/accepted.
    service.mqtt.faults.set({ seed: 3, reorder: 0.5, reorderWindowMs: 5 });
    try {
      for (let i = 1; i <= 20; i++) {
        const accepted = await transport.update(target, { state: { desired: { step: i } } });
        expect(accepted).toMatchObject({ state: { desired: { step: i } }, version: i });
      }
    } finally {
      service.mqtt.faults.clear();
    }
    expect(deltas).toBeGreaterThan(0);
    await transport.close();
  });

  it('rejects unknown or invalid options', async () => {
    const raw = await client('app-options');
    expect(() => mqttTransport(raw, { timeout: 5 } as never)).toThrow(/unknown option 'timeout'/);
    expect(() => mqttTransport(raw, { qos: 2 as never })).toThrow(/QoS 2/);
    expect(() => mqttTransport(raw, { timeoutMs: 0 })).toThrow(ShadowOptionsError);
    // Node fires a timer above 2^31 - 1 ms at once: every request would time out immediately.
    expect(() => mqttTransport(raw, { timeoutMs: 2 ** 31 })).toThrow(/timeoutMs/);
    // Tokens are limited to 64 bytes, not characters: 40 two-byte characters would make every request fail.
    expect(() => mqttTransport(raw, { clientTokenPrefix: 'é'.repeat(40) })).toThrow(/clientTokenPrefix/);
  });
});
