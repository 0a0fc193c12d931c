/**
 * Races of the device agent under every delivery order fast-check's scheduler picks: each message the service
 * sends (accepted, rejected, delta, get answers) is delivered as an independent scheduled task, so answers
 * overtake each other across and within topics, and deltas come twice. The broker and service here are a
 * TEST DOUBLE (an in-memory stand-in for an mqtt.js client wired to H1's pure service rules); the same agent
 * runs against the real service and broker in convergence.test.ts.
 */
import { EventEmitter } from 'node:events';
import fc from 'fast-check';
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { applyUpdate } from '../../src/core/apply-update.js';
import { computeDelta } from '../../src/core/delta.js';
import type { JsonObject, ShadowRecord } from '../../src/core/document.js';
import { getDocument } from '../../src/core/get-document.js';
import { parseShadowTopic, shadowTopic } from '../../src/core/topics.js';
import { createDeviceAgent } from '../../src/device/index.js';
import { createFakeClock } from '../support/fake-clock.js';

const target = { thingName: 'race' };

/** TEST DOUBLE: a connected mqtt.js-like client whose "service" applies the pure core's rules. */
class SchedulerServiceDouble extends EventEmitter {
  record: ShadowRecord | undefined;
  readonly connected = true;
  readonly stream = undefined;
  constructor(private readonly scheduler: fc.Scheduler) {
    super();
  }

  /** Delivers a service message later, in an order the scheduler picks. */
  private send(suffix: Parameters<typeof shadowTopic>[1], body: unknown, copies = 1): void {
    const topic = shadowTopic(target, suffix);
    const payload = Buffer.from(JSON.stringify(body));
    for (let i = 0; i < copies; i++) {
      void this.scheduler
        .schedule(Promise.resolve(), `${suffix}`)
        .then(() => this.emit('message', topic, payload));
    }
  }

  /** An update from anyone (the device's publish or the app's HTTP call): accepted, then a delta if any. */
  update(request: unknown): void {
    const result = applyUpdate(this.record, request, { target, now: Date.now() });
    if (!result.ok) {
      const { code, message, clientToken } = result.rejection;
      this.send('update/rejected', { code, message, timestamp: 1, ...(clientToken ? { clientToken } : {}) });
      return;
    }
    this.record = result.shadow;
    this.send('update/accepted', result.accepted);
    if (result.delta !== undefined) this.send('update/delta', result.delta, 2); // duplicated on purpose
  }

  publish(topic: string, payload: string, _options: unknown, callback?: (error?: Error) => void): this {
    callback?.();
    const parsed = parseShadowTopic(topic);
    if (parsed === undefined || parsed.response !== undefined) return this; // telemetry: not the service's
    const body = payload.length === 0 ? {} : (JSON.parse(payload) as { clientToken?: string });
    if (parsed.operation === 'update') this.update(body);
    if (parsed.operation === 'get') {
      const result = getDocument(this.record, {
        target,
        now: Date.now(),
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
    return topics.map((topic) => ({ topic, qos: options.qos }));
  }

  async unsubscribeAsync() {
    return undefined;
  }
}

const write = fc
  .record(
    {
      power: fc.constantFrom('on', 'off'),
      level: fc.integer({ min: 0, max: 3 }),
      mode: fc.constantFrom('a', 'b'),
    },
    { requiredKeys: [] },
  )
  .filter((patch) => Object.keys(patch).length > 0) as fc.Arbitrary<JsonObject>;

/** Replays a failing run: RACE_SEED=<seed> RACE_PATH=<path> npx vitest run test/device/device-agent.races.test.ts */
const replay =
  process.env.RACE_SEED === undefined
    ? {}
    : { seed: Number(process.env.RACE_SEED), path: process.env.RACE_PATH ?? '0', endOnFailure: true };

describe('device agent races (fc.scheduler over a service test double)', () => {
  it('whatever order the answers and deltas arrive in, the device ends applying and reporting desired', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(fc.tuple(write, fc.boolean()), { minLength: 1, maxLength: 6 }),
        async (scheduler, steps) => {
          const service = new SchedulerServiceDouble(scheduler);
          // The agent's own timers (report coalescing, retries) run on fake time the loop below advances.
          const clock = createFakeClock();
          service.update({ state: { desired: { power: 'off' } } });
          const agent = await createDeviceAgent({
            thingName: target.thingName,
            mqtt: service as unknown as MqttClient,
            resyncIntervalMs: 0, // no safety net: nothing is lost here, ordering alone must converge
            requestTimeoutMs: 60_000,
            clock,
            onDelta: (delta) => delta,
          });
          try {
            for (const step of steps) {
              const [patch, deviceReports] = step;
              service.update({ state: { desired: patch } }); // the app, over HTTP
              if (deviceReports) agent.report({ uptime: steps.indexOf(step) });
              // Let some of the scheduled deliveries and the agent's own timers run.
              for (let i = 0; i < 3 && scheduler.count() > 0; i++) await scheduler.waitOne();
              await clock.advance(0);
            }
            for (let rounds = 0; rounds < 500; rounds++) {
              if (scheduler.count() > 0) await scheduler.waitOne();
              await clock.advance(1);
              if (scheduler.count() === 0 && agent.status().synced) break;
            }
            const stored = service.record as { state: { desired?: JsonObject; reported?: JsonObject } };
            expect(agent.status().synced).toBe(true);
            expect(computeDelta(stored.state.desired, agent.applied())).toBeUndefined();
            expect(computeDelta(stored.state.desired, stored.state.reported)).toBeUndefined();
          } finally {
            await agent.close();
          }
        },
      ),
      { numRuns: 100, ...replay },
    );
  });
});
