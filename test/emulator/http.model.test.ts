/**
 * Model-based test of the HTTP data plane: random sequences of get / update / delete / list over the real
 * AWS SDK client against the service, checked step by step against the pure core (`applyUpdate`,
 * `applyDelete`, `getDocument`) run on a plain map: every answer, accepted or rejected, must be the core's.
 */
import {
  DeleteThingShadowCommand,
  GetThingShadowCommand,
  IoTDataPlaneClient,
  ListNamedShadowsForThingCommand,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyDelete } from '../../src/core/apply-delete.js';
import { applyUpdate, currentVersion } from '../../src/core/apply-update.js';
import type { Rejection, ShadowRecord, ShadowTarget } from '../../src/core/document.js';
import { getDocument } from '../../src/core/get-document.js';
import type { ShadowLimits } from '../../src/core/limits.js';
import { type HttpFront, startHttpFront } from '../../src/emulator/http-front.js';
import { createShadowEngine } from '../../src/emulator/shadow-engine.js';

const LIMITS: Partial<ShadowLimits> = {
  maxStateBytes: 100,
  maxDepth: 3,
  deletedVersionRetentionMs: 4000,
  requestsPerSecondPerThing: 1_000_000,
  maxInFlightPerThing: 1000,
};

const TARGETS: readonly ShadowTarget[] = [
  { thingName: 'a' },
  { thingName: 'a', shadowName: 's1' },
  { thingName: 'a', shadowName: 's2' },
  { thingName: 'b', shadowName: 's1' },
];

interface Model {
  records: Map<number, ShadowRecord>;
}
interface Real {
  client: IoTDataPlaneClient;
  clock: { now: number };
}

const encoder = new TextEncoder();
const parse = (payload: Uint8Array | undefined): unknown => JSON.parse(new TextDecoder().decode(payload));

/** The SDK outcome as `{ ok, body }` or `{ ok: false, name, message }`. */
async function outcome(call: Promise<{ payload?: Uint8Array }>): Promise<unknown> {
  try {
    return { ok: true, body: parse((await call).payload) };
  } catch (error) {
    const e = error as { name: string; message: string };
    return { ok: false, name: e.name, message: e.message };
  }
}

function expected(result: { ok: true; body: unknown } | { ok: false; rejection: Rejection }): unknown {
  return result.ok
    ? { ok: true, body: result.body }
    : { ok: false, name: result.rejection.errorType, message: result.rejection.message };
}

/** How an update names its version: not at all, the shadow's current one (as a careful client would), or a fixed guess. */
type VersionMode = 'none' | 'current' | number;

class UpdateCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly target: number,
    readonly request: unknown,
    readonly version: VersionMode,
    readonly advanceMs: number,
  ) {}
  check(): boolean {
    return true;
  }
  async run(model: Model, real: Real): Promise<void> {
    real.clock.now += this.advanceMs;
    const target = TARGETS[this.target] as ShadowTarget;
    const prior = model.records.get(this.target);
    let request = this.request;
    if (
      this.version !== 'none' &&
      typeof request === 'object' &&
      request !== null &&
      !Array.isArray(request)
    ) {
      const version =
        this.version === 'current'
          ? currentVersion(prior, real.clock.now, LIMITS.deletedVersionRetentionMs as number)
          : this.version;
      request = { ...request, version };
    }
    const result = applyUpdate(prior, request, { target, now: real.clock.now, limits: LIMITS });
    const payload = encoder.encode(JSON.stringify(request));
    const actual = await outcome(real.client.send(new UpdateThingShadowCommand({ ...target, payload })));
    if (result.ok) {
      model.records.set(this.target, result.shadow);
      expect(actual).toEqual({ ok: true, body: result.accepted });
    } else expect(actual).toEqual(expected(result));
  }
  toString(): string {
    return `update(${this.target}, ${JSON.stringify(this.request)}, version ${this.version}, +${this.advanceMs}ms)`;
  }
}

class GetCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly target: number) {}
  check(): boolean {
    return true;
  }
  async run(model: Model, real: Real): Promise<void> {
    const target = TARGETS[this.target] as ShadowTarget;
    const result = getDocument(model.records.get(this.target), {
      target,
      now: real.clock.now,
      limits: LIMITS,
    });
    expect(await outcome(real.client.send(new GetThingShadowCommand(target)))).toEqual(expected(result));
  }
  toString(): string {
    return `get(${this.target})`;
  }
}

class DeleteCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly target: number,
    readonly advanceMs: number,
  ) {}
  check(): boolean {
    return true;
  }
  async run(model: Model, real: Real): Promise<void> {
    real.clock.now += this.advanceMs;
    const target = TARGETS[this.target] as ShadowTarget;
    const result = applyDelete(model.records.get(this.target), {
      target,
      now: real.clock.now,
      limits: LIMITS,
    });
    const actual = await outcome(real.client.send(new DeleteThingShadowCommand(target)));
    if (result.ok) {
      model.records.set(this.target, result.tombstone);
      expect(actual).toEqual({ ok: true, body: result.accepted });
    } else expect(actual).toEqual(expected(result));
  }
  toString(): string {
    return `delete(${this.target}, +${this.advanceMs}ms)`;
  }
}

class ListCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly thingName: string,
    readonly pageSize: number,
  ) {}
  check(): boolean {
    return true;
  }
  async run(model: Model, real: Real): Promise<void> {
    const live = TARGETS.flatMap((target, i) => {
      const record = model.records.get(i);
      return target.thingName === this.thingName &&
        target.shadowName !== undefined &&
        record !== undefined &&
        !('deleted' in record)
        ? [target.shadowName]
        : [];
    }).sort();
    const listed: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await real.client.send(
        new ListNamedShadowsForThingCommand({
          thingName: this.thingName,
          pageSize: this.pageSize,
          nextToken,
        }),
      );
      expect((page.results ?? []).length).toBeLessThanOrEqual(this.pageSize);
      listed.push(...(page.results ?? []));
      nextToken = page.nextToken;
    } while (nextToken !== undefined);
    expect(listed).toEqual(live);
  }
  toString(): string {
    return `list(${this.thingName}, ${this.pageSize})`;
  }
}

const leaf = fc.oneof(
  fc.integer({ min: 0, max: 3 }),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom('x', 'y', 'z'.repeat(70)),
  fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 2 }),
);
const nested = fc.dictionary(
  fc.constantFrom('p', 'q'),
  fc.oneof(leaf, fc.dictionary(fc.constantFrom('r'), leaf, { maxKeys: 1 })),
  {
    maxKeys: 2,
  },
);
const section = fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.oneof(leaf, nested), { maxKeys: 3 });
const validRequest = fc.record(
  {
    state: fc.oneof(
      { weight: 1, arbitrary: fc.constant(null) },
      {
        weight: 8,
        arbitrary: fc.record(
          { desired: fc.oneof(section, fc.constant(null)), reported: fc.oneof(section, fc.constant(null)) },
          { requiredKeys: [] },
        ),
      },
    ),
    clientToken: fc.constantFrom('t1', 'token-2'),
  },
  { requiredKeys: ['state'] },
);
const invalidRequest = fc.constantFrom<unknown>(
  {},
  { state: 5 },
  { state: { delta: {} } },
  { state: { desired: [] } },
  { state: { reported: { a: [1, null] } } },
  { state: {}, version: -1 },
  { state: {}, clientToken: 'x'.repeat(65) },
  [1, 2],
);
const request = fc.oneof({ weight: 9, arbitrary: validRequest }, { weight: 1, arbitrary: invalidRequest });
const targetIndex = fc.integer({ min: 0, max: TARGETS.length - 1 });
const advance = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3000 }));

const versionMode = fc.oneof(
  fc.constant<VersionMode>('none'),
  fc.constant<VersionMode>('current'),
  fc.integer({ min: 0, max: 4 }),
);

const commands = fc.commands(
  [
    fc.tuple(targetIndex, request, versionMode, advance).map(([t, r, v, a]) => new UpdateCommand(t, r, v, a)),
    targetIndex.map((t) => new GetCommand(t)),
    fc.tuple(targetIndex, advance).map(([t, a]) => new DeleteCommand(t, a)),
    fc
      .tuple(fc.constantFrom('a', 'b'), fc.integer({ min: 1, max: 3 }))
      .map(([thing, size]) => new ListCommand(thing, size)),
  ],
  { maxCommands: 40, size: '+1' },
);

describe('HTTP data plane against the pure core (model-based)', () => {
  it('answers every random get/update/delete/list sequence exactly as the core does', async () => {
    await fc.assert(
      fc.asyncProperty(commands, async (cmds) => {
        const clock = { now: Date.UTC(2026, 5, 1) };
        const engine = createShadowEngine({ clock: () => clock.now, limits: LIMITS });
        const front: HttpFront = await startHttpFront(engine);
        const client = new IoTDataPlaneClient({
          endpoint: front.endpoint,
          region: 'us-east-1',
          credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
          maxAttempts: 1,
        });
        try {
          await fc.asyncModelRun(() => ({ model: { records: new Map() }, real: { client, clock } }), cmds);
        } finally {
          client.destroy();
          await front.close();
          await engine.close();
        }
      }),
      { numRuns: 60 },
    );
  });
});
