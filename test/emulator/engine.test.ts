import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { ShadowTarget } from '../../src/core/document.js';
import type { OutgoingMessage, ShadowRequest } from '../../src/emulator/engine-api.js';
import {
  createShadowEngine,
  resolveShadowEngineOptions,
  type ShadowEngineOptions,
  THROTTLED_MESSAGE,
} from '../../src/emulator/shadow-engine.js';
import { isShadowError } from '../../src/errors.js';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const encode = (value: unknown): Uint8Array =>
  new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));
const decode = (message: OutgoingMessage): unknown => JSON.parse(new TextDecoder().decode(message.payload));

/** An engine with a hand-driven clock and a log of everything it published. */
function setup(options: ShadowEngineOptions = {}) {
  const clock = { now: T0 };
  const engine = createShadowEngine({ clock: () => clock.now, ...options });
  const messages: { topic: string; body: unknown }[] = [];
  engine.onMessage((m) => messages.push({ topic: m.topic, body: decode(m) }));
  const request = (
    operation: ShadowRequest['operation'],
    target: ShadowTarget,
    payload: unknown = '',
    origin: ShadowRequest['origin'] = 'http',
  ) => engine.handle({ operation, target, payload: encode(payload), origin });
  return { clock, engine, messages, request };
}

const HIGH_QUOTA = { requestsPerSecondPerThing: 100_000, maxInFlightPerThing: 100_000 };

describe('shadow engine: messages', () => {
  it('emits update/accepted, update/delta and update/documents after an accepted update from any origin', async () => {
    const { request, messages } = setup();
    const result = await request(
      'update',
      { thingName: 'lamp' },
      { state: { desired: { on: true } }, clientToken: 'c1' },
    );
    expect(result).toMatchObject({ ok: true, body: { version: 1, clientToken: 'c1' } });
    expect(messages.map((m) => m.topic)).toEqual([
      '$aws/things/lamp/shadow/update/accepted',
      '$aws/things/lamp/shadow/update/delta',
      '$aws/things/lamp/shadow/update/documents',
    ]);
    expect(messages[1]?.body).toMatchObject({ version: 1, state: { on: true }, clientToken: 'c1' });
    expect(messages[2]?.body).toMatchObject({ previous: null, current: { version: 1 }, clientToken: 'c1' });
  });

  it('emits no update/delta when the resulting delta is empty', async () => {
    const { request, messages } = setup();
    await request(
      'update',
      { thingName: 'lamp', shadowName: 'cfg' },
      { state: { reported: { on: true } } },
      'mqtt',
    );
    expect(messages.map((m) => m.topic)).toEqual([
      '$aws/things/lamp/shadow/name/cfg/update/accepted',
      '$aws/things/lamp/shadow/name/cfg/update/documents',
    ]);
  });

  it('re-publishes an unchanged non-empty delta by default, and not with publishUnchangedDelta false', async () => {
    for (const [publishUnchangedDelta, expected] of [
      [true, 2],
      [false, 1],
    ] as const) {
      const { request, messages } = setup({ publishUnchangedDelta });
      await request('update', { thingName: 'ac' }, { state: { desired: { temp: 21 } } });
      await request('update', { thingName: 'ac' }, { state: { reported: { humidity: 40 } } });
      expect(messages.filter((m) => m.topic.endsWith('/update/delta'))).toHaveLength(expected);
    }
  });

  it('publishes rejections on MQTT only for MQTT-origin requests, with code, message, timestamp and clientToken', async () => {
    const { request, messages, clock } = setup();
    const http = await request(
      'update',
      { thingName: 'lamp' },
      { state: { desired: { on: 1 } }, version: 5, clientToken: 'h' },
    );
    expect(http).toEqual({
      ok: false,
      rejection: { code: 409, message: 'Version conflict', errorType: 'ConflictException', clientToken: 'h' },
    });
    expect(messages).toEqual([]);
    const mqtt = await request(
      'update',
      { thingName: 'lamp' },
      { state: { desired: { on: 1 } }, version: 5, clientToken: 'm' },
      'mqtt',
    );
    expect(mqtt.ok).toBe(false);
    expect(messages).toEqual([
      {
        topic: '$aws/things/lamp/shadow/update/rejected',
        body: {
          code: 409,
          message: 'Version conflict',
          timestamp: Math.floor(clock.now / 1000),
          clientToken: 'm',
        },
      },
    ]);
  });

  it('answers get over MQTT on get/accepted echoing the clientToken, and 404 on get/rejected', async () => {
    const { request, messages } = setup();
    await request('get', { thingName: 'lamp' }, { clientToken: 'g0' }, 'mqtt');
    expect(messages.pop()).toEqual({
      topic: '$aws/things/lamp/shadow/get/rejected',
      body: {
        code: 404,
        message: "No shadow exists with name: 'lamp'",
        timestamp: T0 / 1000,
        clientToken: 'g0',
      },
    });
    await request('update', { thingName: 'lamp' }, { state: { reported: { on: false } } });
    messages.length = 0;
    const http = await request('get', { thingName: 'lamp' });
    expect(http).toMatchObject({ ok: true, body: { version: 1, state: { reported: { on: false } } } });
    expect(messages).toEqual([]);
    await request('get', { thingName: 'lamp' }, { clientToken: 'g1' }, 'mqtt');
    expect(messages).toEqual([
      {
        topic: '$aws/things/lamp/shadow/get/accepted',
        body: expect.objectContaining({ version: 1, clientToken: 'g1', state: { reported: { on: false } } }),
      },
    ]);
  });

  it('emits delete/accepted for every origin and keeps the version numbering across delete and re-create', async () => {
    const { request, messages, engine } = setup();
    await request('update', { thingName: 'lamp' }, { state: { desired: { on: true } } });
    await request('update', { thingName: 'lamp' }, { state: { desired: { on: false } } });
    messages.length = 0;
    const deleted = await request('delete', { thingName: 'lamp' }, { clientToken: 'd' }, 'mqtt');
    expect(deleted).toEqual({ ok: true, body: { version: 2, timestamp: T0 / 1000, clientToken: 'd' } });
    expect(messages.map((m) => m.topic)).toEqual(['$aws/things/lamp/shadow/delete/accepted']);
    expect(engine.read({ thingName: 'lamp' })).toEqual({ deleted: true, version: 3, deletedAt: T0 });
    const again = await request('delete', { thingName: 'lamp' });
    expect(again).toMatchObject({
      ok: false,
      rejection: { code: 404, errorType: 'ResourceNotFoundException' },
    });
    const recreated = await request('update', { thingName: 'lamp' }, { state: { desired: { on: true } } });
    expect(recreated).toMatchObject({ ok: true, body: { version: 4 } });
  });

  it('keeps publishing to the other listeners when one throws, and stops after unsubscribe', async () => {
    const { engine, request } = setup();
    const seen: string[] = [];
    engine.onMessage(() => {
      throw new Error('broken front');
    });
    const off = engine.onMessage((m) => seen.push(m.topic));
    await request('update', { thingName: 'a' }, { state: { reported: { x: 1 } } });
    off();
    await request('update', { thingName: 'a' }, { state: { reported: { x: 2 } } });
    expect(seen).toHaveLength(2);
  });
});

describe('shadow engine: quotas', () => {
  it(`answers 429 ThrottlingException '${THROTTLED_MESSAGE}' beyond requestsPerSecondPerThing, refilled by the clock`, async () => {
    const { request, clock, messages } = setup({ limits: { requestsPerSecondPerThing: 5 } });
    const results = [];
    for (let i = 0; i < 6; i++)
      results.push(await request('update', { thingName: 'lamp' }, { state: { reported: { i } } }));
    expect(results.slice(0, 5).every((r) => r.ok)).toBe(true);
    expect(results[5]).toEqual({
      ok: false,
      rejection: { code: 429, message: 'Rate exceeded', errorType: 'ThrottlingException' },
    });
    // Another thing has its own bucket.
    expect((await request('get', { thingName: 'other' })).ok).toBe(false);
    expect(await request('get', { thingName: 'other' })).toMatchObject({ rejection: { code: 404 } });
    // 200 ms at 5/s refills one token.
    clock.now += 200;
    expect((await request('get', { thingName: 'lamp' })).ok).toBe(true);
    expect(await request('get', { thingName: 'lamp' })).toMatchObject({ rejection: { code: 429 } });
    // Over MQTT the 429 goes to .../rejected with the clientToken.
    messages.length = 0;
    await request('update', { thingName: 'lamp' }, { state: {}, clientToken: 'q' }, 'mqtt');
    expect(messages).toEqual([
      {
        topic: '$aws/things/lamp/shadow/update/rejected',
        body: {
          code: 429,
          message: 'Rate exceeded',
          timestamp: Math.floor(clock.now / 1000),
          clientToken: 'q',
        },
      },
    ]);
  });

  it('answers 429 when more than maxInFlightPerThing requests of one thing are unanswered', async () => {
    const { request, engine } = setup({
      limits: { requestsPerSecondPerThing: 1000, maxInFlightPerThing: 3 },
    });
    const pending = [0, 1, 2, 3].map((i) =>
      request('update', { thingName: 'lamp', shadowName: `s${i}` }, { state: { reported: { i } } }),
    );
    const other = request('update', { thingName: 'fan' }, { state: { reported: { i: 0 } } });
    const results = await Promise.all(pending);
    expect(results.map((r) => r.ok)).toEqual([true, true, true, false]);
    expect(results[3]).toMatchObject({ rejection: { code: 429, errorType: 'ThrottlingException' } });
    expect((await other).ok).toBe(true);
    // Once answered, the slots are free again.
    expect((await request('get', { thingName: 'lamp', shadowName: 's0' })).ok).toBe(true);
    expect(engine.stats()).toMatchObject({ throttled: 1 });
  });
});

describe('shadow engine: ordering', () => {
  // With a journal every update awaits its fsync, so requests really overlap and ordering is exercised.
  const root = mkdtempSync(join(tmpdir(), 'shadow-engine-order-'));
  let runs = 0;
  const durable = (): ShadowEngineOptions => ({ limits: HIGH_QUOTA, dataDir: join(root, String(runs++)) });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('applies concurrent updates to one shadow one at a time in call order', async () => {
    const { request, engine } = setup(durable());
    // Update k names version k - 1: every one is accepted only if each runs after the previous one.
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, k) =>
        request('update', { thingName: 'lamp' }, { state: { reported: { k } }, version: k }),
      ),
    );
    expect(results.map((r) => (r.ok ? (r.body as { version: number }).version : -1))).toEqual(
      Array.from({ length: 50 }, (_, k) => k + 1),
    );
    await engine.close();
  });

  it('does not make other shadows wait for a busy one', async () => {
    const { request, engine } = setup(durable());
    const order: string[] = [];
    const busy = Array.from({ length: 20 }, (_, k) =>
      request('update', { thingName: 'busy' }, { state: { reported: { k } } }).then(() =>
        order.push(`busy${k}`),
      ),
    );
    const other = request('update', { thingName: 'idle' }, { state: { reported: { k: 0 } } }).then(() =>
      order.push('idle'),
    );
    await Promise.all([...busy, other]);
    expect(order.indexOf('idle')).toBeLessThan(order.indexOf('busy19'));
    await engine.close();
  });

  it('property: whatever the arrival interleaving across shadows, each shadow sees its requests in arrival order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(fc.constantFrom('a', 'b', 'c'), { minLength: 1, maxLength: 30 }),
        async (s, targets) => {
          const { engine, request } = setup(durable());
          const arrivals: string[] = [];
          const answers = targets.map((thingName, i) =>
            s.schedule(Promise.resolve(i)).then(() => {
              arrivals.push(thingName);
              const position = arrivals.filter((t) => t === thingName).length;
              return request('update', { thingName }, { state: { reported: { position } } }).then(
                (result) => ({
                  result,
                  position,
                }),
              );
            }),
          );
          await s.waitAll();
          for (const { result, position } of await Promise.all(answers)) {
            expect(result.ok).toBe(true);
            if (result.ok) expect((result.body as { version: number }).version).toBe(position);
          }
          for (const thingName of new Set(targets)) {
            const count = targets.filter((t) => t === thingName).length;
            expect(engine.read({ thingName })).toMatchObject({
              version: count,
              state: { reported: { position: count } },
            });
          }
          await engine.close();
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('shadow engine: ListNamedShadowsForThing', () => {
  async function withShadows() {
    const ctx = setup({ limits: HIGH_QUOTA });
    for (const name of ['g', 'c', 'a', 'e', 'b', 'f', 'd'])
      await ctx.request('update', { thingName: 'lamp', shadowName: name }, { state: { reported: { name } } });
    await ctx.request('update', { thingName: 'lamp' }, { state: { reported: { classic: true } } });
    await ctx.request('delete', { thingName: 'lamp', shadowName: 'd' });
    return ctx;
  }

  it('pages through live named shadows in name order with an opaque nextToken, never listing classic or deleted ones', async () => {
    const { engine } = await withShadows();
    const pages: string[][] = [];
    let nextToken: string | undefined;
    do {
      const page = engine.listNamedShadows(
        'lamp',
        nextToken === undefined ? { pageSize: 4 } : { pageSize: 4, nextToken },
      );
      if (!page.ok) throw new Error(page.rejection.message);
      expect(page.body.timestamp).toBe(T0 / 1000);
      pages.push(page.body.results);
      nextToken = page.body.nextToken;
    } while (nextToken !== undefined);
    expect(pages).toEqual([
      ['a', 'b', 'c', 'e'],
      ['f', 'g'],
    ]);
    expect(engine.listNamedShadows('lamp', {})).toMatchObject({
      ok: true,
      body: { results: ['a', 'b', 'c', 'e', 'f', 'g'] },
    });
    const exact = engine.listNamedShadows('lamp', { pageSize: 6 });
    expect(exact.ok && exact.body.nextToken).toBe(undefined);
  });

  it('returns an empty list for an unknown thing', () => {
    const { engine } = setup();
    expect(engine.listNamedShadows('nobody', {})).toEqual({
      ok: true,
      body: { results: [], timestamp: T0 / 1000 },
    });
  });

  it('rejects a pageSize outside 1-100, a foreign or malformed nextToken and a bad thing name with 400', async () => {
    const { engine } = await withShadows();
    for (const [pageSize, constraint] of [
      [0, 'greater than or equal to 1'],
      [101, 'less than or equal to 100'],
    ] as const) {
      expect(engine.listNamedShadows('lamp', { pageSize })).toEqual({
        ok: false,
        rejection: {
          code: 400,
          errorType: 'InvalidRequestException',
          message: `1 validation error detected: Value '${pageSize}' at 'pageSize' failed to satisfy constraint: Member must have value ${constraint}`,
        },
      });
    }
    const first = engine.listNamedShadows('lamp', { pageSize: 1 });
    const token = first.ok ? first.body.nextToken : undefined;
    expect(token).toBeTypeOf('string');
    expect(engine.listNamedShadows('other', { nextToken: token as string })).toMatchObject({
      ok: false,
      rejection: { code: 400, message: 'Invalid nextToken' },
    });
    expect(engine.listNamedShadows('lamp', { nextToken: '!!' })).toMatchObject({ rejection: { code: 400 } });
    expect(engine.listNamedShadows('bad name', {})).toMatchObject({
      ok: false,
      rejection: {
        code: 400,
        errorType: 'InvalidRequestException',
        message: expect.stringContaining("'thingName'"),
      },
    });
  });
});

describe('shadow engine: options and lifecycle', () => {
  it('rejects unknown and invalid options with ShadowOptionsError', () => {
    const attempts: unknown[] = [
      { colour: 'red' },
      { clock: 5 },
      { dataDir: '' },
      { compactThresholdBytes: 0 },
      { publishUnchangedDelta: 'yes' },
      { limits: { maxStateBytes: -1 } },
      { limits: { maxBytes: 1 } },
    ];
    for (const options of attempts) {
      let caught: unknown;
      try {
        resolveShadowEngineOptions(options as ShadowEngineOptions);
      } catch (error) {
        caught = error;
      }
      expect(isShadowError(caught) && caught.code).toBe('OPTIONS');
    }
    expect(resolveShadowEngineOptions({}).publishUnchangedDelta).toBe(true);
  });

  it('exposes the store read-only through read() and snapshot(), and answers 503 after close()', async () => {
    const { engine, request } = setup();
    await request('update', { thingName: 'a' }, { state: { reported: { x: 1 } } });
    await request('update', { thingName: 'a', shadowName: 'n' }, { state: { desired: { y: 2 } } });
    expect(engine.snapshot().map((r) => r.target)).toEqual([
      { thingName: 'a' },
      { thingName: 'a', shadowName: 'n' },
    ]);
    expect(engine.read({ thingName: 'b' })).toBeUndefined();
    const inFlight = request('update', { thingName: 'a' }, { state: { reported: { x: 2 } } });
    await engine.close();
    expect((await inFlight).ok).toBe(true);
    expect(await request('get', { thingName: 'a' })).toMatchObject({
      ok: false,
      rejection: { code: 503, errorType: 'ServiceUnavailableException' },
    });
  });
  it('a second close() resolves only after the journal released the data directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shadow-engine-close-'));
    try {
      const engine = createShadowEngine({ dataDir: dir });
      const update = engine.handle({
        operation: 'update',
        target: { thingName: 'a' },
        origin: 'http',
        payload: encode({ state: { reported: { x: 1 } } }),
      });
      const first = engine.close();
      await engine.close();
      // The directory is free as soon as any close() resolved, and it holds the acknowledged update.
      const reopened = createShadowEngine({ dataDir: dir });
      expect(reopened.read({ thingName: 'a' })).toMatchObject({ version: 1, state: { reported: { x: 1 } } });
      await reopened.close();
      await first;
      expect((await update).ok).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
