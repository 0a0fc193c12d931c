/**
 * Model-based test of the local service over both transports: random get / update / delete sequences (and clock
 * jumps past the deleted-version retention), each sent either by a real mqtt.js client on the reserved topics or by
 * the real AWS SDK client over HTTP, to one `startShadowService`. Every answer, and every MQTT message an HTTP
 * request causes, is compared with what the pure core (`applyUpdate`, `applyDelete`, `getDocument`) says AWS does.
 */
import {
  DeleteThingShadowCommand,
  GetThingShadowCommand,
  IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyDelete } from '../../src/core/apply-delete.js';
import { applyUpdate, isLiveTombstone } from '../../src/core/apply-update.js';
import { decodeRequestPayload } from '../../src/core/decode-payload.js';
import type { Rejection, ShadowRecord, ShadowTarget } from '../../src/core/document.js';
import { getDocument } from '../../src/core/get-document.js';
import { type ShadowTopicSuffix, shadowTopic } from '../../src/core/topics.js';
import type { ShadowEngine } from '../../src/emulator/shadow-engine.js';
import { type ShadowService, startShadowService } from '../../src/emulator/start-shadow-service.js';
import { connectTestClient, type Received, type TestClient } from './mqtt-test-client.js';

const HOUR = 3_600_000;
let now = Date.UTC(2026, 5, 1);

interface Model {
  records: Map<string, ShadowRecord>;
  run: number;
}
interface Real {
  client: TestClient;
  http: IoTDataPlaneClient;
  engine: ShadowEngine;
}
type Via = 'mqtt' | 'http';

/** The SDK's answer as the accepted body, or the error's name and message. */
async function sdkOutcome(call: Promise<{ payload?: Uint8Array }>): Promise<unknown> {
  try {
    return { ok: true, body: JSON.parse(new TextDecoder().decode((await call).payload)) };
  } catch (error) {
    const e = error as { name: string; message: string };
    return { ok: false, name: e.name, message: e.message };
  }
}

const sdkError = (rejection: Rejection) => ({
  ok: false,
  name: rejection.errorType,
  message: rejection.message,
});

const key = (t: ShadowTarget) => `${t.thingName}/${t.shadowName ?? ''}`;
const json = (value: unknown) => JSON.parse(JSON.stringify(value)) as unknown;

let runCounter = 0;
/** Shadows of one run live under things named after the run, so runs share the service without interfering. */
function targetOf(run: number, slot: number): ShadowTarget {
  const thingName = `run${run}-${slot % 2 === 0 ? 'a' : 'b'}`;
  return slot < 2 ? { thingName } : { thingName, shadowName: 'cfg' };
}

/** Waits for the first unread message on any of `topics`. */
async function firstOf(client: TestClient, topics: string[]): Promise<Received> {
  const waiting = () => topics.find((topic) => client.unread(topic).length > 0);
  // The inbox's own listener was added first, so a message is unread by the time this one runs.
  const topic =
    waiting() ??
    (await new Promise<string>((resolve, reject) => {
      const check = () => {
        const found = waiting();
        if (found === undefined) return;
        clearTimeout(timer);
        client.client.off('message', check);
        resolve(found);
      };
      const timer = setTimeout(() => {
        client.client.off('message', check);
        reject(new Error(`no answer on ${topics.join(' | ')}`));
      }, 5000);
      client.client.on('message', check);
    }));
  return client.take(topic);
}

function expectRejected(received: Received, rejection: Rejection): void {
  const expected: Record<string, unknown> = {
    code: rejection.code,
    message: rejection.message,
    timestamp: Math.floor(now / 1000),
  };
  if (rejection.clientToken !== undefined) expected.clientToken = rejection.clientToken;
  expect(received.json).toEqual(expected);
}

function topic(target: ShadowTarget, suffix: ShadowTopicSuffix) {
  return shadowTopic(target, suffix);
}

class UpdateCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly slot: number,
    readonly body: unknown,
    readonly versionMode: 'none' | 'current' | 'stale',
    readonly via: Via,
  ) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const target = targetOf(model.run, this.slot);
    const prior = model.records.get(key(target));
    let request = this.body;
    if (
      this.versionMode !== 'none' &&
      typeof request === 'object' &&
      request !== null &&
      !Array.isArray(request)
    ) {
      const current = prior === undefined ? 0 : prior.version;
      request = { ...request, version: this.versionMode === 'current' ? current : current + 3 };
    }
    const payload = typeof request === 'string' ? request : JSON.stringify(request);
    const decoded = decodeRequestPayload(payload);
    const expected = decoded.ok
      ? applyUpdate(prior, decoded.value, { target, now, limits: real.engine.limits })
      : ({ ok: false, rejection: decoded.rejection } as const);

    if (this.via === 'http') {
      const answer = await sdkOutcome(
        real.http.send(
          new UpdateThingShadowCommand({ ...target, payload: new TextEncoder().encode(payload) }),
        ),
      );
      // REST errors are never published to `rejected` (spec 7); an accepted HTTP update is published like an MQTT one.
      if (!expected.ok) {
        expect(answer).toEqual(sdkError(expected.rejection));
        return;
      }
      expect(answer).toEqual({ ok: true, body: json(expected.accepted) });
      expect((await real.client.take(topic(target, 'update/accepted'))).json).toEqual(
        json(expected.accepted),
      );
    } else {
      await real.client.publish(topic(target, 'update'), payload, 0);
      const answer = await firstOf(real.client, [
        topic(target, 'update/accepted'),
        topic(target, 'update/rejected'),
      ]);
      if (!expected.ok) {
        expect(answer.topic).toBe(topic(target, 'update/rejected'));
        expectRejected(answer, expected.rejection);
        return;
      }
      expect(answer.topic).toBe(topic(target, 'update/accepted'));
      expect(answer.json).toEqual(json(expected.accepted));
    }
    if (expected.delta !== undefined)
      expect((await real.client.take(topic(target, 'update/delta'))).json).toEqual(json(expected.delta));
    expect((await real.client.take(topic(target, 'update/documents'))).json).toEqual(
      json(expected.documents),
    );
    expect(real.client.unread(topic(target, 'update/delta'))).toEqual([]);
    model.records.set(key(target), expected.shadow);
  }
  toString = () => `${this.via} update(${this.slot}, ${JSON.stringify(this.body)}, ${this.versionMode})`;
}

class GetCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly slot: number,
    readonly clientToken: string | undefined,
    readonly via: Via,
  ) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const target = targetOf(model.run, this.slot);
    if (this.via === 'http') {
      const expected = getDocument(model.records.get(key(target)), {
        target,
        now,
        limits: real.engine.limits,
      });
      const answer = await sdkOutcome(real.http.send(new GetThingShadowCommand(target)));
      expect(answer).toEqual(
        expected.ok ? { ok: true, body: json(expected.body) } : sdkError(expected.rejection),
      );
      return;
    }
    const expected = getDocument(model.records.get(key(target)), {
      target,
      now,
      ...(this.clientToken === undefined ? {} : { clientToken: this.clientToken }),
      limits: real.engine.limits,
    });
    await real.client.publish(
      topic(target, 'get'),
      this.clientToken === undefined ? '' : { clientToken: this.clientToken },
      1,
    );
    const answer = await firstOf(real.client, [topic(target, 'get/accepted'), topic(target, 'get/rejected')]);
    if (expected.ok) {
      expect(answer.topic).toBe(topic(target, 'get/accepted'));
      expect(answer.json).toEqual(json(expected.body));
    } else {
      expect(answer.topic).toBe(topic(target, 'get/rejected'));
      expectRejected(answer, expected.rejection);
    }
  }
  toString = () => `${this.via} get(${this.slot}, ${this.via === 'http' ? '' : this.clientToken})`;
}

class DeleteCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly slot: number,
    readonly clientToken: string | undefined,
    readonly via: Via,
  ) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const target = targetOf(model.run, this.slot);
    if (this.via === 'http') {
      const expected = applyDelete(model.records.get(key(target)), {
        target,
        now,
        limits: real.engine.limits,
      });
      const answer = await sdkOutcome(real.http.send(new DeleteThingShadowCommand(target)));
      if (!expected.ok) {
        expect(answer).toEqual(sdkError(expected.rejection));
        return;
      }
      expect(answer).toEqual({ ok: true, body: json(expected.accepted) });
      expect((await real.client.take(topic(target, 'delete/accepted'))).json).toEqual(
        json(expected.accepted),
      );
      model.records.set(key(target), expected.tombstone);
      return;
    }
    const expected = applyDelete(model.records.get(key(target)), {
      target,
      now,
      ...(this.clientToken === undefined ? {} : { clientToken: this.clientToken }),
      limits: real.engine.limits,
    });
    await real.client.publish(
      topic(target, 'delete'),
      this.clientToken === undefined ? '' : { clientToken: this.clientToken },
      1,
    );
    const answer = await firstOf(real.client, [
      topic(target, 'delete/accepted'),
      topic(target, 'delete/rejected'),
    ]);
    if (expected.ok) {
      expect(answer.topic).toBe(topic(target, 'delete/accepted'));
      expect(answer.json).toEqual(json(expected.accepted));
      model.records.set(key(target), expected.tombstone);
    } else {
      expect(answer.topic).toBe(topic(target, 'delete/rejected'));
      expectRejected(answer, expected.rejection);
    }
  }
  toString = () => `${this.via} delete(${this.slot}, ${this.via === 'http' ? '' : this.clientToken})`;
}

/** Moves the shared clock past (or within) the deleted-version retention window. */
class AdvanceClockCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly hours: number) {}
  check = () => true;
  async run(): Promise<void> {
    now += this.hours * HOUR;
  }
  toString = () => `advance(${this.hours}h)`;
}

const leaf = fc.oneof(
  fc.integer({ min: -5, max: 5 }),
  fc.constantFrom('on', 'off', ''),
  fc.boolean(),
  fc.constant(null),
);
const section = fc.dictionary(
  fc.constantFrom('a', 'b', 'c'),
  fc.oneof(
    { weight: 3, arbitrary: leaf },
    { weight: 1, arbitrary: fc.dictionary(fc.constantFrom('x', 'y'), leaf, { maxKeys: 2 }) },
  ),
  { maxKeys: 3 },
);
const updateBody = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record(
      {
        state: fc.oneof(
          {
            weight: 6,
            arbitrary: fc.record(
              {
                desired: fc.oneof(section, fc.constant(null)),
                reported: fc.oneof(section, fc.constant(null)),
              },
              { requiredKeys: [] },
            ),
          },
          { weight: 1, arbitrary: fc.constant(null) },
        ),
        clientToken: fc.constantFrom('t1', 'token-2'),
      },
      { requiredKeys: ['state'] },
    ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '{bad json',
      '',
      '[]',
      '{"state":{"delta":{}}}',
      '{"state":{"desired":[1,null]}}',
      '{"clientToken":"only"}',
    ),
  },
);
const slot = fc.integer({ min: 0, max: 3 });
const token = fc.option(fc.constantFrom('g1', 'g2'), { nil: undefined });

const via = fc.constantFrom<Via>('mqtt', 'mqtt', 'http');
const update = fc
  .tuple(
    slot,
    updateBody,
    fc.constantFrom<'none' | 'current' | 'stale'>('none', 'none', 'current', 'stale'),
    via,
  )
  .map(([s, body, mode, v]) => new UpdateCommand(s, body, mode, v));
/** Updates are listed twice so that shadows exist often enough for gets and deletes to find them. */
const commands = [
  update,
  update,
  fc.tuple(slot, token, via).map(([s, t, v]) => new GetCommand(s, t, v)),
  fc.tuple(slot, token, via).map(([s, t, v]) => new DeleteCommand(s, t, v)),
  fc.constantFrom(1, 49).map((hours) => new AdvanceClockCommand(hours)),
];

describe('the local service over MQTT and HTTP against the pure core (model-based)', () => {
  let service: ShadowService;
  let client: TestClient;
  let http: IoTDataPlaneClient;

  beforeAll(async () => {
    service = await startShadowService({
      clock: () => now,
      limits: { requestsPerSecondPerThing: 1_000_000, maxInFlightPerThing: 1_000_000 },
      // One connection sends every run's requests as fast as the loop goes, far above AWS IoT's 100 publishes/s
      // per connection: this test is about the answers, the quotas have their own (connection-quotas.test.ts).
      connectionQuotas: false,
    });
    client = await connectTestClient(service.mqttUrl, { clientId: 'model' });
    await client.subscribe(['$aws/things/+/shadow/+/+', '$aws/things/+/shadow/name/+/+/+']);
    http = new IoTDataPlaneClient({
      endpoint: service.httpEndpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
      maxAttempts: 1,
    });
  });
  afterAll(async () => {
    http.destroy();
    await client.close();
    await service.close();
  });

  it('answers every random get/update/delete sequence exactly as the core predicts, on either transport', async () => {
    const engine = service.engine;
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 30 }), async (cmds) => {
        const model: Model = { records: new Map(), run: ++runCounter };
        await fc.asyncModelRun(() => ({ model, real: { client, http, engine } }), cmds);
        for (let s = 0; s < 4; s++) {
          const target = targetOf(model.run, s);
          // The store holds exactly what the model holds, except that it drops a tombstone once it outlived the
          // deleted-version retention (the core then treats it as absent anyway).
          const modelled = model.records.get(key(target));
          const kept =
            modelled !== undefined &&
            'deleted' in modelled &&
            !isLiveTombstone(modelled, now, engine.limits.deletedVersionRetentionMs)
              ? undefined
              : modelled;
          expect(json(engine.read(target) ?? null)).toEqual(json(kept ?? null));
          // No stray answer: nothing was published that the model did not expect (e.g. a `rejected` for HTTP).
          for (const suffix of [
            'update/accepted',
            'update/rejected',
            'get/rejected',
            'delete/accepted',
            'delete/rejected',
          ] as const)
            expect(client.unread(topic(target, suffix))).toEqual([]);
        }
      }),
      { numRuns: 80 },
    );
    expect(service.mqtt.stats().engineErrors).toBe(0);
  });
});
