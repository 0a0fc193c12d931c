import { describe, expect, it } from 'vitest';
import {
  createFaultInjector,
  createSeededRandom,
  DEFAULT_FAULT_OPTIONS,
  type FaultOptions,
  resolveFaultOptions,
} from '../../src/emulator/fault-injector.js';
import { startMqttFront } from '../../src/emulator/mqtt-front.js';
import { createShadowEngine } from '../../src/emulator/shadow-engine.js';
import { isShadowError } from '../../src/errors.js';
import { createFakeClock } from '../support/fake-clock.js';
import { connectTestClient } from './mqtt-test-client.js';

/** Feeds 0..n-1 synchronously through an injector (no delay fault, so everything is synchronous). */
function run(
  faults: FaultOptions,
  n = 200,
): { delivered: number[]; stats: ReturnType<ReturnType<typeof createFaultInjector>['stats']> } {
  const delivered: number[] = [];
  const injector = createFaultInjector<number>((m) => delivered.push(m), faults);
  for (let i = 0; i < n; i++) injector.submit(i);
  injector.clear();
  const stats = injector.stats();
  injector.close();
  return { delivered, stats };
}

describe('seeded random generator', () => {
  it('is deterministic per seed, differs across seeds and stays in [0, 1)', () => {
    const a = createSeededRandom(42);
    const b = createSeededRandom(42);
    const c = createSeededRandom(43);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(Array.from({ length: 1000 }, () => c())).not.toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    // Roughly uniform: each decile gets a fair share.
    const deciles = new Array(10).fill(0);
    for (const x of xs) deciles[Math.floor(x * 10)]++;
    expect(Math.min(...deciles)).toBeGreaterThan(60);
  });
});

describe('fault injector', () => {
  it('passes everything through unchanged when no fault is set', () => {
    const { delivered, stats } = run({});
    expect(delivered).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(stats).toEqual({
      submitted: 200,
      delivered: 200,
      dropped: 0,
      duplicated: 0,
      delayed: 0,
      reordered: 0,
    });
  });

  it('makes the same decisions for the same seed and different ones for another seed', () => {
    const faults = { seed: 7, drop: 0.2, duplicate: 0.2, reorder: 0.2 };
    const first = run(faults);
    const second = run(faults);
    expect(second).toEqual(first);
    const other = run({ ...faults, seed: 8 });
    expect(other.delivered).not.toEqual(first.delivered);
    expect(first.stats.dropped).toBeGreaterThan(10);
    expect(first.stats.duplicated).toBeGreaterThan(10);
    expect(first.stats.reordered).toBeGreaterThan(10);
    expect(first.stats.delivered).toBe(200 - first.stats.dropped + first.stats.duplicated);
    expect(first.delivered.length).toBe(first.stats.delivered);
  });

  it('drops every message at probability 1 and duplicates every message at probability 1', () => {
    expect(run({ drop: 1 }, 10).delivered).toEqual([]);
    expect(run({ duplicate: 1 }, 3).delivered).toEqual([0, 0, 1, 1, 2, 2]);
  });

  it('reorders: a held message is released right after the next delivered one', () => {
    const delivered: string[] = [];
    const injector = createFaultInjector<string>((m) => delivered.push(m), { reorder: 1 });
    injector.submit('a');
    injector.submit('b');
    expect(delivered).toEqual([]);
    injector.set({ reorder: 0 });
    injector.submit('c');
    expect(delivered).toEqual(['c', 'a', 'b']);
    expect(injector.stats().reordered).toBe(2);
    injector.close();
  });

  it('releases a held message after the reorder window when nothing else comes', async () => {
    const delivered: string[] = [];
    const clock = createFakeClock();
    const injector = createFaultInjector<string>(
      (m) => delivered.push(m),
      { reorder: 1, reorderWindowMs: 5 },
      clock,
    );
    injector.submit('alone');
    await clock.advance(4);
    expect(delivered).toEqual([]);
    await clock.advance(1);
    expect(delivered).toEqual(['alone']);
    expect(clock.pendingTimers()).toBe(0);
    injector.close();
  });

  it('delays messages within the configured range', async () => {
    const delivered: { m: number; at: number }[] = [];
    const clock = createFakeClock();
    const start = clock.now();
    const injector = createFaultInjector<number>(
      (m) => delivered.push({ m, at: clock.now() - start }),
      { delay: 1, delayMs: [20, 30] },
      clock,
    );
    injector.submit(1);
    injector.submit(2);
    await clock.advance(19);
    expect(delivered).toEqual([]);
    await clock.advance(11);
    expect(delivered.map((d) => d.m).sort()).toEqual([1, 2]);
    expect(delivered.every((d) => d.at >= 20 && d.at <= 30)).toBe(true);
    expect(injector.stats().delayed).toBe(2);
    injector.close();
  });

  it('clear() stops the faults and delivers held and delayed messages at once, in submission order', () => {
    const delivered: number[] = [];
    const injector = createFaultInjector<number>((m) => delivered.push(m), {
      delay: 1,
      delayMs: [1000, 1000],
    });
    injector.submit(1);
    injector.set({ reorder: 1 });
    injector.submit(2);
    injector.set({ delay: 1, delayMs: [500, 500] });
    injector.submit(3);
    expect(delivered).toEqual([]);
    expect(injector.active()).toBe(true);
    injector.clear();
    expect(delivered).toEqual([1, 2, 3]);
    expect(injector.active()).toBe(false);
    injector.submit(4);
    expect(delivered).toEqual([1, 2, 3, 4]);
    injector.close();
  });

  it('close() discards pending messages and ignores later submissions', async () => {
    const delivered: number[] = [];
    const clock = createFakeClock();
    const injector = createFaultInjector<number>(
      (m) => delivered.push(m),
      { delay: 1, delayMs: [5, 5] },
      clock,
    );
    injector.submit(1);
    expect(clock.pendingTimers()).toBe(1);
    injector.close();
    expect(clock.pendingTimers()).toBe(0);
    injector.submit(2);
    await clock.advance(30);
    expect(delivered).toEqual([]);
  });

  it('set() with a seed restarts the sequence', () => {
    const a: number[] = [];
    const injector = createFaultInjector<number>((m) => a.push(m), { seed: 3, drop: 0.5 });
    for (let i = 0; i < 50; i++) injector.submit(i);
    const firstPass = [...a];
    a.length = 0;
    injector.set({ seed: 3, drop: 0.5 });
    for (let i = 0; i < 50; i++) injector.submit(i);
    expect(a).toEqual(firstPass);
    injector.close();
  });

  it('validates options with clear errors', () => {
    const fails = (options: unknown, text: RegExp) => {
      let error: unknown;
      try {
        resolveFaultOptions(options as FaultOptions);
      } catch (caught) {
        error = caught;
      }
      expect(isShadowError(error) && (error as Error).name === 'ShadowOptionsError').toBe(true);
      expect((error as Error).message).toMatch(text);
    };
    fails({ dorp: 0.1 }, /unknown fault option 'dorp'/);
    fails({ drop: 1.5 }, /'drop' must be a probability in \[0, 1\], got 1.5/);
    fails({ duplicate: -0.1 }, /'duplicate' must be a probability/);
    fails({ reorder: Number.NaN }, /'reorder' must be a probability/);
    fails({ seed: 1.5 }, /'seed' must be an integer/);
    fails({ delayMs: [10, 5] }, /'delayMs' must be \[min, max\]/);
    fails({ delayMs: [1] }, /'delayMs' must be \[min, max\]/);
    fails({ reorderWindowMs: 0 }, /'reorderWindowMs' must be a positive integer/);
    fails(null, /fault options must be an object/);
    expect(resolveFaultOptions(undefined)).toEqual(DEFAULT_FAULT_OPTIONS);
  });
});

describe('fault injection on the MQTT front', () => {
  it('drops and duplicates outgoing shadow messages until the test clears the faults', async () => {
    const engine = createShadowEngine({
      limits: { requestsPerSecondPerThing: 10_000, maxInFlightPerThing: 10_000 },
    });
    const front = await startMqttFront(engine, { faults: { seed: 11, drop: 1 } });
    try {
      const d = await connectTestClient(front.mqttUrl, { clientId: 'flaky' });
      await d.subscribe([
        '$aws/things/flaky/shadow/update/accepted',
        '$aws/things/flaky/shadow/update/documents',
      ]);
      // The front's listener on the engine was added first: once the update's last message (documents) reaches
      // this one, the front has applied the faults to both.
      const documentsEmitted = new Promise<void>((resolve) => {
        const stop = engine.onMessage((message) => {
          if (!message.topic.endsWith('/update/documents')) return;
          stop();
          resolve();
        });
      });
      await d.publish('$aws/things/flaky/shadow/update', {
        state: { reported: { n: 1 } },
        clientToken: 'lost',
      });
      await documentsEmitted;
      expect(d.unread('$aws/things/flaky/shadow/update/accepted')).toEqual([]);
      // The update itself was applied: only the answer was lost.
      expect(engine.read({ thingName: 'flaky' })).toMatchObject({ version: 1 });
      // accepted + documents (no desired section, so no delta).
      expect(front.stats().faults.dropped).toBe(2);

      front.faults.set({ duplicate: 1 });
      await d.publish('$aws/things/flaky/shadow/update', {
        state: { reported: { n: 2 } },
        clientToken: 'twice',
      });
      const twice = await d.takeMany('$aws/things/flaky/shadow/update/accepted', 2);
      // Also proves the lost answer did not come late: it would be the first of these.
      expect(twice.map((m) => m.json)).toEqual([twice[0]?.json, twice[0]?.json]);
      expect(twice[0]?.json).toMatchObject({ clientToken: 'twice', version: 2 });

      front.faults.clear();
      await d.publish('$aws/things/flaky/shadow/update', {
        state: { reported: { n: 3 } },
        clientToken: 'clean',
      });
      expect((await d.take('$aws/things/flaky/shadow/update/accepted')).json).toMatchObject({
        clientToken: 'clean',
        version: 3,
      });
      // The update's documents message follows its accepted one: a second accepted copy would come before it.
      for (;;) {
        const documents = await d.take('$aws/things/flaky/shadow/update/documents');
        if ((documents.json as { current: { version: number } }).current.version === 3) break;
      }
      expect(d.unread('$aws/things/flaky/shadow/update/accepted')).toEqual([]);
      await d.close();
    } finally {
      await front.close();
      await engine.close();
    }
  });

  it('rejects invalid fault options when the front starts', async () => {
    const engine = createShadowEngine();
    await expect(startMqttFront(engine, { faults: { drop: 2 } })).rejects.toThrow(
      /'drop' must be a probability/,
    );
    await engine.close();
  });
});
