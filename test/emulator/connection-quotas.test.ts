import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { type EmbeddedBroker, type MqttLogger, startBroker } from '../../src/emulator/broker.js';
import {
  createConnectionQuotaState,
  DEFAULT_CONNECTION_QUOTAS,
  resolveConnectionQuotas,
} from '../../src/emulator/connection-quotas.js';
import { startMqttFront } from '../../src/emulator/mqtt-front.js';
import { createShadowEngine } from '../../src/emulator/shadow-engine.js';
import { isShadowError } from '../../src/errors.js';
import { connectTestClient, type TestClient } from './mqtt-test-client.js';

describe('connection quotas (pure)', () => {
  it("defaults are AWS IoT Core's per-connection quotas, frozen", () => {
    expect(DEFAULT_CONNECTION_QUOTAS).toEqual({
      maxSubscriptionsPerConnection: 50,
      maxFiltersPerSubscribe: 8,
      publishesPerSecondPerConnection: 100,
      publishRateExceeded: 'unacknowledged',
    });
    expect(Object.isFrozen(DEFAULT_CONNECTION_QUOTAS)).toBe(true);
    expect(resolveConnectionQuotas({ maxSubscriptionsPerConnection: 100 })).toMatchObject({
      maxSubscriptionsPerConnection: 100,
      maxFiltersPerSubscribe: 8,
    });
  });

  it.each([
    [{ maxSubscriptions: 3 }, "unknown connection quota 'maxSubscriptions'"],
    [{ maxFiltersPerSubscribe: 0 }, 'maxFiltersPerSubscribe must be a positive integer, got 0'],
    [{ publishesPerSecondPerConnection: 1.5 }, 'must be a positive integer, got 1.5'],
    [
      { publishRateExceeded: 'close' },
      "publishRateExceeded must be 'unacknowledged', 'drop' or 'disconnect', got close",
    ],
  ])('rejects %j', (quotas, message) => {
    let error: unknown;
    try {
      resolveConnectionQuotas(quotas as never);
    } catch (e) {
      error = e;
    }
    expect(isShadowError(error)).toBe(true);
    expect((error as Error).message).toContain(message);
  });

  it('counts distinct filters: a repeated filter does not count twice, an unsubscribed one frees its place', () => {
    const state = createConnectionQuotaState(
      resolveConnectionQuotas({ maxSubscriptionsPerConnection: 3 }),
      () => 0,
    );
    expect(['a', 'b', 'a', 'c'].map((f) => state.subscribe(f, 1))).toEqual([
      'grant',
      'grant',
      'grant',
      'grant',
    ]);
    expect(state.subscribe('d', 1)).toBe('refuse');
    expect(state.subscribe('c', 1)).toBe('grant');
    state.unsubscribed(['a']);
    expect(state.subscribe('d', 1)).toBe('grant');
    expect(state.subscriptions).toBe(3);
    expect(state.subscribe('e', 9)).toBe('disconnect');
    expect(state.subscribe('e', 8)).toBe('refuse');
  });

  it('allows a burst of one second of publishes, then the sustained rate, on the injected clock', () => {
    let now = 1000;
    const state = createConnectionQuotaState(DEFAULT_CONNECTION_QUOTAS, () => now);
    expect(Array.from({ length: 100 }, () => state.publish()).every(Boolean)).toBe(true);
    expect(state.publish()).toBe(false);
    now += 9;
    expect(state.publish()).toBe(false);
    now += 1;
    expect(state.publish()).toBe(true);
    expect(state.publish()).toBe(false);
    now += 60_000;
    expect(Array.from({ length: 101 }, () => state.publish()).filter(Boolean)).toHaveLength(100);
  });
});

describe('connection quotas in the embedded broker', () => {
  let broker: EmbeddedBroker | undefined;
  const clients: TestClient[] = [];
  const warnings: string[] = [];
  const logger: MqttLogger = { warn: (message) => warnings.push(message) };
  let now = 0;
  const clock = () => now;

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await broker?.close();
    broker = undefined;
    warnings.length = 0;
  });

  async function client(clientId: string): Promise<TestClient> {
    if (broker === undefined) throw new Error('no broker');
    const c = await connectTestClient(broker.url, { clientId });
    clients.push(c);
    return c;
  }

  it('grants 50 subscriptions per connection and refuses the 51st with SUBACK 0x80; other connections are not affected', async () => {
    broker = await startBroker({ connectionQuotas: true, clock, logger });
    const app = await client('app');
    const filters = Array.from({ length: 50 }, (_, i) => `$aws/things/t${i}/shadow/update/accepted`);
    for (let i = 0; i < 50; i += 8) expect(await app.subscribe(filters.slice(i, i + 8))).not.toContain(128);
    expect(await app.subscribe(['$aws/things/t0/shadow/update/accepted', 'extra/one'])).toEqual([1, 128]);
    await app.client.unsubscribeAsync('$aws/things/t1/shadow/update/accepted');
    expect(await app.subscribe('extra/one')).toEqual([1]);
    expect(await app.subscribe('extra/two')).toEqual([128]);
    const other = await client('other');
    expect(await other.subscribe('extra/two')).toEqual([1]);
    expect(broker.stats().connectionQuotas).toEqual({
      refusedSubscriptions: 2,
      oversizedSubscribes: 0,
      throttledPublishes: 0,
    });
    expect(warnings.filter((w) => w.includes('holds 50 subscriptions'))).toHaveLength(2);
    // A refused subscription receives nothing.
    await other.publish('extra/two', 'x');
    expect(await other.take('extra/two')).toBeDefined();
    expect(app.unread('extra/two')).toEqual([]);
  });

  it('closes a connection whose SUBSCRIBE carries more than 8 topic filters', async () => {
    broker = await startBroker({ connectionQuotas: true, clock, logger });
    const app = await client('app');
    const closed = new Promise<void>((resolve) => app.client.once('close', () => resolve()));
    const filters = Array.from({ length: 9 }, (_, i) => `f/${i}`);
    app.client.subscribe(filters, { qos: 1 }, () => {});
    await closed;
    expect(broker.stats().connectionQuotas?.oversizedSubscribes).toBe(1);
    expect(warnings.some((w) => w.includes('a SUBSCRIBE carried 9 topic filters'))).toBe(true);
    // Eight are fine.
    const ok = await client('ok');
    expect(await ok.subscribe(filters.slice(0, 8))).toEqual(Array(8).fill(1));
  });

  it("with publishRateExceeded 'drop' publishes above 100 per second are acknowledged, not routed; the rate refills", async () => {
    const seen: string[] = [];
    broker = await startBroker({
      connectionQuotas: { publishRateExceeded: 'drop' },
      clock,
      logger,
      onClientPublish: (p) => seen.push(p.topic),
    });
    const watcher = await client('watcher');
    await watcher.subscribe('telemetry/#');
    const noisy = await client('noisy');
    await Promise.all(Array.from({ length: 150 }, (_, i) => noisy.publish(`telemetry/${i}`, 'x', 1)));
    await watcher.takeMany('telemetry/99', 1);
    expect(seen.filter((t) => t.startsWith('telemetry/'))).toEqual(
      Array.from({ length: 100 }, (_, i) => `telemetry/${i}`),
    );
    expect(broker.stats().connectionQuotas?.throttledPublishes).toBe(50);
    // Another connection has its own budget; a second later this one has a full one again.
    const quiet = await client('quiet');
    await quiet.publish('telemetry/q', 'x');
    now += 1000;
    await noisy.publish('telemetry/after', 'x');
    await watcher.take('telemetry/q');
    await watcher.take('telemetry/after');
    expect(watcher.unread('telemetry/120')).toEqual([]);
  });

  it('by default a QoS 1 publish above 100 per second gets no PUBACK (AWS IoT throttling) and is not routed', async () => {
    const seen: string[] = [];
    broker = await startBroker({ clock, logger, onClientPublish: (p) => seen.push(p.topic) });
    const watcher = await client('watcher');
    await watcher.subscribe('telemetry/#');
    const noisy = await client('noisy');
    let acknowledged = 0;
    for (let i = 0; i < 150; i++)
      noisy.client.publish(`telemetry/${i}`, 'x', { qos: 1 }, () => acknowledged++);
    // A SUBSCRIBE after them is handled after them (one connection's packets in order): once it is granted,
    // every publish has been decided.
    await noisy.subscribe('barrier');
    expect(acknowledged).toBe(100);
    expect(Object.keys((noisy.client as unknown as { outgoing: object }).outgoing)).toHaveLength(50);
    expect(broker.stats().connectionQuotas?.throttledPublishes).toBe(50);
    // A second later the connection has a full budget again.
    now += 1000;
    await noisy.publish('telemetry/after', 'x', 1);
    await watcher.take('telemetry/after');
    expect(seen.filter((t) => t.startsWith('telemetry/'))).toEqual([
      ...Array.from({ length: 100 }, (_, i) => `telemetry/${i}`),
      'telemetry/after',
    ]);
    expect(watcher.unread('telemetry/120')).toEqual([]);
    expect(warnings.filter((w) => w.includes('publish throttled'))).toHaveLength(50);
  });

  it('a shadow service joined to this broker answers above the rate: its response topics do not count', async () => {
    const login = { username: 'svc', password: 'svc-secret' };
    broker = await startBroker({ auth: { serviceCredentials: login }, clock, logger });
    const device = await client('lamp');
    await device.subscribe('$aws/things/lamp/shadow/update/accepted');
    const service = await connectTestClient(broker.url, { clientId: 'svc-joined', ...login });
    clients.push(service);
    await Promise.all(
      Array.from({ length: 150 }, (_, version) =>
        service.publish('$aws/things/lamp/shadow/update/accepted', { version }, 1),
      ),
    );
    expect(await device.takeMany('$aws/things/lamp/shadow/update/accepted', 150)).toHaveLength(150);
    expect(broker.stats().connectionQuotas?.throttledPublishes).toBe(0);
    // Anything else the same connection publishes counts (an app holding the service credentials is a client).
    for (let i = 0; i < 101; i++) service.client.publish('telemetry/x', 'x', { qos: 0 });
    await service.subscribe('barrier');
    expect(broker.stats().connectionQuotas?.throttledPublishes).toBe(1);
  });

  it("with publishRateExceeded 'disconnect' the publish over the rate closes the connection", async () => {
    broker = await startBroker({
      connectionQuotas: { publishesPerSecondPerConnection: 5, publishRateExceeded: 'disconnect' },
      clock,
      logger,
    });
    const noisy = await client('noisy');
    const closed = new Promise<void>((resolve) => noisy.client.once('close', () => resolve()));
    for (let i = 0; i < 6; i++) noisy.client.publish('telemetry/x', 'x', { qos: 0 });
    await closed;
    expect(broker.stats().connectionQuotas?.throttledPublishes).toBe(1);
  });

  it('is on by default with AWS values, like the per-thing quotas', async () => {
    broker = await startBroker({ logger });
    const app = await client('app');
    const filters = Array.from({ length: 51 }, (_, i) => `f/${i}`);
    for (let i = 0; i < 48; i += 8) expect(await app.subscribe(filters.slice(i, i + 8))).not.toContain(128);
    expect(await app.subscribe(filters.slice(48))).toEqual([1, 1, 128]);
    expect(broker.stats().connectionQuotas?.refusedSubscriptions).toBe(1);
  });

  it('connectionQuotas: false turns them off: nine filters in one SUBSCRIBE and 60 subscriptions are fine', async () => {
    broker = await startBroker({ connectionQuotas: false, logger });
    const app = await client('app');
    const filters = Array.from({ length: 60 }, (_, i) => `f/${i}`);
    expect(await app.subscribe(filters)).toEqual(Array(60).fill(1));
    expect(broker.stats().connectionQuotas).toBeUndefined();
  });

  it('a device over its publish rate gets no shadow update applied for the dropped requests', async () => {
    const engine = createShadowEngine({
      limits: { requestsPerSecondPerThing: 100_000, maxInFlightPerThing: 100_000 },
    });
    const front = await startMqttFront(engine, {
      // Acknowledged drops, so the test can await every publish ('unacknowledged' is tested above).
      connectionQuotas: { publishesPerSecondPerConnection: 1, publishRateExceeded: 'drop' },
      auth: {},
    });
    try {
      const device = await connectTestClient(front.mqttUrl, { clientId: 'fast' });
      clients.push(device);
      await device.subscribe('$aws/things/fast/shadow/update/accepted');
      // The rate is 1/s on the wall clock: 40 publishes would need 39 s to pass without a drop.
      await Promise.all(
        Array.from({ length: 40 }, (_, n) =>
          device.publish('$aws/things/fast/shadow/update', { state: { reported: { n } } }, 1),
        ),
      );
      // Every publish is acknowledged, so the broker has decided each one.
      const throttled = front.stats().broker?.connectionQuotas?.throttledPublishes ?? 0;
      expect(throttled).toBeGreaterThan(0);
      expect(throttled).toBeLessThan(40);
      await expect.poll(() => engine.read({ thingName: 'fast' })?.version).toBe(40 - throttled);
    } finally {
      await front.close();
      await engine.close();
    }
  });

  it('refuses connection quotas with a broker that cannot enforce them', async () => {
    const engine = createShadowEngine();
    await expect(startMqttFront(engine, { broker: 'mosquitto', connectionQuotas: true })).rejects.toThrow(
      'connectionQuotas is enforced by the embedded broker only',
    );
    await engine.close();
  });
});

describe('connection quota properties (fake time)', () => {
  it('never accepts more publishes in any window than one second of quota plus what the window refills', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }),
        fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 400 }),
        (rate, gaps) => {
          let now = 0;
          const state = createConnectionQuotaState(
            resolveConnectionQuotas({ publishesPerSecondPerConnection: rate }),
            () => now,
          );
          const accepted: number[] = [];
          for (const gap of gaps) {
            now += gap;
            if (state.publish()) accepted.push(now);
          }
          // Any window [a, b] of accepted publishes: count <= rate (the burst) + (b - a) * rate / 1000 (refill).
          for (let i = 0; i < accepted.length; i++)
            for (let j = i; j < accepted.length; j++) {
              const span = (accepted[j] as number) - (accepted[i] as number);
              expect(j - i + 1).toBeLessThanOrEqual(rate + (span * rate) / 1000 + 1e-9);
            }
        },
      ),
    );
  });

  it('accepts every publish of a connection that stays at or below the rate', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 300 }), (rate, count) => {
        let now = 0;
        const state = createConnectionQuotaState(
          resolveConnectionQuotas({ publishesPerSecondPerConnection: rate }),
          () => now,
        );
        for (let i = 0; i < count; i++) {
          expect(state.publish()).toBe(true);
          now += Math.ceil(1000 / rate);
        }
      }),
    );
  });

  it('grants a subscription exactly when the connection holds the filter already or has room (model)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.array(
          fc.oneof(
            fc.record({
              op: fc.constant('sub' as const),
              filter: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g'),
              size: fc.integer({ min: 1, max: 10 }),
            }),
            fc.record({
              op: fc.constant('unsub' as const),
              filter: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g'),
            }),
          ),
          { maxLength: 60 },
        ),
        (max, commands) => {
          const state = createConnectionQuotaState(
            resolveConnectionQuotas({ maxSubscriptionsPerConnection: max }),
            () => 0,
          );
          const model = new Set<string>();
          for (const command of commands) {
            if (command.op === 'unsub') {
              state.unsubscribed([command.filter]);
              model.delete(command.filter);
              continue;
            }
            const expected =
              command.size > 8
                ? 'disconnect'
                : model.has(command.filter) || model.size < max
                  ? 'grant'
                  : 'refuse';
            if (expected === 'grant') model.add(command.filter);
            expect(state.subscribe(command.filter, command.size)).toBe(expected);
            expect(state.subscriptions).toBe(model.size);
          }
        },
      ),
    );
  });
});
