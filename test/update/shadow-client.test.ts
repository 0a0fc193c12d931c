import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { JsonObject } from '../../src/core/document.js';
import {
  isShadowConflictError,
  isShadowValidationError,
  ShadowConflictError,
  ShadowLimitError,
  ShadowNotFoundError,
  ShadowOptionsError,
  ShadowRejectedError,
  ShadowThrottledError,
  ShadowValidationError,
} from '../../src/errors.js';
import type { ShadowTransport } from '../../src/transports/transport.js';
import { createShadowClient } from '../../src/update/shadow-client.js';
import type { ShadowEvent } from '../../src/update/shadow-events.js';
import { InMemoryShadowServiceDouble, instantClock } from './in-memory-service-double.js';

const lamp = { thingName: 'lamp' };

function setup(options: Partial<Parameters<typeof createShadowClient>[0]> = {}) {
  const service = new InMemoryShadowServiceDouble();
  const clock = instantClock();
  const events: ShadowEvent[] = [];
  const shadows = createShadowClient({
    transport: service.transport('app'),
    clock,
    random: () => 0.5,
    requestsPerSecondPerThing: Number.POSITIVE_INFINITY,
    onEvent: (event) => events.push(event),
    ...options,
  });
  return { service, clock, events, shadows };
}

const count = (doc: { state: { desired?: JsonObject } } | undefined): number =>
  Number(doc?.state.desired?.count ?? 0);

describe('get', () => {
  it('throws ShadowNotFoundError naming the thing when the shadow does not exist', async () => {
    const { shadows } = setup();
    const error = await shadows
      .shadow('lamp')
      .get()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowNotFoundError);
    expect((error as ShadowNotFoundError).thingName).toBe('lamp');
    expect((error as Error).message).toContain("thing 'lamp'");
  });

  it('returns the stored document with its delta', async () => {
    const { service, shadows } = setup();
    service.write(lamp, { state: { desired: { on: true }, reported: { on: false } } });
    const doc = await shadows.shadow('lamp').get();
    expect(doc.version).toBe(1);
    expect(doc.state.delta).toEqual({ on: true });
  });
});

describe('update', () => {
  it('creates a missing shadow with a versioned create (version 0) and resolves the result', async () => {
    const { service, shadows } = setup();
    const result = await shadows
      .shadow('lamp')
      .update((current) => ({ desired: { count: count(current) + 1 } }));
    expect(result).toMatchObject({ version: 1, attempts: 1, skipped: false });
    expect(result.document?.state.desired).toEqual({ count: 1 });
    const write = service.requests.find((r) => r.operation === 'update');
    expect(write?.request).toEqual({ state: { desired: { count: 1 } }, version: 0 });
  });

  it('sends the minimal patch with the version it read', async () => {
    const { service, shadows } = setup();
    service.write(lamp, { state: { desired: { mode: 'auto', fan: { speed: 2, swing: true } } } });
    await shadows.shadow('lamp').update((current) => ({
      desired: { ...current?.state.desired, fan: { speed: 3, swing: null } },
    }));
    const write = service.requests.filter((r) => r.operation === 'update').at(-1);
    expect(write?.request).toEqual({ state: { desired: { fan: { speed: 3, swing: null } } }, version: 1 });
    expect(service.read(lamp)?.state.desired).toEqual({ mode: 'auto', fan: { speed: 3 } });
  });

  it('skips the request when the intent changes nothing', async () => {
    const { service, shadows, events } = setup();
    service.write(lamp, { state: { desired: { on: true } } });
    const result = await shadows.shadow('lamp').update(() => ({ desired: { on: true } }));
    expect(result).toMatchObject({ skipped: true, version: 1 });
    expect(service.count('update', 'app')).toBe(0);
    expect(events.some((e) => e.type === 'skipped')).toBe(true);
  });

  it('never skips on a remembered document: another writer may have changed it since', async () => {
    const { service, shadows } = setup();
    const rival = createShadowClient({ transport: service.transport('rival'), clock: instantClock() });
    const mine = shadows.shadow('lamp');
    await mine.update(() => ({ desired: { power: 'on' } }));
    await rival.shadow('lamp').update(() => ({ desired: { power: 'off' } }));
    // The engine remembers power 'on' from its own write; only a fresh read shows the rival's 'off'.
    const result = await mine.update(() => ({ desired: { power: 'on' } }));
    expect(result.skipped).toBe(false);
    expect(service.read(lamp)?.state.desired).toEqual({ power: 'on' });
    expect(result.version).toBe(3);
  });

  it('never fails a caller on a remembered document: an intent or schema error is confirmed with a read', async () => {
    const { service, shadows } = setup();
    const typed = shadows.shadow('lamp', { schema: { desired: z.object({ ready: z.boolean() }).loose() } });
    await typed.update(() => ({ desired: { ready: false } }));
    // Another writer changes the shadow; this client still remembers its own prediction.
    service.write(lamp, { state: { desired: { ready: true } } }, 'other');
    const result = await typed.update((current) => {
      if (current?.state.desired?.ready !== true) throw new Error('not ready yet');
      return { desired: { go: true } } as never;
    });
    expect(result.version).toBe(3);
    expect(service.read(lamp)?.state.desired).toEqual({ ready: true, go: true });
    // The same for a schema: the remembered document breaks it, the current one does not.
    await shadows.shadow('lamp').update(() => ({ desired: { ready: 'soon' } }));
    service.write(lamp, { state: { desired: { ready: false } } }, 'other');
    await expect(typed.update(() => ({ desired: { ready: true } }))).resolves.toMatchObject({ version: 6 });
  });

  it('skips after confirming with one read when the remembered document is still current', async () => {
    const { service, shadows } = setup();
    const mine = shadows.shadow('lamp');
    await mine.update(() => ({ desired: { power: 'on' } }));
    const reads = service.count('get', 'app');
    const result = await mine.update(() => ({ desired: { power: 'on' } }));
    expect(result).toMatchObject({ skipped: true, version: 1 });
    expect(service.count('get', 'app')).toBe(reads + 1);
    expect(service.count('update', 'app')).toBe(1);
  });

  it('a document read without metadata never turns into the loss of a section', async () => {
    const sent: unknown[] = [];
    const transport: ShadowTransport = {
      get: async () => ({ state: { desired: { mode: 'dry', power: 'on' } }, metadata: {}, version: 3 }),
      update: async (_target, request) => {
        sent.push(request);
        return { state: request.state, metadata: { timestamp: 1 }, version: 4, timestamp: 1 };
      },
      delete: async () => ({ version: 4, timestamp: 1 }),
    };
    const shadows = createShadowClient({ transport, clock: instantClock() });
    const result = await shadows.shadow('lamp').update(() => ({ desired: { mode: null } }));
    expect(sent).toEqual([{ state: { desired: { mode: null } }, version: 3 }]);
    expect(result.document?.state.desired).toEqual({ power: 'on' });
  });

  it('skips when the intent returns nothing, also on a shadow that does not exist', async () => {
    const { service, shadows } = setup();
    const result = await shadows.shadow('lamp').update(() => undefined);
    expect(result).toEqual({ document: undefined, version: undefined, attempts: 1, skipped: true });
    expect(service.count('update')).toBe(0);
  });

  it('on 409 reads again and re-runs the intent on the new document', async () => {
    const { service, shadows, events } = setup();
    service.write(lamp, { state: { desired: { count: 5 } } });
    let competing = true;
    service.beforeUpdate = (target) => {
      if (competing) {
        competing = false;
        service.write(target, { state: { desired: { count: 10 } } });
      }
    };
    const seen: number[] = [];
    const result = await shadows.shadow('lamp').update((current) => {
      seen.push(count(current));
      return { desired: { count: count(current) + 1 } };
    });
    expect(seen).toEqual([5, 10]);
    expect(result).toMatchObject({ version: 3, attempts: 2 });
    expect(service.read(lamp)?.state.desired).toEqual({ count: 11 });
    expect(events.filter((e) => e.type === 'conflict')).toHaveLength(1);
    expect(events.find((e) => e.type === 'retry')).toMatchObject({ reason: 'conflict' });
  });

  it('gives up with ShadowConflictError carrying the attempts and the last document', async () => {
    const { service, shadows } = setup({ maxAttempts: 4 });
    service.write(lamp, { state: { desired: { count: 0 } } });
    service.beforeUpdate = (target) =>
      service.write(target, { state: { reported: { tick: Math.random() } } });
    const error = await shadows
      .shadow('lamp')
      .update((current) => ({ desired: { count: count(current) + 1 } }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowConflictError);
    expect(isShadowConflictError(error)).toBe(true);
    const conflict = error as ShadowConflictError;
    expect(conflict.attempts).toBe(4);
    expect((conflict.lastDocument as { version: number }).version).toBe(service.read(lamp)!.version - 1);
    expect(conflict.message).toContain("thing 'lamp'");
    expect(service.read(lamp)?.state.desired).toEqual({ count: 0 });
  });

  it('bounds the total time: no retry once maxElapsedMs would be exceeded', async () => {
    const { service, shadows, clock } = setup({
      maxAttempts: 100,
      maxElapsedMs: 50,
      baseDelayMs: 20,
      maxDelayMs: 40,
    });
    service.write(lamp, { state: { desired: { count: 0 } } });
    service.beforeUpdate = (target) =>
      service.write(target, { state: { reported: { n: service.committed.length } } });
    const error = await shadows
      .shadow('lamp')
      .update((current) => ({ desired: { count: count(current) + 1 } }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowConflictError);
    expect(clock.now()).toBeLessThanOrEqual(50);
    expect((error as ShadowConflictError).attempts).toBeLessThan(100);
  });

  it('waits with full jitter: a random time between 0 and the exponential cap', async () => {
    const randoms = [0.99, 0.5, 0, 0.99, 0.99];
    const { service, shadows, clock } = setup({
      maxAttempts: 6,
      baseDelayMs: 10,
      maxDelayMs: 50,
      random: () => randoms.shift() ?? 0,
    });
    service.write(lamp, { state: { desired: { count: 0 } } });
    service.beforeUpdate = (target) =>
      service.write(target, { state: { reported: { n: service.committed.length } } });
    await shadows
      .shadow('lamp')
      .update((current) => ({ desired: { count: count(current) + 1 } }))
      .catch(() => undefined);
    // caps 10, 20, 40, 50 (capped), 50; the third wait is 0 and needs no timer
    expect(clock.slept).toEqual([9, 10, 49, 49]);
  });

  it("cuts the thing's rate once for a write throttled again and again right behind its read, not per re-send", async () => {
    const { service, clock, events } = setup();
    service.write(lamp, { state: { desired: { count: 4 } } });
    const inner = service.transport('app');
    const throttle = { code: 429, message: 'Rate exceeded', errorType: 'ThrottlingException' } as const;
    const transport: ShadowTransport = {
      ...inner,
      get: async (target) => {
        const document = await inner.get(target);
        for (let i = 0; i < 6; i++) service.injected.push(throttle);
        return document;
      },
    };
    const client = createShadowClient({
      transport,
      clock,
      random: () => 0.5,
      useKnownDocuments: false,
      onEvent: (event) => events.push(event),
    });
    await client.shadow('lamp').update((current) => ({ desired: { count: count(current) + 1 } }));
    const rates = events
      .filter((e) => e.type === 'throttled' && e.source === 'service')
      .map((e) => (e as { ratePerSecond: number }).ratePerSecond);
    expect(rates).toHaveLength(6);
    // One cut, from 95 % of 20 to half of it; the rate in use only rises a little while only 429s arrive.
    for (const rate of rates) expect(rate).toBeGreaterThanOrEqual(9.5);
    expect(Math.max(...rates)).toBeLessThan(10);
  });

  it('scales the waits after a 409 with the measured answer time when that is short, never above baseDelayMs', async () => {
    // Every answer takes 3 ms of the injected clock: the base becomes 2 x 3 = 6 ms instead of 20.
    const service = new InMemoryShadowServiceDouble();
    const clock = instantClock();
    const inner = service.transport('app');
    const slow = <T>(answer: Promise<T>) => clock.sleep(3).then(() => answer);
    const transport: ShadowTransport = {
      get: (target) => slow(inner.get(target)),
      update: (target, request) => slow(inner.update(target, request)),
      delete: (target) => slow(inner.delete(target)),
    };
    const events: ShadowEvent[] = [];
    const shadows = createShadowClient({
      transport,
      clock,
      random: () => 0.99,
      maxAttempts: 3,
      requestsPerSecondPerThing: Number.POSITIVE_INFINITY,
      onEvent: (event) => events.push(event),
    });
    service.write(lamp, { state: { desired: { count: 0 } } });
    service.beforeUpdate = (target) =>
      service.write(target, { state: { reported: { n: service.committed.length } } });
    await shadows
      .shadow('lamp')
      .update((current) => ({ desired: { count: count(current) + 1 } }))
      .catch(() => undefined);
    const delays = events.filter((e) => e.type === 'retry').map((e) => (e as { delayMs: number }).delayMs);
    // Full jitter at 0.99 of the caps 6 and 12 (20 and 40 with the fixed base).
    expect(delays).toEqual([5, 11]);
  });

  it('retries 429 and 5xx, and never other 4xx', async () => {
    const { service, shadows, events } = setup();
    service.injected.push(
      { code: 429, message: 'Rate exceeded', errorType: 'ThrottlingException' },
      { code: 503, message: 'Service unavailable', errorType: 'ServiceUnavailableException' },
      { code: 500, message: 'Internal service failure', errorType: 'InternalFailureException' },
    );
    const result = await shadows.shadow('lamp').update(() => ({ desired: { on: true } }));
    expect(result.version).toBe(1);
    expect(events.filter((e) => e.type === 'retry').map((e) => (e as { reason: string }).reason)).toEqual([
      'throttled',
      'server-error',
      'server-error',
    ]);
    expect(events.some((e) => e.type === 'throttled' && e.source === 'service')).toBe(true);

    service.injected.push({ code: 401, message: 'Unauthorized', errorType: 'UnauthorizedException' });
    const before = service.requests.length;
    const error = await shadows
      .shadow('lamp')
      .update(() => ({ desired: { on: false } }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowRejectedError);
    expect((error as ShadowRejectedError).statusCode).toBe(401);
    expect(service.requests.length - before).toBe(1);
  });

  it('sends a write throttled right behind its read again on the same base, without a re-read', async () => {
    // Reading on every attempt, the fallback would re-read after each 429: an admitted request more, and a
    // wider window for another writer's commit.
    const { service, clock, events } = setup();
    service.write(lamp, { state: { desired: { count: 4 } } });
    const inner = service.transport('app');
    const throttle = { code: 429, message: 'Rate exceeded', errorType: 'ThrottlingException' } as const;
    const transport: ShadowTransport = {
      ...inner,
      get: async (target) => {
        const document = await inner.get(target);
        service.injected.push(throttle, throttle); // the write behind this read, and its first re-send
        return document;
      },
    };
    const client = createShadowClient({
      transport,
      clock,
      random: () => 0.5,
      useKnownDocuments: false,
      onEvent: (event) => events.push(event),
    });
    const result = await client
      .shadow('lamp')
      .update((current) => ({ desired: { count: count(current) + 1 } }));
    expect(result).toMatchObject({ version: 2, attempts: 1 });
    expect(service.count('get')).toBe(1);
    const writes = service.requests.filter((r) => r.operation === 'update');
    expect(writes.map((r) => r.outcome)).toEqual([429, 429, 'ok']);
    expect(writes.every((r) => r.request?.version === 1)).toBe(true);
    // Re-sent within the service's next token or two: 25-50 ms apart at 20 requests/s.
    const retries = events.filter((e) => e.type === 'retry');
    expect(retries).toEqual([
      expect.objectContaining({ reason: 'throttled', attempt: 1, delayMs: 38 }),
      expect.objectContaining({ reason: 'throttled', attempt: 1, delayMs: 38 }),
    ]);
    expect(clock.slept.filter((ms) => ms === 38)).toHaveLength(2);
  });

  it('429s do not spend the conflict budget; when they outlast the time budget: ShadowThrottledError saying so', async () => {
    const { service, shadows, events } = setup({ maxAttempts: 2, maxElapsedMs: 2_000 });
    for (let i = 0; i < 1000; i++)
      service.injected.push({ code: 429, message: 'Rate exceeded', errorType: 'ThrottlingException' });
    const error = await shadows
      .shadow('lamp')
      .merge({ desired: { on: true } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowThrottledError);
    const throttled = error as ShadowThrottledError;
    const serviceThrottles = events.filter((e) => e.type === 'throttled' && e.source === 'service').length;
    expect(throttled.throttles).toBe(serviceThrottles);
    expect(throttled.attempts).toBe(serviceThrottles);
    expect(throttled.attempts).toBeGreaterThan(2); // far beyond maxAttempts
    expect(throttled.conflicts).toBe(0);
    expect(throttled.elapsedMs).toBeLessThanOrEqual(2_000);
    expect(throttled.statusCode).toBe(429);
    expect(throttled.message).toContain(
      `gave up after ${throttled.attempts} attempts in ${throttled.elapsedMs} ms (maxElapsedMs (2000) spent): 0 lost to another writer (409 version conflict), ${throttled.throttles} throttled by the service (429)`,
    );
  });

  it('the give-up error of a round that met both 409s and 429s counts each truthfully and has the right class', async () => {
    const { service, shadows, events } = setup({ maxAttempts: 3 });
    service.write(lamp, { state: { desired: { count: 0 } } });
    // Every write loses to a competing writer; between them the service throttles twice.
    let writes = 0;
    service.beforeUpdate = (target) => {
      writes++;
      service.write(target, { state: { reported: { n: writes } } });
      if (writes < 3) {
        service.injected.push({ code: 429, message: 'Rate exceeded', errorType: 'ThrottlingException' });
      }
    };
    const error = await shadows
      .shadow('lamp')
      .update((current) => ({ desired: { count: count(current) + 1 } }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowConflictError);
    const conflict = error as ShadowConflictError;
    const conflicts = events.filter((e) => e.type === 'conflict').length;
    const throttles = events.filter((e) => e.type === 'throttled' && e.source === 'service').length;
    const attempts = new Set(
      events.filter((e) => e.type === 'attempt').map((e) => (e as { attempt: number }).attempt),
    ).size;
    expect({
      conflicts: conflict.conflicts,
      throttles: conflict.throttles,
      attempts: conflict.attempts,
    }).toEqual({
      conflicts,
      throttles,
      attempts,
    });
    expect(conflicts).toBe(3);
    expect(throttles).toBe(2);
    expect(conflict.message).toContain(
      `gave up after 5 attempts in ${conflict.elapsedMs} ms (maxAttempts (3) lost): 3 lost to another writer (409 version conflict), 2 throttled by the service (429)`,
    );
  });

  it('rejects with whatever the intent throws, without sending anything', async () => {
    const { service, shadows } = setup();
    const boom = new Error('intent failed');
    await expect(
      shadows.shadow('lamp').update(() => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(service.count('update')).toBe(0);
  });

  it('uses the document it predicted after its own write, so a second update needs no read', async () => {
    const { service, shadows } = setup();
    const aircon = shadows.shadow('lamp');
    // Reported values leave no delta: no device will answer, the remembered document stays current.
    await aircon.update((current) => ({
      reported: { count: Number(current?.state.reported?.count ?? 0) + 1 },
    }));
    await aircon.update((current) => ({
      reported: { count: Number(current?.state.reported?.count ?? 0) + 1 },
    }));
    expect(service.count('get', 'app')).toBe(1);
    expect(service.read(lamp)?.state.reported).toEqual({ count: 2 });
  });

  it('useKnownDocuments: true always writes on the remembered document', async () => {
    const { service, shadows } = setup({ useKnownDocuments: true });
    const aircon = shadows.shadow('lamp');
    await aircon.update((current) => ({ desired: { count: count(current) + 1 } }));
    await aircon.update((current) => ({ desired: { count: count(current) + 1 } }));
    expect(service.count('get', 'app')).toBe(1);
    expect(service.read(lamp)?.state.desired).toEqual({ count: 2 });
  });

  it('always reads first when useKnownDocuments is false', async () => {
    const { service, shadows } = setup({ useKnownDocuments: false });
    const aircon = shadows.shadow('lamp');
    await aircon.update((current) => ({ desired: { count: count(current) + 1 } }));
    await aircon.update((current) => ({ desired: { count: count(current) + 1 } }));
    expect(service.count('get', 'app')).toBe(2);
  });

  it('takes a newer document the transport heard of instead of reading after a conflict', async () => {
    const service = new InMemoryShadowServiceDouble();
    const shadows = createShadowClient({
      transport: service.transport('app', { broadcast: true }),
      clock: instantClock(),
      random: () => 0,
    });
    const aircon = shadows.shadow('lamp');
    await aircon.update((current) => ({ desired: { count: count(current) + 1 } }));
    const readsBefore = service.count('get', 'app');
    let competing = true;
    service.beforeUpdate = (target) => {
      if (competing) {
        competing = false;
        service.write(target, { state: { desired: { count: 7 } } });
      }
    };
    const result = await aircon.update((current) => ({ desired: { count: count(current) + 1 } }));
    expect(result.attempts).toBe(2);
    expect(service.count('get', 'app')).toBe(readsBefore);
    expect(service.read(lamp)?.state.desired).toEqual({ count: 8 });
  });
});

describe('merge', () => {
  it('sends the patch without a version and without reading', async () => {
    const { service, shadows } = setup();
    service.write(lamp, { state: { desired: { on: false, level: 3 } } });
    const result = await shadows.shadow('lamp').merge({ desired: { on: true } });
    expect(result).toMatchObject({ version: 2, attempts: 1, skipped: false });
    expect(service.count('get')).toBe(0);
    expect(service.requests.at(-1)?.request).toEqual({ state: { desired: { on: true } } });
    expect(service.read(lamp)?.state.desired).toEqual({ on: true, level: 3 });
  });

  it('predicts the document when it knew the version merged into', async () => {
    const { shadows } = setup();
    const aircon = shadows.shadow('lamp');
    await aircon.update(() => ({ desired: { level: 1 } }));
    const result = await aircon.merge({ desired: { on: true } });
    expect(result.document?.state.desired).toEqual({ level: 1, on: true });
    expect(result.document?.version).toBe(2);
  });
});

describe('coalescing', () => {
  it('combines concurrent updates on one shadow into one request, intents in call order', async () => {
    const { service, shadows, events } = setup();
    service.write(lamp, { state: { desired: { log: [] } } });
    const aircon = shadows.shadow('lamp');
    const results = await Promise.all(
      ['a', 'b', 'c', 'd'].map((letter) =>
        aircon.update((current) => ({
          desired: { log: [...((current?.state.desired?.log as string[]) ?? []), letter] },
        })),
      ),
    );
    expect(service.read(lamp)?.state.desired).toEqual({ log: ['a', 'b', 'c', 'd'] });
    expect(service.count('update', 'app')).toBe(1);
    expect(results.map((r) => r.version)).toEqual([2, 2, 2, 2]);
    expect(events.find((e) => e.type === 'coalesced')).toMatchObject({ calls: 4 });
  });

  it('gives each caller its own result and its own error', async () => {
    const { service, shadows } = setup();
    const aircon = shadows.shadow('lamp');
    const boom = new Error('second intent failed');
    const settled = await Promise.allSettled([
      aircon.update(() => ({ desired: { a: 1 } })),
      aircon.update(() => {
        throw boom;
      }),
      aircon.update(() => ({ desired: { a: 1 } })),
      aircon.update(() => ({ desired: { big: 'x'.repeat(9000) } })),
      aircon.merge({ desired: { b: 2 } }),
    ]);
    expect(settled[0]).toMatchObject({ status: 'fulfilled', value: { skipped: false, version: 1 } });
    expect(settled[1]).toEqual({ status: 'rejected', reason: boom });
    expect(settled[2]).toMatchObject({ status: 'fulfilled', value: { skipped: true, version: 1 } });
    expect(settled[3]).toMatchObject({
      status: 'rejected',
      reason: { name: 'ShadowLimitError', limit: 'maxStateBytes' },
    });
    expect(settled[4]).toMatchObject({ status: 'fulfilled', value: { skipped: false, version: 1 } });
    expect(service.read(lamp)?.state.desired).toEqual({ a: 1, b: 2 });
    expect(service.count('update')).toBe(1);
  });

  it('re-runs every intent of a coalesced round after a conflict; one that now throws fails alone', async () => {
    const { service, shadows } = setup();
    service.write(lamp, { state: { desired: { count: 0 } } });
    let competing = true;
    service.beforeUpdate = (target) => {
      if (competing) {
        competing = false;
        service.write(target, { state: { desired: { locked: true } } });
      }
    };
    const aircon = shadows.shadow('lamp');
    const runs: string[] = [];
    const [a, b] = await Promise.allSettled([
      aircon.update((current) => {
        runs.push('a');
        return { desired: { count: count(current) + 1 } };
      }),
      aircon.update((current) => {
        runs.push('b');
        if (current?.state.desired?.locked) throw new Error('locked by someone else');
        return { desired: { note: 'b' } };
      }),
    ]);
    expect(runs).toEqual(['a', 'b', 'a', 'b']);
    expect(a).toMatchObject({ status: 'fulfilled', value: { attempts: 2, version: 3 } });
    expect(b).toMatchObject({ status: 'rejected', reason: { message: 'locked by someone else' } });
    expect(service.read(lamp)?.state.desired).toEqual({ count: 1, locked: true });
  });

  it('composes concurrent blind merges into one request when their composition is exact', async () => {
    const { service, shadows } = setup();
    service.write(lamp, { state: { desired: { a: { x: 1 }, b: 1 } } });
    const aircon = shadows.shadow('lamp');
    await Promise.all([
      aircon.merge({ desired: { a: { y: 2 } } }),
      aircon.merge({ desired: { b: null, c: 3 } }),
      aircon.merge({ reported: { on: true } }),
    ]);
    expect(service.count('update', 'app')).toBe(1);
    const { desired, reported } = service.read(lamp)!.state;
    expect({ desired, reported }).toEqual({ desired: { a: { x: 1, y: 2 }, c: 3 }, reported: { on: true } });
  });

  it('splits merges whose composition is not expressible in one request', async () => {
    const { service, shadows } = setup();
    service.write(lamp, { state: { desired: { a: { x: 1 } } } });
    const aircon = shadows.shadow('lamp');
    await Promise.all([aircon.merge({ desired: { a: null } }), aircon.merge({ desired: { a: { y: 2 } } })]);
    expect(service.count('update', 'app')).toBe(2);
    expect(service.read(lamp)?.state.desired).toEqual({ a: { y: 2 } });
  });

  it('does not coalesce when coalesce is false', async () => {
    const { service, shadows } = setup({ coalesce: false });
    const aircon = shadows.shadow('lamp');
    await Promise.all(
      [1, 2, 3].map(() => aircon.update((current) => ({ desired: { count: count(current) + 1 } }))),
    );
    expect(service.read(lamp)?.state.desired).toEqual({ count: 3 });
    expect(service.count('update', 'app')).toBeGreaterThanOrEqual(3);
  });

  it('runs merges of a round that ran out of conflicts as a blind round', async () => {
    const { service, shadows } = setup({ maxAttempts: 2 });
    service.write(lamp, { state: { desired: { count: 0 } } });
    service.beforeUpdate = (target, request) => {
      if (request.version !== undefined)
        service.write(target, { state: { reported: { n: service.committed.length } } });
    };
    const aircon = shadows.shadow('lamp');
    const [update, merge] = await Promise.allSettled([
      aircon.update((current) => ({ desired: { count: count(current) + 1 } })),
      aircon.merge({ desired: { on: true } }),
    ]);
    expect(update.status).toBe('rejected');
    expect(merge.status).toBe('fulfilled');
    expect(service.read(lamp)?.state.desired).toEqual({ count: 0, on: true });
  });
});

describe('pre-flight checks', () => {
  it('refuses a patch that would exceed the state size before any request', async () => {
    const { service, shadows } = setup();
    const error = await shadows
      .shadow('lamp')
      .merge({ desired: { blob: 'x'.repeat(9000) } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowLimitError);
    expect((error as ShadowLimitError).limit).toBe('maxStateBytes');
    expect(service.requests).toHaveLength(0);
  });

  it('refuses a patch nested too deep', async () => {
    const { service, shadows } = setup();
    const deep = { a: { b: { c: { d: { e: { f: { g: 1 } } } } } } };
    const error = await shadows
      .shadow('lamp')
      .update(() => ({ desired: deep }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowLimitError);
    expect((error as ShadowLimitError).limit).toBe('maxDepth');
    expect(service.count('update')).toBe(0);
  });

  it('applies configured limits', async () => {
    const { shadows } = setup({ limits: { maxStateBytes: 20 } });
    await expect(
      shadows.shadow('lamp').merge({ desired: { text: 'more than twenty bytes' } }),
    ).rejects.toMatchObject({
      name: 'ShadowLimitError',
      limit: 'maxStateBytes',
    });
  });

  it('refuses bad thing and shadow names when the handle is made', () => {
    const { shadows } = setup();
    expect(() => shadows.shadow('bad name')).toThrow(ShadowLimitError);
    expect(() => shadows.shadow('lamp', 'x'.repeat(65))).toThrow(/shadowName/);
  });

  it('never turns a null patch into {"state": null} (which would clear the shadow)', async () => {
    const { service, shadows } = setup();
    service.write(lamp, { state: { desired: { keep: true } } });
    const aircon = shadows.shadow('lamp');
    await expect(aircon.merge(null as never)).rejects.toBeInstanceOf(ShadowValidationError);
    await expect(aircon.update(() => null as never)).rejects.toBeInstanceOf(ShadowValidationError);
    await expect(aircon.update(() => [] as never)).rejects.toThrow(/an array/);
    expect(service.read(lamp)?.state.desired).toEqual({ keep: true });
    expect(service.count('update', 'app')).toBe(0);
  });

  it('refuses a malformed patch with ShadowValidationError', async () => {
    const { shadows } = setup();
    const error = await shadows
      .shadow('lamp')
      .merge({ desired: 5 } as never)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowValidationError);
    expect((error as Error).message).toContain('Desired node must be an object');
  });
});

describe('typed shadows', () => {
  const schema = {
    desired: z.object({
      power: z.enum(['on', 'off']).optional(),
      temp: z.number().min(16).max(30).optional(),
    }),
    reported: z.object({ temp: z.number() }),
  };

  it('validates the documents it reads, listing the issues', async () => {
    const { service, shadows } = setup();
    service.write(lamp, { state: { desired: { power: 'maybe' } } });
    const error = await shadows
      .shadow('lamp', { schema })
      .get()
      .catch((e: unknown) => e);
    expect(isShadowValidationError(error)).toBe(true);
    expect((error as ShadowValidationError).issues[0]?.path).toEqual(['power']);
    expect((error as Error).message).toContain("thing 'lamp'");
  });

  it('validates what an update would write and types the intent', async () => {
    const { service, shadows } = setup();
    const aircon = shadows.shadow('lamp', { schema });
    const ok = await aircon.update((current) => ({
      desired: { temp: (current?.state.desired?.temp ?? 20) + 1 },
    }));
    expect(ok.document?.state.desired?.temp).toBe(21);
    const error = await aircon.update(() => ({ desired: { temp: 99 } })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowValidationError);
    expect(service.read(lamp)?.state.desired).toEqual({ temp: 21 });
  });

  it('fails only the callers whose schema the stored document breaks', async () => {
    const { service, shadows } = setup();
    service.write(lamp, { state: { desired: { power: 'maybe' } } });
    const typed = shadows.shadow('lamp', { schema });
    const untyped = shadows.shadow('lamp');
    const [bad, good] = await Promise.allSettled([
      typed.update(() => ({ desired: { temp: 20 } })),
      untyped.update(() => ({ reported: { temp: 19 } })),
    ]);
    expect(bad).toMatchObject({ status: 'rejected', reason: { name: 'ShadowValidationError' } });
    expect(good).toMatchObject({ status: 'fulfilled', value: { version: 2 } });
    expect(service.read(lamp)?.state.reported).toEqual({ temp: 19 });
  });

  it('validates blind merges against the deep-partial schema', async () => {
    const { service, shadows } = setup();
    const aircon = shadows.shadow('lamp', { schema });
    await aircon.merge({ desired: { power: 'on' } });
    await aircon.merge({ desired: { power: null } });
    await expect(aircon.merge({ desired: { power: 'loud' as 'on' } })).rejects.toBeInstanceOf(
      ShadowValidationError,
    );
    await expect(aircon.merge({ reported: { temp: null } as never })).rejects.toBeInstanceOf(
      ShadowValidationError,
    );
    expect(service.count('update')).toBe(2);
  });
});

describe('delete', () => {
  it('deletes, then re-creates with a versioned create that continues the numbering', async () => {
    const { service, shadows } = setup();
    const aircon = shadows.shadow('lamp');
    await aircon.update(() => ({ desired: { on: true } }));
    await aircon.update(() => ({ desired: { on: false } }));
    expect(await aircon.delete()).toEqual({ version: 2 });
    const result = await aircon.update((current) => ({ desired: { on: current === undefined } }));
    expect(result.version).toBe(4);
    expect(service.requests.at(-1)?.request).toEqual({ state: { desired: { on: true } }, version: 3 });
  });

  it('falls back to an unversioned create after someone else deleted the shadow', async () => {
    const { service, shadows } = setup();
    service.write(lamp, { state: { desired: { on: true } } });
    const aircon = shadows.shadow('lamp');
    await aircon.get();
    await service.transport('other').delete(lamp);
    const result = await aircon.update((current) => ({ desired: { on: current === undefined } }));
    expect(result.version).toBe(3);
    expect(service.read(lamp)?.state.desired).toEqual({ on: true });
  });

  it('never keeps a predicted document after an unversioned re-create: a concurrent creator may have merged first', async () => {
    const { service, shadows } = setup();
    service.write(lamp, { state: { desired: { on: true } } });
    const aircon = shadows.shadow('lamp');
    await aircon.get();
    await service.transport('other').delete(lamp);
    // Another client re-creates the shadow just before this client's unversioned create lands.
    service.beforeUpdate = (_target, request) => {
      if (request.version !== undefined) return;
      service.beforeUpdate = undefined;
      service.write(lamp, { state: { desired: { power: 'on' } } }, 'other');
    };
    const created = await aircon.update(() => ({ desired: { on: false } }));
    expect(service.read(lamp)?.state.desired).toEqual({ power: 'on', on: false });
    expect(created.document?.state.desired ?? { power: 'on', on: false }).toEqual({ power: 'on', on: false });
    // The next intent must see the other creator's key, not a prediction that lacks it.
    const seen: string[][] = [];
    await aircon.update((current) => {
      seen.push(Object.keys(current?.state.desired ?? {}).sort());
      return { desired: { on: true } };
    });
    expect(seen.at(-1)).toEqual(['on', 'power']);
    expect(service.read(lamp)?.state.desired).toEqual({ power: 'on', on: true });
  });

  it('throws ShadowNotFoundError for a shadow that does not exist', async () => {
    const { shadows } = setup();
    await expect(shadows.shadow('lamp').delete()).rejects.toBeInstanceOf(ShadowNotFoundError);
  });
});

describe('events, logger and limiter', () => {
  it('is silent by default and survives a throwing listener', async () => {
    const service = new InMemoryShadowServiceDouble();
    const shadows = createShadowClient({
      transport: service.transport(),
      onEvent: () => {
        throw new Error('listener bug');
      },
      logger: {
        debug: () => {
          throw new Error('logger bug');
        },
      },
    });
    const result = await shadows.shadow('lamp').merge({ desired: { on: true } });
    expect(result.version).toBe(1);
  });

  it('writes to a pluggable logger: debug on retries, warn when giving up', async () => {
    const lines: Array<[string, string]> = [];
    const logger = {
      debug: (message: string) => lines.push(['debug', message]),
      warn: (message: string) => lines.push(['warn', message]),
    };
    const { service, shadows } = setup({ logger, maxAttempts: 2 });
    service.write(lamp, { state: { desired: { count: 0 } } });
    service.beforeUpdate = (target) =>
      service.write(target, { state: { reported: { n: service.committed.length } } });
    await shadows
      .shadow('lamp')
      .update((current) => ({ desired: { count: count(current) + 1 } }))
      .catch(() => undefined);
    expect(lines.some(([level, message]) => level === 'debug' && message.includes('retrying'))).toBe(true);
    expect(
      lines.some(([level, message]) => level === 'warn' && message.includes('gave up after 2 attempts')),
    ).toBe(true);
  });

  it('emits attempt and latency events for each request', async () => {
    const { shadows, events } = setup();
    await shadows.shadow('lamp').update(() => ({ desired: { on: true } }));
    expect(
      events.filter((e) => e.type === 'attempt').map((e) => (e as { operation: string }).operation),
    ).toEqual(['get', 'update']);
    expect(events.filter((e) => e.type === 'latency')).toHaveLength(2);
  });

  it('keeps one thing at or below its in-flight quota', async () => {
    const service = new InMemoryShadowServiceDouble();
    let inFlight = 0;
    let peak = 0;
    const inner = service.transport('app');
    const shadows = createShadowClient({
      transport: {
        ...inner,
        update: async (target, request) => {
          inFlight++;
          peak = Math.max(peak, inFlight);
          await new Promise((resolve) => setTimeout(resolve, 1));
          try {
            return await inner.update(target, request);
          } finally {
            inFlight--;
          }
        },
      },
      maxInFlightPerThing: 3,
      requestsPerSecondPerThing: Number.POSITIVE_INFINITY,
    });
    await Promise.all(
      Array.from({ length: 12 }, (_, i) => shadows.shadow('lamp', `s${i}`).merge({ desired: { i } })),
    );
    expect(peak).toBe(3);
  });
});

describe('memory', () => {
  it('does not keep what it learned about every shadow it ever addressed (a client of a large fleet)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const service = new InMemoryShadowServiceDouble();
    const inner = service.transport('app');
    let firstRead: WeakRef<object> | undefined;
    const transport: ShadowTransport = {
      ...inner,
      get: async (target) => {
        const document = await inner.get(target);
        if (firstRead === undefined && document !== undefined) firstRead = new WeakRef(document);
        return document;
      },
    };
    const shadows = createShadowClient({ transport, requestsPerSecondPerThing: Number.POSITIVE_INFINITY });
    service.write({ thingName: 'thing-0' }, { state: { reported: { big: 'x'.repeat(4000) } } });
    await shadows.shadow('thing-0').get();
    // A handle kept by the application must keep working whatever the client forgot meanwhile.
    const kept = shadows.shadow('thing-0');
    for (let i = 1; i <= 3000; i++) await shadows.shadow(`thing-${i}`).merge({ desired: { n: i } });
    await new Promise((resolve) => setTimeout(resolve, 0));
    gc();
    expect(firstRead?.deref()).toBeUndefined();
    await expect(kept.update(() => ({ desired: { on: true } }))).resolves.toMatchObject({ version: 2 });
  });
});

describe('options', () => {
  it('rejects unknown keys and out-of-range values with ShadowOptionsError', () => {
    const transport = new InMemoryShadowServiceDouble().transport();
    expect(() => createShadowClient({ transport, retries: 3 } as never)).toThrow(/unknown option 'retries'/);
    expect(() => createShadowClient({ transport, maxAttempts: 0 })).toThrow(ShadowOptionsError);
    expect(() => createShadowClient({ transport, maxAttempts: 1.5 })).toThrow(/integer/);
    expect(() => createShadowClient({ transport, baseDelayMs: 100, maxDelayMs: 10 })).toThrow(/maxDelayMs/);
    expect(() => createShadowClient({ transport, coalesce: 'yes' as never })).toThrow(/boolean/);
    expect(() => createShadowClient({ transport, adaptiveRate: 1 as never })).toThrow(
      /adaptiveRate must be a boolean/,
    );
    expect(() => createShadowClient({ transport, useKnownDocuments: 'sometimes' as never })).toThrow(
      /useKnownDocuments must be true, false or 'auto'/,
    );
    expect(() =>
      createShadowClient({ transport, useKnownDocuments: 'auto', adaptiveRate: false }),
    ).not.toThrow();
    expect(() => createShadowClient({} as never)).toThrow(/transport/);
    expect(() => createShadowClient({ transport, limits: { maxDepth: -1 } }).shadow('x')).toThrow(
      ShadowOptionsError,
    );
    expect(() => createShadowClient({ transport }).shadow('x', { name: 'y' } as never)).toThrow(
      /unknown option 'name'/,
    );
  });
});
