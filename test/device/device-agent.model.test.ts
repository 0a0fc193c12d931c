/**
 * Model-based test of the device agent (fc.commands) on fake time: random sequences of app writes, device
 * reports, disconnects and reconnects, and deliveries of the service's messages dropped, duplicated or in any
 * order, with the agent's clock advanced in between (request timeouts, backoff, coalescing, resyncs).
 *
 * The broker and service are a TEST DOUBLE (an mqtt.js-like client whose "service" applies the pure core's
 * rules and holds every message for the device in an inbox the commands deliver from); the same agent runs
 * against the real service and broker in convergence.test.ts.
 *
 * After each command: whatever the agent applied was desired at some point. After the sequence, with
 * delivery made reliable again: the agent converges (applied and reported match desired, and the device's own
 * reports reach the shadow).
 */
import { EventEmitter } from 'node:events';
import fc from 'fast-check';
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { applyUpdate } from '../../src/core/apply-update.js';
import { computeDelta } from '../../src/core/delta.js';
import type { JsonObject, JsonValue, ShadowRecord } from '../../src/core/document.js';
import { getDocument } from '../../src/core/get-document.js';
import { jsonEqual } from '../../src/core/json-equal.js';
import { parseShadowTopic, shadowTopic } from '../../src/core/topics.js';
import { createDeviceAgent, type DeviceAgent } from '../../src/device/index.js';
import { createFakeClock, type FakeClock, flush } from '../support/fake-clock.js';

const target = { thingName: 'model' };

/** TEST DOUBLE: a client whose service answers into an inbox that the commands deliver from. */
class InboxServiceDouble extends EventEmitter {
  record: ShadowRecord | undefined;
  connected = true;
  readonly stream = undefined;
  inbox: { topic: string; payload: Buffer }[] = [];
  constructor(private readonly clock: FakeClock) {
    super();
  }

  private send(suffix: Parameters<typeof shadowTopic>[1], body: unknown): void {
    if (!this.connected) return;
    this.inbox.push({ topic: shadowTopic(target, suffix), payload: Buffer.from(JSON.stringify(body)) });
  }

  update(request: unknown): void {
    const result = applyUpdate(this.record, request, { target, now: this.clock.now() });
    if (!result.ok) {
      const { code, message, clientToken } = result.rejection;
      this.send('update/rejected', { code, message, timestamp: 1, ...(clientToken ? { clientToken } : {}) });
      return;
    }
    this.record = result.shadow;
    this.send('update/accepted', result.accepted);
    if (result.delta !== undefined) this.send('update/delta', result.delta);
  }

  publish(topic: string, payload: string, _options: unknown, callback?: (error?: Error) => void): this {
    if (!this.connected) {
      callback?.(new Error('client disconnecting'));
      return this;
    }
    callback?.();
    const parsed = parseShadowTopic(topic);
    if (parsed === undefined || parsed.response !== undefined) return this;
    const body = payload.length === 0 ? {} : (JSON.parse(payload) as { clientToken?: string });
    if (parsed.operation === 'update') this.update(body);
    if (parsed.operation === 'get') {
      const result = getDocument(this.record, {
        target,
        now: this.clock.now(),
        ...(body.clientToken === undefined ? {} : { clientToken: body.clientToken }),
      });
      if (result.ok) this.send('get/accepted', result.body);
      else
        this.send('get/rejected', {
          code: 404,
          message: result.rejection.message,
          clientToken: body.clientToken,
        });
    }
    return this;
  }

  async subscribeAsync(topics: string[], options: { qos: number }) {
    if (!this.connected) throw new Error('client disconnecting');
    return topics.map((topic) => ({ topic, qos: options.qos }));
  }

  async unsubscribeAsync() {
    return undefined;
  }

  take(index: number, keep: boolean): void {
    if (this.inbox.length === 0) return;
    const at = index % this.inbox.length;
    const message = this.inbox[at] as { topic: string; payload: Buffer };
    if (!keep) this.inbox.splice(at, 1);
    this.emit('message', message.topic, message.payload);
  }

  drop(index: number): void {
    if (this.inbox.length > 0) this.inbox.splice(index % this.inbox.length, 1);
  }

  disconnect(): void {
    if (!this.connected) return;
    this.connected = false;
    this.inbox = []; // in flight on a broken link
    this.emit('close');
  }

  reconnect(): void {
    if (this.connected) return;
    this.connected = true;
    this.emit('connect');
  }
}

interface Real {
  service: InboxServiceDouble;
  agent: DeviceAgent;
  clock: FakeClock;
  /** Every value the app ever wrote per desired key. */
  written: Map<string, JsonValue[]>;
  /** The newest value the device reported per key. */
  reported: Map<string, JsonValue>;
}
type Model = Record<string, never>;

const keys = fc.constantFrom('power', 'level', 'mode');
const value = fc.oneof(fc.constantFrom('on', 'off', 'eco'), fc.integer({ min: 0, max: 3 }));

class AppWrite implements fc.AsyncCommand<Model, Real> {
  constructor(readonly patch: JsonObject) {}
  check = () => true;
  async run(_m: Model, r: Real) {
    for (const [key, v] of Object.entries(this.patch)) r.written.get(key)?.push(v) ?? r.written.set(key, [v]);
    r.service.update({ state: { desired: this.patch } }); // the app over HTTP: no link needed
    checkApplied(r);
  }
  toString = () => `AppWrite(${JSON.stringify(this.patch)})`;
}

class Report implements fc.AsyncCommand<Model, Real> {
  constructor(readonly values: JsonObject) {}
  check = () => true;
  async run(_m: Model, r: Real) {
    for (const [key, v] of Object.entries(this.values)) r.reported.set(key, v);
    r.agent.report(this.values);
    checkApplied(r);
  }
  toString = () => `Report(${JSON.stringify(this.values)})`;
}

class Deliver implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly index: number,
    readonly mode: 'deliver' | 'duplicate' | 'drop',
  ) {}
  check = () => true;
  async run(_m: Model, r: Real) {
    if (this.mode === 'drop') r.service.drop(this.index);
    else r.service.take(this.index, this.mode === 'duplicate');
    await flush();
    checkApplied(r);
  }
  toString = () => `${this.mode}(${this.index})`;
}

class Link implements fc.AsyncCommand<Model, Real> {
  constructor(readonly up: boolean) {}
  check = () => true;
  async run(_m: Model, r: Real) {
    if (this.up) r.service.reconnect();
    else r.service.disconnect();
    await flush();
    checkApplied(r);
  }
  toString = () => (this.up ? 'Reconnect' : 'Disconnect');
}

class Advance implements fc.AsyncCommand<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(_m: Model, r: Real) {
    await r.clock.advance(this.ms);
    checkApplied(r);
  }
  toString = () => `Advance(${this.ms})`;
}

const commands = [
  fc.dictionary(keys, value, { minKeys: 1, maxKeys: 2 }).map((patch) => new AppWrite(patch as JsonObject)),
  fc
    .dictionary(fc.constantFrom('uptime', 'rssi'), fc.integer({ min: 0, max: 9 }), { minKeys: 1 })
    .map((values) => new Report(values)),
  fc
    .tuple(fc.nat(20), fc.constantFrom('deliver', 'deliver', 'deliver', 'duplicate', 'drop'))
    .map(([index, mode]) => new Deliver(index, mode as 'deliver' | 'duplicate' | 'drop')),
  fc.boolean().map((up) => new Link(up)),
  fc.constantFrom(0, 1, 50, 500, 6_000).map((ms) => new Advance(ms)),
];

/** Whatever the agent applied was desired at some point (handlers apply deltas as asked). */
function checkApplied(r: Real): void {
  for (const [key, v] of Object.entries(r.agent.applied() ?? {})) {
    expect(r.written.get(key)?.some((w) => jsonEqual(w, v))).toBe(true);
  }
}

async function settle(r: Real): Promise<void> {
  r.service.reconnect();
  for (let round = 0; round < 400; round++) {
    while (r.service.inbox.length > 0) {
      r.service.take(0, false);
      await flush();
    }
    const stored = r.service.record as { state: { desired?: JsonObject; reported?: JsonObject } } | undefined;
    const done =
      r.agent.status().synced &&
      r.service.inbox.length === 0 &&
      computeDelta(stored?.state.desired, stored?.state.reported) === undefined;
    if (done) return;
    await r.clock.advance(500);
  }
}

/** Replays a failing run: MODEL_SEED=<seed> MODEL_PATH=<path> npx vitest run test/device/device-agent.model.test.ts */
const replay =
  process.env.MODEL_SEED === undefined
    ? {}
    : { seed: Number(process.env.MODEL_SEED), path: process.env.MODEL_PATH ?? '0', endOnFailure: true };

describe('device agent, model-based on fake time (fc.commands over a service test double)', () => {
  it('through reconnects, drops, duplicates and reorders it only applies desired values, then converges', async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 40 }), async (cmds) => {
        const clock = createFakeClock();
        const service = new InboxServiceDouble(clock);
        const agent = await createDeviceAgent({
          thingName: target.thingName,
          mqtt: service as unknown as MqttClient,
          clock,
          random: () => 0.5,
          requestTimeoutMs: 5_000,
          resyncIntervalMs: 10_000, // the safety net for dropped deltas, on fake time
          onDelta: (delta) => delta,
        });
        const real: Real = { service, agent, clock, written: new Map(), reported: new Map() };
        try {
          await fc.asyncModelRun(() => ({ model: {}, real }), cmds);
          await settle(real);
          const stored = service.record as
            | { state: { desired?: JsonObject; reported?: JsonObject } }
            | undefined;
          expect(agent.status().synced).toBe(true);
          expect(computeDelta(stored?.state.desired, agent.applied())).toBeUndefined();
          expect(computeDelta(stored?.state.desired, stored?.state.reported)).toBeUndefined();
          for (const [key, v] of real.reported) expect(stored?.state.reported?.[key]).toEqual(v);
        } finally {
          const closing = agent.close();
          await clock.advance(10_000);
          await closing;
        }
      }),
      { numRuns: 150, ...replay },
    );
  }, 120_000);
});
