import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { shadowTopic } from '../../src/core/topics.js';
import type { ClientPublish } from '../../src/emulator/broker.js';
import {
  type MqttFront,
  resolveMqttFrontOptions,
  SHADOW_REQUEST_FILTERS,
  startMqttFront,
} from '../../src/emulator/mqtt-front.js';
import { createShadowEngine, type ShadowEngine } from '../../src/emulator/shadow-engine.js';
import { isShadowError } from '../../src/errors.js';
import { flush } from '../support/fake-clock.js';
import { connectTestClient, type TestClient } from './mqtt-test-client.js';

const NOW = Date.UTC(2026, 0, 2, 3, 4, 5);
const NOW_S = Math.floor(NOW / 1000);
const HIGH_QUOTA = { requestsPerSecondPerThing: 100_000, maxInFlightPerThing: 100_000 };

const lamp = { thingName: 'lamp' };
const named = { thingName: 'lamp', shadowName: 'cfg' };

function allResponses(target: { thingName: string; shadowName?: string }): string[] {
  return (
    [
      'get/accepted',
      'get/rejected',
      'update/accepted',
      'update/rejected',
      'update/delta',
      'update/documents',
      'delete/accepted',
      'delete/rejected',
    ] as const
  ).map((suffix) => shadowTopic(target, suffix));
}

describe('MQTT front on the embedded broker with the real engine', () => {
  let engine: ShadowEngine;
  let front: MqttFront;
  let app: TestClient;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    engine = createShadowEngine({ clock: () => NOW, limits: HIGH_QUOTA });
    // The per-connection quotas stay on, the publish rate raised like the per-thing quotas above: one device
    // pipelines 300 updates at once below, three times AWS IoT's 100 publishes/s burst.
    front = await startMqttFront(engine, { connectionQuotas: { publishesPerSecondPerConnection: 10_000 } });
    app = await connectTestClient(front.mqttUrl, { clientId: 'app' });
    // Two SUBSCRIBEs: AWS IoT (and the embedded broker, by default) allows at most 8 filters in one.
    await app.subscribe(allResponses(lamp));
    await app.subscribe(allResponses(named));
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await app.close();
    await front.close();
    await engine.close();
  });

  async function device(clientId: string): Promise<TestClient> {
    const client = await connectTestClient(front.mqttUrl, { clientId });
    clients.push(client);
    return client;
  }

  it('binds a free loopback port and reports an mqtt:// URL', () => {
    expect(front.mqttUrl).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
    expect(front.mqttUrl.endsWith(':0')).toBe(false);
  });

  it('classic shadow: update publishes accepted, delta and documents with AWS payloads and the clientToken', async () => {
    const d = await device('lamp');
    await d.publish('$aws/things/lamp/shadow/update', {
      state: { desired: { color: 'red', level: 3 } },
      clientToken: 'tok-1',
    });
    const accepted = await app.take('$aws/things/lamp/shadow/update/accepted');
    expect(accepted.json).toEqual({
      state: { desired: { color: 'red', level: 3 } },
      metadata: { desired: { color: { timestamp: NOW_S }, level: { timestamp: NOW_S } } },
      version: 1,
      timestamp: NOW_S,
      clientToken: 'tok-1',
    });
    const delta = await app.take('$aws/things/lamp/shadow/update/delta');
    expect(delta.json).toEqual({
      version: 1,
      timestamp: NOW_S,
      state: { color: 'red', level: 3 },
      metadata: { color: { timestamp: NOW_S }, level: { timestamp: NOW_S } },
      clientToken: 'tok-1',
    });
    const documents = await app.take('$aws/things/lamp/shadow/update/documents');
    expect(documents.json).toEqual({
      previous: null,
      current: {
        state: { desired: { color: 'red', level: 3 } },
        metadata: { desired: { color: { timestamp: NOW_S }, level: { timestamp: NOW_S } } },
        version: 1,
      },
      timestamp: NOW_S,
      clientToken: 'tok-1',
    });

    await d.publish('$aws/things/lamp/shadow/update', { state: { reported: { color: 'red', level: 3 } } });
    const second = await app.take('$aws/things/lamp/shadow/update/accepted');
    expect(second.json).toMatchObject({ state: { reported: { color: 'red', level: 3 } }, version: 2 });
    expect(second.json).not.toHaveProperty('clientToken');
    const documents2 = await app.take('$aws/things/lamp/shadow/update/documents');
    expect(documents2.json).toMatchObject({ previous: { version: 1 }, current: { version: 2 } });
    // desired == reported: no delta, so nothing on update/delta for version 2. The service publishes an update's
    // delta before its documents, and the app gets them in that order: a delta would be here by now.
    expect(app.unread('$aws/things/lamp/shadow/update/delta')).toEqual([]);

    await d.publish('$aws/things/lamp/shadow/get', { clientToken: 'get-1' });
    const got = await app.take('$aws/things/lamp/shadow/get/accepted');
    expect(got.json).toEqual({
      state: { desired: { color: 'red', level: 3 }, reported: { color: 'red', level: 3 } },
      metadata: {
        desired: { color: { timestamp: NOW_S }, level: { timestamp: NOW_S } },
        reported: { color: { timestamp: NOW_S }, level: { timestamp: NOW_S } },
      },
      version: 2,
      timestamp: NOW_S,
      clientToken: 'get-1',
    });

    await d.publish('$aws/things/lamp/shadow/delete', { clientToken: 'del-1' });
    const deleted = await app.take('$aws/things/lamp/shadow/delete/accepted');
    expect(deleted.json).toEqual({ version: 2, timestamp: NOW_S, clientToken: 'del-1' });

    await d.publish('$aws/things/lamp/shadow/get', '');
    const missing = await app.take('$aws/things/lamp/shadow/get/rejected');
    expect(missing.json).toMatchObject({ code: 404, message: "No shadow exists with name: 'lamp'" });
    expect(missing.json).not.toHaveProperty('clientToken');

    await d.publish('$aws/things/lamp/shadow/delete', { clientToken: 'del-2' });
    const deleteMissing = await app.take('$aws/things/lamp/shadow/delete/rejected');
    expect(deleteMissing.json).toMatchObject({
      code: 404,
      message: "No shadow exists with name: 'lamp'",
      clientToken: 'del-2',
    });
  });

  it('named shadow: every reserved topic lives under /name/<shadow>/ and names the shadow in a 404', async () => {
    const d = await device('lamp');
    await d.publish('$aws/things/lamp/shadow/name/cfg/get', { clientToken: 'n0' });
    const missing = await app.take('$aws/things/lamp/shadow/name/cfg/get/rejected');
    expect(missing.json).toMatchObject({
      code: 404,
      message: "No shadow exists with name: 'cfg'",
      clientToken: 'n0',
    });

    await d.publish('$aws/things/lamp/shadow/name/cfg/update', {
      state: { desired: { mode: 'eco' } },
      clientToken: 'n1',
    });
    const accepted = await app.take('$aws/things/lamp/shadow/name/cfg/update/accepted');
    expect(accepted.json).toMatchObject({ state: { desired: { mode: 'eco' } }, clientToken: 'n1' });
    const version = (accepted.json as { version: number }).version;
    await app.take('$aws/things/lamp/shadow/name/cfg/update/delta');
    await app.take('$aws/things/lamp/shadow/name/cfg/update/documents');
    // The classic shadow's topics stay silent.
    expect(app.unread('$aws/things/lamp/shadow/update/accepted')).toEqual([]);

    await d.publish('$aws/things/lamp/shadow/name/cfg/get', { clientToken: 'n2' });
    const got = await app.take('$aws/things/lamp/shadow/name/cfg/get/accepted');
    expect(got.json).toMatchObject({
      state: { desired: { mode: 'eco' }, delta: { mode: 'eco' } },
      version,
      clientToken: 'n2',
    });

    await d.publish('$aws/things/lamp/shadow/name/cfg/delete', '');
    const deleted = await app.take('$aws/things/lamp/shadow/name/cfg/delete/accepted');
    expect(deleted.json).toEqual({ version, timestamp: NOW_S });
  });

  it('publishes AWS rejected bodies {code, message, timestamp, clientToken} for bad updates', async () => {
    const d = await device('lamp');
    const topic = '$aws/things/lamp/shadow/update';
    const rejected = '$aws/things/lamp/shadow/update/rejected';

    await d.publish(topic, '{not json');
    expect((await app.take(rejected)).json).toEqual({ code: 400, message: 'Invalid JSON', timestamp: NOW_S });

    await d.publish(topic, { clientToken: 'r1' });
    expect((await app.take(rejected)).json).toEqual({
      code: 400,
      message: 'Missing required node: state',
      timestamp: NOW_S,
      clientToken: 'r1',
    });

    await d.publish(topic, { state: { delta: { a: 1 } }, clientToken: 'r2' });
    expect((await app.take(rejected)).json).toMatchObject({
      code: 400,
      message: "State contains an invalid node: 'delta'",
      clientToken: 'r2',
    });

    await d.publish(topic, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    expect((await app.take(rejected)).json).toMatchObject({
      code: 415,
      message: 'Unsupported documented encoding; supported encoding is UTF-8',
    });

    await d.publish(topic, { state: { desired: { big: 'x'.repeat(9000) } }, clientToken: 'r3' });
    expect((await app.take(rejected)).json).toMatchObject({
      code: 413,
      message: 'The payload exceeds the maximum size allowed',
      clientToken: 'r3',
    });

    await d.publish(topic, { state: { desired: { on: true } } });
    const accepted = await app.take('$aws/things/lamp/shadow/update/accepted');
    const version = (accepted.json as { version: number }).version;
    await d.publish(topic, { state: { desired: { on: false } }, version: version + 5, clientToken: 'r4' });
    expect((await app.take(rejected)).json).toEqual({
      code: 409,
      message: 'Version conflict',
      timestamp: NOW_S,
      clientToken: 'r4',
    });
    // A rejected request leaves the stored document untouched.
    expect(engine.read(lamp)).toMatchObject({ version, state: { desired: { on: true } } });
  });

  it('accepts requests at QoS 0 and QoS 1 and answers at QoS 0 by default (AWS publishes at QoS 0)', async () => {
    const d = await device('lamp');
    await d.subscribe('$aws/things/lamp/shadow/update/accepted', 1);
    await d.publish(
      '$aws/things/lamp/shadow/update',
      { state: { reported: { q: 0 } }, clientToken: 'q0' },
      0,
    );
    const first = await d.take('$aws/things/lamp/shadow/update/accepted');
    expect(first.json).toMatchObject({ clientToken: 'q0' });
    expect(first.qos).toBe(0);
    await d.publish(
      '$aws/things/lamp/shadow/update',
      { state: { reported: { q: 1 } }, clientToken: 'q1' },
      1,
    );
    const second = await d.take('$aws/things/lamp/shadow/update/accepted');
    expect(second.json).toMatchObject({ clientToken: 'q1', state: { reported: { q: 1 } } });
    expect(second.qos).toBe(0);
  });

  it('refuses QoS 2 subscriptions and publishes by closing the connection, as AWS IoT (QoS 0 and 1 only)', async () => {
    // AWS IoT sends no SUBACK and no PUBREC when QoS 2 is requested; the broker closes the connection instead
    // of granting or acknowledging what it will not honour.
    const subscriber = await device('qos2-sub');
    const subscriberClosed = new Promise<void>((resolve) => subscriber.client.once('close', () => resolve()));
    subscriber.client.subscribe('my/things/qos2-sub/q', { qos: 2 }, () => undefined);
    await subscriberClosed;

    const d = await device('qos2');
    await d.client.subscribeAsync(['$aws/things/qos2/shadow/update/accepted', 'my/things/qos2/q'], {
      qos: 1,
    });
    await d.client.publishAsync('my/things/qos2/q', 'x', { qos: 1 });
    expect((await d.take('my/things/qos2/q')).qos).toBe(1);
    const before = front.stats();
    const closed = new Promise<void>((resolve) => d.client.once('close', () => resolve()));
    d.client.publish('$aws/things/qos2/shadow/update', '{"state":{"reported":{"a":1}}}', { qos: 2 });
    await closed;
    expect(front.stats().requests).toBe(before.requests);
    expect(engine.read({ thingName: 'qos2' })).toBeUndefined();
  });

  it('applies many pipelined updates to one shadow strictly in arrival order', async () => {
    const d = await device('counter');
    await d.subscribe([
      '$aws/things/counter/shadow/update/accepted',
      '$aws/things/counter/shadow/update/rejected',
    ]);
    const count = 300;
    await Promise.all(
      Array.from({ length: count }, (_, i) =>
        d.publish(
          '$aws/things/counter/shadow/update',
          { state: { reported: { n: i } }, clientToken: `c${i}` },
          i % 2 === 0 ? 1 : 0,
        ),
      ),
    );
    const accepted = await d.takeMany('$aws/things/counter/shadow/update/accepted', count, 15_000);
    expect(d.unread('$aws/things/counter/shadow/update/rejected')).toEqual([]);
    accepted.forEach((message, i) => {
      expect(message.json).toMatchObject({
        version: i + 1,
        clientToken: `c${i}`,
        state: { reported: { n: i } },
      });
    });
    expect(engine.read({ thingName: 'counter' })).toMatchObject({
      version: count,
      state: { reported: { n: count - 1 } },
    });
  });

  it('property: devices racing on one shadow get gap-free versions, each device in its own publish order', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ count: fc.integer({ min: 1, max: 25 }), qos: fc.constantFrom<0 | 1>(0, 1) }), {
          minLength: 2,
          maxLength: 4,
        }),
        async (devices) => {
          const thing = `race${++run}`;
          const accepted = `$aws/things/${thing}/shadow/update/accepted`;
          const watcher = await device(`${thing}-watch`);
          await watcher.subscribe(accepted);
          const racers = await Promise.all(devices.map((_, d) => device(`${thing}-d${d}`)));
          await Promise.all(
            racers.map((racer, d) =>
              Promise.all(
                Array.from({ length: (devices[d] as { count: number }).count }, (_, i) =>
                  racer.publish(
                    `$aws/things/${thing}/shadow/update`,
                    { state: { reported: { [`d${d}`]: i } }, clientToken: `${d}:${i}` },
                    (devices[d] as { qos: 0 | 1 }).qos,
                  ),
                ),
              ),
            ),
          );
          const total = devices.reduce((sum, d) => sum + d.count, 0);
          const bodies = (await watcher.takeMany(accepted, total, 10_000)).map(
            (m) => m.json as { version: number; clientToken: string },
          );
          expect(bodies.map((b) => b.version)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
          devices.forEach((d, index) => {
            const mine = bodies
              .filter((b) => b.clientToken.startsWith(`${index}:`))
              .map((b) => b.clientToken);
            expect(mine).toEqual(Array.from({ length: d.count }, (_, i) => `${index}:${i}`));
          });
          await Promise.all(clients.splice(0).map((c) => c.close()));
        },
      ),
      { numRuns: 15 },
    );
  });

  it('publishes the same MQTT messages for an HTTP-origin update (one store, one set of topics)', async () => {
    const d = await device('viahttp');
    await d.subscribe([
      '$aws/things/viahttp/shadow/update/accepted',
      '$aws/things/viahttp/shadow/update/documents',
    ]);
    const result = await engine.handle({
      operation: 'update',
      target: { thingName: 'viahttp' },
      origin: 'http',
      payload: Buffer.from(JSON.stringify({ state: { desired: { x: 1 } }, clientToken: 'h1' })),
    });
    expect(result.ok).toBe(true);
    const accepted = await d.take('$aws/things/viahttp/shadow/update/accepted');
    expect(accepted.json).toEqual(result.ok ? JSON.parse(JSON.stringify(result.body)) : undefined);
    expect((await d.take('$aws/things/viahttp/shadow/update/documents')).json).toMatchObject({
      previous: null,
    });
  });

  it('lets listeners see every client publish with topic, payload and client id, in arrival order', async () => {
    const seen: ClientPublish[] = [];
    const stop = front.onClientPublish((p) => seen.push(p));
    const d = await device('sensor');
    await d.subscribe('$aws/things/sensor/shadow/update/accepted');
    await d.publish('my/things/sensor/state', { temperature: 21.5 }, 1);
    await d.publish('$aws/things/sensor/shadow/update', { state: { reported: { on: true } } }, 1);
    await d.take('$aws/things/sensor/shadow/update/accepted');
    stop();
    await d.publish('my/things/sensor/state', { temperature: 22 }, 1);
    expect(seen.map((p) => [p.topic, p.clientId, p.qos])).toEqual([
      ['my/things/sensor/state', 'sensor', 1],
      ['$aws/things/sensor/shadow/update', 'sensor', 1],
    ]);
    expect(JSON.parse((seen[0] as ClientPublish).payload.toString())).toEqual({ temperature: 21.5 });
  });

  it('publish() delivers any topic to subscribers, retained when asked', async () => {
    await front.publish('my/things/lamp/cmd', '{"blink":2}', { qos: 1, retain: true });
    const late = await device('late');
    await late.subscribe('my/things/lamp/cmd');
    const message = await late.take('my/things/lamp/cmd');
    expect(message.json).toEqual({ blink: 2 });
    expect(message.retain).toBe(true);
    await front.publish('my/things/lamp/cmd', '', { retain: true });
  });

  it('ignores a last-will message sent to a shadow request topic (spec 7)', async () => {
    const dying = await connectTestClient(front.mqttUrl, {
      clientId: 'willy',
      extra: {
        will: {
          topic: '$aws/things/willy/shadow/update',
          payload: Buffer.from('{"state":{"reported":{"connected":false}}}'),
          qos: 1,
          retain: false,
        },
      },
    });
    const before = front.stats().requests;
    // The front sees every client publish, wills included, after it decided whether to act on it: once the
    // will reaches the listener, a request it started would already be counted.
    const willSeen = new Promise<ClientPublish>((resolve) => {
      const stop = front.onClientPublish((publish) => {
        if (!publish.will) return;
        stop();
        resolve(publish);
      });
    });
    dying.client.stream.destroy();
    expect((await willSeen).topic).toBe('$aws/things/willy/shadow/update');
    expect(front.stats().requests).toBe(before);
    expect(engine.read({ thingName: 'willy' })).toBeUndefined();
  });

  it('answers 429 on update/rejected when a thing exceeds its request rate', async () => {
    const throttledEngine = createShadowEngine({ clock: () => NOW });
    const throttledFront = await startMqttFront(throttledEngine);
    try {
      const d = await connectTestClient(throttledFront.mqttUrl, { clientId: 'busy' });
      await d.subscribe([
        '$aws/things/busy/shadow/update/accepted',
        '$aws/things/busy/shadow/update/rejected',
      ]);
      const count = 30;
      // Every request carries its own clientToken: wait until each has its answer (accepted or rejected).
      const answered = new Set<string>();
      const allAnswered = new Promise<void>((resolve) => {
        const onMessage = (_topic: string, payload: Buffer) => {
          const token = (JSON.parse(payload.toString()) as { clientToken?: string }).clientToken;
          if (token !== undefined) answered.add(token);
          if (answered.size < count) return;
          d.client.off('message', onMessage);
          resolve();
        };
        d.client.on('message', onMessage);
      });
      await Promise.all(
        Array.from({ length: count }, (_, i) =>
          d.publish(
            '$aws/things/busy/shadow/update',
            { state: { reported: { n: i } }, clientToken: `b${i}` },
            0,
          ),
        ),
      );
      await allAnswered;
      const rejected = d.unread('$aws/things/busy/shadow/update/rejected');
      const accepted = d.unread('$aws/things/busy/shadow/update/accepted');
      expect(accepted.length + rejected.length).toBe(count);
      expect(rejected.length).toBeGreaterThanOrEqual(count - 20);
      expect(rejected[0]?.json).toMatchObject({ code: 429, message: 'Rate exceeded' });
      await d.close();
    } finally {
      await throttledFront.close();
      await throttledEngine.close();
    }
  });

  it('counts requests and responses', () => {
    const stats = front.stats();
    expect(stats.requests).toBeGreaterThan(0);
    expect(stats.responses).toBeGreaterThan(stats.requests);
    expect(stats.engineErrors).toBe(0);
    expect(stats.broker?.connectedClients).toBeGreaterThanOrEqual(1);
  });
});

describe('MQTT front with a failing engine (test double)', () => {
  it('counts and logs an engine that throws or rejects, and keeps serving other requests', async () => {
    /** Test double of the engine contract: fails on thing 'boom', answers nothing otherwise. */
    const failingEngineDouble = {
      handled: [] as string[],
      handle(request: { target: { thingName: string } }) {
        failingEngineDouble.handled.push(request.target.thingName);
        if (request.target.thingName === 'boom') throw new Error('synchronous failure');
        if (request.target.thingName === 'bust') return Promise.reject(new Error('asynchronous failure'));
        return Promise.resolve({
          ok: false as const,
          rejection: { code: 500, message: 'x', errorType: 'InternalFailureException' as const },
        });
      },
      listNamedShadows: () => ({ ok: true as const, body: { results: [], timestamp: 0 } }),
      onMessage: () => () => {},
    };
    const warnings: string[] = [];
    let twoWarnings: () => void = () => {};
    const warnedTwice = new Promise<void>((resolve) => {
      twoWarnings = resolve;
    });
    const warn = (message: string) => {
      warnings.push(message);
      if (warnings.length === 2) twoWarnings();
    };
    const front = await startMqttFront(failingEngineDouble, { logger: { warn } });
    try {
      const d = await connectTestClient(front.mqttUrl, { clientId: 'x' });
      await d.publish('$aws/things/boom/shadow/get', '', 1);
      await d.publish('$aws/things/bust/shadow/get', '', 1);
      await d.publish('$aws/things/fine/shadow/get', '', 1);
      // The asynchronous failure is reported once its promise rejects; a third warning (for 'fine') would come
      // in the same turn of the event loop, so let that turn finish before counting.
      await warnedTwice;
      await flush();
      expect(failingEngineDouble.handled).toEqual(['boom', 'bust', 'fine']);
      expect(front.stats()).toMatchObject({ requests: 3, engineErrors: 2 });
      expect(warnings.filter((w) => w.startsWith('shadow engine failed on an MQTT get'))).toHaveLength(2);
      await d.close();
    } finally {
      await front.close();
    }
  });
});

describe('MQTT front options', () => {
  it('rejects unknown keys, bad broker URLs, QoS 2 and auth with an external broker', () => {
    const fails = (options: object, text: RegExp) => {
      let error: unknown;
      try {
        resolveMqttFrontOptions(options as never);
      } catch (caught) {
        error = caught;
      }
      expect(isShadowError(error)).toBe(true);
      expect((error as Error).name).toBe('ShadowOptionsError');
      expect((error as Error).message).toMatch(text);
    };
    fails({ brokr: 'embedded' }, /unknown MQTT front option 'brokr'/);
    fails({ broker: 'http://127.0.0.1:1883' }, /must be 'embedded' or a URL like mqtt:/);
    fails({ broker: 'mqtt://127.0.0.1' }, /with a port/);
    fails({ responseQos: 2 }, /responseQos must be 0 or 1/);
    fails({ broker: 'mqtt://127.0.0.1:1883', auth: {} }, /external broker enforces its own/);
    fails({ port: 70000 }, /MQTT port must be an integer/);
    fails({ serviceClient: { user: 'x' } }, /unknown MQTT serviceClient option 'user'/);
    expect(resolveMqttFrontOptions({}).responseQos).toBe(0);
  });

  it('subscribes to the request topics of every classic and named shadow', () => {
    expect([...SHADOW_REQUEST_FILTERS].sort()).toEqual(
      [
        '$aws/things/+/shadow/get',
        '$aws/things/+/shadow/update',
        '$aws/things/+/shadow/delete',
        '$aws/things/+/shadow/name/+/get',
        '$aws/things/+/shadow/name/+/update',
        '$aws/things/+/shadow/name/+/delete',
      ].sort(),
    );
  });

  it('answers at QoS 1 when responseQos is 1', async () => {
    const engine = createShadowEngine({ limits: HIGH_QUOTA });
    const front = await startMqttFront(engine, { responseQos: 1 });
    try {
      const d = await connectTestClient(front.mqttUrl, { clientId: 'q' });
      await d.subscribe('$aws/things/q/shadow/update/accepted', 1);
      await d.publish('$aws/things/q/shadow/update', { state: { reported: { a: 1 } } }, 1);
      expect((await d.take('$aws/things/q/shadow/update/accepted')).qos).toBe(1);
      await d.close();
    } finally {
      await front.close();
      await engine.close();
    }
  });
});
