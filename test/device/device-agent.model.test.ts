/**
 * Model-based test of the device agent (fc.commands) on fake time: random sequences of app writes, device
 * reports, disconnects and reconnects, deliveries of the service's messages dropped, duplicated or in any
 * order, injected refusals (429 and 5xx on updates and reads, 413 for an update too large or carrying a poison
 * leaf) and handler failures, with the agent's clock advanced in between (request timeouts, jittered backoff,
 * coalescing, handler retries, resyncs).
 *
 * The broker and service are a TEST DOUBLE (see inbox-service-double.ts); the same agent runs against the real
 * service and broker in convergence.test.ts.
 *
 * After each command: whatever the agent applied was desired at some point, and the handler never gets a delta
 * older than one it was given before. After the sequence, with delivery made reliable and faults stopped: the
 * agent converges (applied and reported match the last desired), and every value the device reported reaches
 * the shadow (none lost across a 413, a throttle, a timeout or a reconnect) except a poison value the service
 * refuses on its own.
 */
import fc from 'fast-check';
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { computeDelta } from '../../src/core/delta.js';
import type { JsonObject, JsonValue } from '../../src/core/document.js';
import { jsonEqual } from '../../src/core/json-equal.js';
import { createDeviceAgent, type DeviceAgent } from '../../src/device/index.js';
import { createFakeClock, type FakeClock, flush } from '../support/fake-clock.js';
import { InboxServiceDouble } from './inbox-service-double.js';

const target = { thingName: 'model' };
/** The service refuses (413) an update setting `blob` to this, alone or with others. */
const POISON = 9;
const MAX_HANDLER_ATTEMPTS = 3;

interface Real {
  service: InboxServiceDouble;
  agent: DeviceAgent;
  clock: FakeClock;
  /** Every value the app ever wrote per desired key. */
  written: Map<string, JsonValue[]>;
  /** The newest value the device reported per key. */
  reported: Map<string, JsonValue>;
  /** Versions of the deltas handed to the handler, in order. */
  handled: number[];
  /** Handler calls left to fail. */
  failHandler: number;
  /** Handler failures in a row: kept below maxHandlerAttempts, so every failure stays retryable. */
  streak: number;
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
    check(r);
  }
  toString = () => `AppWrite(${JSON.stringify(this.patch)})`;
}

class Report implements fc.AsyncCommand<Model, Real> {
  constructor(readonly values: JsonObject) {}
  check = () => true;
  async run(_m: Model, r: Real) {
    for (const [key, v] of Object.entries(this.values)) r.reported.set(key, v);
    r.agent.report(this.values);
    check(r);
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
    check(r);
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
    check(r);
  }
  toString = () => (this.up ? 'Reconnect' : 'Disconnect');
}

class Advance implements fc.AsyncCommand<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(_m: Model, r: Real) {
    await r.clock.advance(this.ms);
    check(r);
  }
  toString = () => `Advance(${this.ms})`;
}

/** The service answers the device's next update or read with an error (throttled, failing). */
class Fault implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly operation: 'update' | 'get',
    readonly code: number,
  ) {}
  check = () => true;
  async run(_m: Model, r: Real) {
    (this.operation === 'update' ? r.service.updateFaults : r.service.getFaults).push(this.code);
  }
  toString = () => `Fault(${this.operation}, ${this.code})`;
}

/** The handler's next call throws. */
class HandlerFails implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(_m: Model, r: Real) {
    if (r.streak + r.failHandler < MAX_HANDLER_ATTEMPTS - 1) r.failHandler++;
  }
  toString = () => 'HandlerFails';
}

const commands = [
  fc.dictionary(keys, value, { minKeys: 1, maxKeys: 2 }).map((patch) => new AppWrite(patch as JsonObject)),
  fc
    .dictionary(fc.constantFrom('uptime', 'rssi', 'blob', 'fw'), fc.integer({ min: 0, max: 9 }), {
      minKeys: 1,
    })
    .map((values) => new Report(values)),
  fc
    .tuple(fc.nat(20), fc.constantFrom('deliver', 'deliver', 'deliver', 'duplicate', 'drop'))
    .map(([index, mode]) => new Deliver(index, mode as 'deliver' | 'duplicate' | 'drop')),
  fc.boolean().map((up) => new Link(up)),
  fc.constantFrom(0, 1, 50, 500, 6_000).map((ms) => new Advance(ms)),
  fc
    .tuple(fc.constantFrom('update' as const, 'get' as const), fc.constantFrom(429, 500, 503))
    .map(([operation, code]) => new Fault(operation, code)),
  fc.constant(new HandlerFails()),
];

/** Invariants after every command. */
function check(r: Real): void {
  // Whatever the agent applied was desired at some point (handlers apply deltas as asked).
  for (const [key, v] of Object.entries(r.agent.applied() ?? {})) {
    expect(r.written.get(key)?.some((w) => jsonEqual(w, v))).toBe(true);
  }
  // No delta older than one already handed to the handler (a retry hands the same version again).
  for (let i = 1; i < r.handled.length; i++)
    expect(r.handled[i] as number).toBeGreaterThanOrEqual(r.handled[i - 1] as number);
}

async function settle(r: Real): Promise<void> {
  r.service.updateFaults.length = 0;
  r.service.getFaults.length = 0;
  r.failHandler = 0;
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

/** A small seeded generator, so that the jitter of every backoff is random yet replayable. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Replays a failing run: MODEL_SEED=<seed> MODEL_PATH=<path> npx vitest run test/device/device-agent.model.test.ts */
const replay =
  process.env.MODEL_SEED === undefined
    ? {}
    : { seed: Number(process.env.MODEL_SEED), path: process.env.MODEL_PATH ?? '0', endOnFailure: true };

describe('device agent, model-based on fake time (fc.commands over a service test double)', () => {
  it('through reconnects, drops, duplicates, reorders, 413s, throttles and handler failures it only applies desired values in version order, then converges without losing a report', async () => {
    let sawTooLarge = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.commands(commands, { maxCommands: 80, size: 'max' }),
        fc.nat(),
        async (cmds, seed) => {
          const clock = createFakeClock();
          // 413 for more than 3 leaves in one update (the 128 KB limit in small) and for blob = POISON.
          const service = new InboxServiceDouble(clock, target, {
            maxReportedLeaves: 3,
            poison: { key: 'blob', value: POISON },
          });
          const real: Real = {
            service,
            agent: undefined as unknown as DeviceAgent,
            clock,
            written: new Map(),
            reported: new Map(),
            handled: [],
            failHandler: 0,
            streak: 0,
          };
          const agent = await createDeviceAgent({
            thingName: target.thingName,
            mqtt: service as unknown as MqttClient,
            clock,
            random: seededRandom(seed),
            requestTimeoutMs: 5_000,
            resyncIntervalMs: 10_000, // the safety net for dropped deltas, on fake time
            handlerRetryDelayMs: 200,
            maxHandlerAttempts: MAX_HANDLER_ATTEMPTS,
            onDelta: (delta, context) => {
              real.handled.push(context.version);
              if (real.failHandler > 0) {
                real.failHandler--;
                real.streak++;
                throw new Error('actuator busy');
              }
              real.streak = 0;
              return delta;
            },
          });
          real.agent = agent;
          try {
            await fc.asyncModelRun(() => ({ model: {}, real }), cmds);
            await settle(real);
            sawTooLarge += service.refusedTooLarge;
            const stored = service.record as
              | { state: { desired?: JsonObject; reported?: JsonObject } }
              | undefined;
            expect(agent.status().synced).toBe(true);
            expect(computeDelta(stored?.state.desired, agent.applied())).toBeUndefined();
            expect(computeDelta(stored?.state.desired, stored?.state.reported)).toBeUndefined();
            for (const [key, v] of real.reported) {
              if (key === 'blob' && v === POISON) {
                expect(stored?.state.reported?.blob).not.toBe(POISON);
                continue;
              }
              expect(stored?.state.reported?.[key]).toEqual(v);
            }
          } finally {
            const closing = agent.close();
            await clock.advance(10_000);
            await closing;
          }
        },
      ),
      { numRuns: 1000, ...replay },
    );
    // The 413 path was exercised, not only generated.
    expect(sawTooLarge).toBeGreaterThan(0);
  }, 120_000);
});
