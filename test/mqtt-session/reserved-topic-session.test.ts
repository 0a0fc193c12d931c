/**
 * The reserved-topic session under the MQTT transport and the device agent, against the real local shadow
 * service with real mqtt.js clients: MQTT 3.1.1 on the embedded aedes broker and MQTT 5 on mosquitto.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shadowTopic } from '../../src/core/topics.js';
import {
  ShadowConflictError,
  ShadowNotFoundError,
  ShadowOptionsError,
  ShadowRejectedError,
  ShadowTimeoutError,
  ShadowTransportError,
  ShadowValidationError,
} from '../../src/errors.js';
import type { SessionMessage } from '../../src/mqtt-session/reserved-topic-session.js';
import { createFakeClock, flush } from '../support/fake-clock.js';
import {
  ALL_RESPONSES,
  aedesRig,
  mosquittoRig,
  type SessionRig,
  sessionOn,
  watchSubscriptions,
} from './session-rigs.js';

const waitFor = async (condition: () => boolean, what: string) => {
  for (let i = 0; i < 1_000 && !condition(); i++) await flush();
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  if (!condition()) throw new Error(`never happened: ${what}`);
};

describe.each([
  ['MQTT 3.1.1 on aedes', aedesRig],
  ['MQTT 5 on mosquitto', mosquittoRig],
])('reserved-topic session, %s', (_name, makeRig) => {
  let rig: SessionRig;
  beforeAll(async () => {
    rig = await makeRig();
  }, 20_000);
  afterAll(async () => {
    await rig?.close();
  });

  it('correlates every answer by clientToken, with many requests in flight from two sessions on shared topics', async () => {
    const a = sessionOn(await rig.client('corr-a'), { clientTokenPrefix: 'a' });
    const b = sessionOn(await rig.client('corr-b'), { clientTokenPrefix: 'b' });
    const target = { thingName: 'corr-1' };
    const named = { thingName: 'corr-1', shadowName: 'cfg' };
    await expect(a.request('get', target, {})).resolves.toBeUndefined();
    const results = (await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 === 0 ? a : b).request('update', i % 4 < 2 ? target : named, {
          state: { reported: { [`k${i}`]: i } },
        }),
      ),
    )) as { state: { reported: Record<string, number> }; clientToken: string }[];
    results.forEach((result, i) => {
      expect(result.state.reported).toEqual({ [`k${i}`]: i });
      expect(result.clientToken.startsWith(i % 2 === 0 ? 'a-' : 'b-')).toBe(true);
    });
    // The caller's own token is kept; a second request with a token in flight is refused at once.
    const mine = a.request('update', target, { state: { desired: { x: 1 } }, clientToken: 'mine' });
    await expect(
      a.request('update', target, { state: { desired: { x: 2 } }, clientToken: 'mine' }),
    ).rejects.toBeInstanceOf(ShadowOptionsError);
    await expect(mine).resolves.toMatchObject({ clientToken: 'mine' });
    const conflict = await a
      .request('update', target, { state: { desired: { x: 3 } }, version: 1 }, { expectedVersion: 1 })
      .catch((error: unknown) => error);
    expect(conflict).toBeInstanceOf(ShadowConflictError);
    expect(conflict).toMatchObject({ expectedVersion: 1, statusCode: 409, thingName: 'corr-1' });
    const invalid = await a.request('update', target, { state: { bogus: {} } }).catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(ShadowRejectedError);
    await expect(a.request('delete', named, {})).resolves.toMatchObject({ version: 20 });
    await expect(a.request('delete', named, {})).rejects.toBeInstanceOf(ShadowNotFoundError);
    await Promise.all([a.close(), b.close()]);
  });

  it('hands anyone’s broadcasts to its owner, marking its own, and never takes a delta for an answer', async () => {
    const messages: SessionMessage[] = [];
    const device = sessionOn(await rig.client('bcast-device'), {
      onMessage: (message) => messages.push(message),
    });
    const app = sessionOn(await rig.client('bcast-app'));
    const target = { thingName: 'bcast-1' };
    await device.subscribe(target);
    await app.request('update', target, { state: { desired: { on: true } } });
    await device.request('update', target, { state: { reported: { on: false } } });
    await waitFor(() => messages.filter((m) => m.kind === 'update/accepted').length === 2, 'two accepted');
    // Broadcasts to different topics may arrive in any order: sort them by version.
    const accepted = messages
      .filter((m) => m.kind === 'update/accepted')
      .sort((x, y) => x.body.version - y.body.version);
    expect(accepted.map((m) => (m as { own: boolean }).own)).toEqual([false, true]);
    await waitFor(() => messages.some((m) => m.kind === 'update/delta'), 'a delta');
    expect(messages.find((m) => m.kind === 'update/delta')?.body).toMatchObject({ state: { on: true } });
    await Promise.all([device.close(), app.close()]);
  });

  it('subscribes to a shadow’s responses and waits for the SUBACK before publishing its first request', async () => {
    const client = await rig.client('order-1');
    const watch = watchSubscriptions(client);
    const session = sessionOn(client);
    await session.request('get', { thingName: 'order-1' }, {});
    const request = shadowTopic({ thingName: 'order-1' }, 'get');
    expect(watch.log.indexOf('suback')).toBeGreaterThan(
      watch.log.findIndex((l) => l.startsWith('subscribe')),
    );
    expect(watch.log.indexOf(`publish ${request}`)).toBeGreaterThan(watch.log.indexOf('suback'));
    await session.close();
  });

  it('times a request out on its own clock (no real waiting), then drops the late answer', async () => {
    const clock = createFakeClock();
    const session = sessionOn(await rig.client('timeout-1'), { clock, timeoutMs: 60_000 });
    const target = { thingName: 'timeout-1' };
    await session.request('get', target, {}); // subscribed while answers flow
    rig.service.mqtt.faults.set({ drop: 1 });
    try {
      const before = rig.requests.length;
      const pending = session.request('get', target, {}).catch((error: unknown) => error);
      await waitFor(
        () => rig.requests.length > before && clock.pendingTimers() === 1,
        'the request published',
      );
      await clock.advance(59_999);
      expect(clock.pendingTimers()).toBe(1);
      await clock.advance(1);
      const error = await pending;
      expect(error).toBeInstanceOf(ShadowTimeoutError);
      expect(error).toMatchObject({ timeoutMs: 60_000, thingName: 'timeout-1' });
    } finally {
      rig.service.mqtt.faults.clear();
    }
    await session.close();
  });

  it('aborts a request: waiting for its answer (rejected with the reason) or for its subscription (never published)', async () => {
    const session = sessionOn(await rig.client('abort-1'));
    const target = { thingName: 'abort-1' };
    await session.request('get', target, {});
    rig.service.mqtt.faults.set({ drop: 1 });
    try {
      const controller = new AbortController();
      const before = rig.requests.length;
      const waiting = session
        .request('get', target, {}, { signal: controller.signal })
        .catch((error: unknown) => error);
      await waitFor(() => rig.requests.length > before, 'the request published');
      controller.abort(new Error('caller gave up'));
      expect(await waiting).toMatchObject({ message: 'caller gave up' });
    } finally {
      rig.service.mqtt.faults.clear();
    }
    const early = new AbortController();
    const other = { thingName: 'abort-2' };
    const never = session
      .request('update', other, { state: { desired: { on: true } } }, { signal: early.signal })
      .catch((error: unknown) => error);
    early.abort(new Error('gone before the SUBACK'));
    expect(await never).toMatchObject({ message: 'gone before the SUBACK' });
    await expect(session.request('get', other, {})).resolves.toBeUndefined(); // the update never happened
    expect(rig.requests).not.toContain(shadowTopic(other, 'update'));
    await session.close();
  });

  it('reports a message that is not JSON, or not the documented shape, the same way: a typed error and an event', async () => {
    const invalid: [ShadowValidationError, string][] = [];
    const session = sessionOn(await rig.client('bad-1'), {
      onInvalid: (error, topic) => invalid.push([error, topic]),
    });
    const target = { thingName: 'bad-1' };
    await session.subscribe(target);
    await rig.service.mqtt.publish(shadowTopic(target, 'update/delta'), '{not json', { qos: 1 });
    await rig.service.mqtt.publish(shadowTopic(target, 'update/documents'), '{"previous":1}', { qos: 1 });
    await waitFor(() => invalid.length === 2, 'two invalid messages reported');
    expect(invalid.map(([error]) => error)).toEqual([
      expect.any(ShadowValidationError),
      expect.any(ShadowValidationError),
    ]);
    expect(invalid[0]?.[0].message).toMatch(/update\/delta body for .*'bad-1'.*not UTF-8 JSON/);
    expect(invalid[1]?.[1]).toBe(shadowTopic(target, 'update/documents'));
    // An answer to one of our requests with a bad shape rejects that request with the same error.
    rig.service.mqtt.faults.set({ drop: 1 });
    try {
      const before = rig.requests.length;
      const answer = session
        .request('update', target, { state: { reported: { a: 1 } }, clientToken: 'bad-answer' })
        .catch((error: unknown) => error);
      await waitFor(() => rig.requests.length > before, 'the request published');
      await rig.service.mqtt.publish(
        shadowTopic(target, 'update/accepted'),
        JSON.stringify({ clientToken: 'bad-answer', version: 'seven' }),
        { qos: 1 },
      );
      const error = await answer;
      expect(error).toBeInstanceOf(ShadowValidationError);
      expect(invalid.at(-1)?.[0]).toBe(error);
    } finally {
      rig.service.mqtt.faults.clear();
    }
    await session.close();
  });

  it('fails what is pending when told the connection is gone, and refuses everything once closed', async () => {
    const client = await rig.client('fail-1');
    const watch = watchSubscriptions(client);
    const session = sessionOn(client);
    const target = { thingName: 'fail-1' };
    await session.subscribe(target);
    rig.service.mqtt.faults.set({ drop: 1 });
    try {
      const before = rig.requests.length;
      const pending = session.request('get', target, {}).catch((error: unknown) => error);
      await waitFor(() => rig.requests.length > before, 'the request published');
      session.failPending('the connection was lost');
      const error = await pending;
      expect(error).toBeInstanceOf(ShadowTransportError);
      expect((error as Error).message).toMatch(/fail-1.*the connection was lost/);
    } finally {
      rig.service.mqtt.faults.clear();
    }
    expect(session.subscriptionCount()).toBe(8);
    await session.close();
    expect(session.subscriptionCount()).toBe(0);
    await waitFor(() => watch.live.size === 0, 'every filter unsubscribed');
    await expect(session.request('get', target, {})).rejects.toThrow(/the test session is closed/);
  });

  it('keeps at most maxSubscriptions filters and maxFiltersPerSubscribe per SUBSCRIBE, releasing the least recently used shadow', async () => {
    const client = await rig.client('lru-1');
    const watch = watchSubscriptions(client);
    const released: string[] = [];
    const session = sessionOn(client, {
      maxSubscriptions: 16, // two shadows of 8 filters
      maxFiltersPerSubscribe: 3,
      onReleased: (target) => released.push(target.thingName),
    });
    const things = Array.from({ length: 6 }, (_, i) => ({ thingName: `lru-${i}` }));
    const results = await Promise.all(
      things.map(async (target, i) => {
        await session.request('update', target, { state: { reported: { i } } });
        return session.request('get', target, {});
      }),
    );
    results.forEach((result, i) => {
      expect(result).toMatchObject({ state: { reported: { i } } });
    });
    expect(watch.maxLive()).toBeLessThanOrEqual(16);
    expect(watch.maxPerSubscribe()).toBeLessThanOrEqual(3);
    expect(session.subscriptionCount()).toBeLessThanOrEqual(16);
    expect(released.length).toBeGreaterThanOrEqual(4);
    // The most recently used shadow stays subscribed: asking it again subscribes nothing new.
    const last = things[5] as { thingName: string };
    const subscribes = watch.log.filter((line) => line.startsWith('subscribe')).length;
    await session.request('get', last, {});
    expect(watch.log.filter((line) => line.startsWith('subscribe')).length).toBe(subscribes);
    await session.close();
  });

  it('in wildcard mode subscribes one filter per response topic for every thing, whatever the number of shadows', async () => {
    const client = await rig.client('wild-1');
    const watch = watchSubscriptions(client);
    const session = sessionOn(client, { mode: 'wildcard' });
    for (let i = 0; i < 12; i++) {
      await expect(
        session.request('update', { thingName: `wild-${i}` }, { state: { reported: { i } } }),
      ).resolves.toMatchObject({ state: { reported: { i } } });
    }
    await session.request('get', { thingName: 'wild-0', shadowName: 'named' }, {});
    expect([...watch.live].sort()).toEqual(
      [
        ...ALL_RESPONSES.map((suffix) => `$aws/things/+/shadow/${suffix}`),
        ...ALL_RESPONSES.map((suffix) => `$aws/things/+/shadow/name/+/${suffix}`),
      ].sort(),
    );
    expect(watch.maxPerSubscribe()).toBeLessThanOrEqual(8);
    await session.close();
  });
});
